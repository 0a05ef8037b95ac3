package metabase

import (
	"context"
	"testing"

	"github.com/jmoiron/sqlx"
)

// refreshMarts fills the marts from the loaded data. Until internal/marts
// lands this refreshes every materialized view in schema marts.
func refreshMarts(ctx context.Context, t *testing.T, db *sqlx.DB) {
	t.Helper()
	var exists bool
	if err := db.GetContext(ctx, &exists, `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'marts')`); err != nil {
		t.Fatal(err)
	}
	if !exists {
		t.Skip("schema marts does not exist yet (migrations/00010_marts.sql has not landed)")
	}
	var views []string
	if err := db.SelectContext(ctx, &views, `SELECT format('%I.%I', schemaname, matviewname) FROM pg_matviews WHERE schemaname = 'marts'`); err != nil {
		t.Fatal(err)
	}
	for _, v := range views {
		if _, err := db.ExecContext(ctx, "REFRESH MATERIALIZED VIEW "+v); err != nil {
			t.Fatalf("refreshing %s: %v", v, err)
		}
	}
}
