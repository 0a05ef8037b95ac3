package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"time"

	"github.com/marketplace-etl/marketplace-etl/internal/etl"
)

// StartRun records the start of an invocation and returns its id.
func (s *Store) StartRun(ctx context.Context, r etl.Run) (int64, error) {
	host, _ := os.Hostname()
	var id int64
	err := s.db.QueryRowContext(ctx, `INSERT INTO marketplace.etl_runs (mode, range_from, range_to, shard_index, shard_count, version, host)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
		r.Mode, nullDate(r.From), nullDate(r.To), r.ShardIndex, r.ShardCount, r.Version, host).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("recording the start of the run: %w", err)
	}
	return id, nil
}

// FinishRun records the end of an invocation; runErr nil means success.
func (s *Store) FinishRun(ctx context.Context, id int64, t etl.RunTotals, runErr error) error {
	status, msg := "succeeded", sql.NullString{}
	if runErr != nil {
		status, msg = "failed", sql.NullString{String: errorText(runErr.Error()), Valid: true}
	}
	_, err := s.db.ExecContext(ctx, `UPDATE marketplace.etl_runs SET finished_at = now(), status = $2, error = $3,
		days_loaded = $4, days_unchanged = $5, days_no_data = $6, days_failed = $7, rows_loaded = $8, rows_rejected = $9
		WHERE id = $1`, id, status, msg, t.DaysLoaded, t.DaysUnchanged, t.DaysNoData, t.DaysFailed, t.RowsLoaded, t.RowsRejected)
	if err != nil {
		return fmt.Errorf("recording the end of run %d: %w", id, err)
	}
	return nil
}

func nullDate(t time.Time) sql.NullString {
	if t.IsZero() {
		return sql.NullString{}
	}
	return sql.NullString{String: t.Format(time.DateOnly), Valid: true}
}
