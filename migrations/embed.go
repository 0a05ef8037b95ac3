// Package migrations holds the SQL schema of marketplace-etl as goose
// migrations, embedded into the binary so that every pod carries the schema
// it was built against.
package migrations

import "embed"

// FS holds every *.sql migration in this folder.
//
//go:embed *.sql
var FS embed.FS
