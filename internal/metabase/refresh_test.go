package metabase

import (
	"context"
	"log/slog"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/marketplace-etl/marketplace-etl/internal/marts"
)

// refreshMarts fills the marts from the loaded data, as every ETL run does.
func refreshMarts(ctx context.Context, t *testing.T, db *sqlx.DB) {
	t.Helper()
	if _, err := marts.Refresh(ctx, db, slog.Default()); err != nil {
		t.Fatalf("refreshing the marts: %v", err)
	}
}
