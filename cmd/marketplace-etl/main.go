// Command marketplace-etl loads the Marketplace API's purchase lines into
// PostgreSQL, one stateless pass per invocation. See README.md.
package main

import (
	"os"

	_ "time/tzdata" // the runtime image has no zoneinfo; Europe/Moscow must resolve anyway

	"github.com/marketplace-etl/marketplace-etl/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
