package marts

import (
	"os"
	"testing"

	"github.com/marketplace-etl/marketplace-etl/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
