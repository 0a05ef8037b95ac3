// Package marts refreshes the analytics marts (schema marts, created by
// migrations/00010_marts.sql) from the loaded purchase lines.
//
// Every aggregate mart is a materialized view. Refresh rebuilds them in
// dependency order, CONCURRENTLY once populated so that dashboards keep
// reading the previous version while a refresh runs. The load-health marts,
// product_abc_xyz and client_rfm are plain views (over product_sales_12m and
// client_rfm_scores) and need no refresh of their own.
package marts

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jmoiron/sqlx"
)

// Names lists the marts meant for dashboards and SQL users, qualified, in
// dependency order.
var Names = []string{
	"marts.daily_sales",
	"marts.monthly_sales",
	"marts.sales_by_gender",
	"marts.sales_by_hour",
	"marts.client_activity_daily",
	"marts.product_abc_xyz",
	"marts.client_rfm",
	"marts.cohort_retention",
	"marts.load_health",
	"marts.load_rejections",
}

// view is one materialized view Refresh rebuilds.
type view struct {
	name string
	// concurrent: refresh with CONCURRENTLY once populated, so readers are
	// never blocked. The helpers are read by the refresh itself and are the
	// largest; a plain refresh avoids diffing millions of rows.
	concurrent bool
}

// refreshOrder lists the materialized views, each after the ones it reads.
var refreshOrder = []view{
	{"marts.client_day", false},
	{"marts.client_first_purchase", false},
	{"marts.daily_sales", true},
	{"marts.monthly_sales", true},
	{"marts.sales_by_gender", true},
	{"marts.sales_by_hour", true},
	{"marts.client_activity_daily", true},
	{"marts.product_sales_12m", true},
	{"marts.client_rfm_scores", true},
	{"marts.cohort_retention", true},
}

// MaterializedViews lists every materialized view Refresh rebuilds, in
// refresh order (helpers included), e.g. for a check that they are populated.
func MaterializedViews() []string {
	out := make([]string, len(refreshOrder))
	for i, v := range refreshOrder {
		out[i] = v.name
	}
	return out
}

// lockKey is the session advisory lock that serializes refreshes across
// processes ("martsrfs"). The loader's per-day locks use the two-int4 key
// space, goose another bigint key.
const lockKey int64 = 0x6d61727473726673

// pollInterval is how often a waiting Refresh retries the lock.
const pollInterval = time.Second

// Refresh rebuilds every materialized mart in dependency order and returns
// how long the rebuild took (0 when it was not needed).
//
// One refresh runs at a time across all processes. A caller that finds
// another refresh running waits for it (it may have started before the
// caller's lines were committed), then skips its own rebuild if a refresh
// that started after the call has meanwhile succeeded: that one already saw
// everything the caller loaded. Waiting ends with ctx.
//
// Refresh only reads schema marketplace; it writes schema marts alone. Each
// view is refreshed in its own transaction: on an error the views already
// refreshed stay refreshed, the failing one keeps its previous content, and
// the error names the view.
func Refresh(ctx context.Context, db *sqlx.DB, log *slog.Logger) (time.Duration, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("marts refresh: getting a connection: %w", err)
	}
	defer conn.Close()

	var called time.Time
	if err := conn.QueryRowContext(ctx, `SELECT clock_timestamp()`).Scan(&called); err != nil {
		return 0, fmt.Errorf("marts refresh: reading the database clock: %w", err)
	}
	if err := acquire(ctx, conn, log); err != nil {
		return 0, err
	}
	defer release(conn, log)

	var last sql.NullTime
	err = conn.QueryRowContext(ctx, `SELECT started_at FROM marts.refresh_state WHERE mart = 'all' AND status = 'succeeded'`).Scan(&last)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("marts refresh: reading marts.refresh_state: %w", err)
	}
	if last.Valid && last.Time.After(called) {
		log.Info("marts are already fresh: a refresh started after this call succeeded", "refresh_started_at", last.Time)
		return 0, nil
	}

	start := time.Now()
	var started time.Time
	if err := conn.QueryRowContext(ctx, `SELECT clock_timestamp()`).Scan(&started); err != nil {
		return 0, fmt.Errorf("marts refresh: reading the database clock: %w", err)
	}
	if err := setState(ctx, conn, "all", "running", started, 0, nil); err != nil {
		return 0, err
	}
	for _, v := range refreshOrder {
		if err := refreshView(ctx, conn, v, log); err != nil {
			err = fmt.Errorf("refreshing %s: %w", v.name, err)
			// Record the failure even when ctx is what failed.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if serr := setState(rctx, conn, "all", "failed", started, time.Since(start), err); serr != nil {
				log.Warn("could not record the failed marts refresh", "err", serr)
			}
			cancel()
			return time.Since(start), err
		}
	}
	took := time.Since(start)
	if err := setState(ctx, conn, "all", "succeeded", started, took, nil); err != nil {
		return took, err
	}
	log.Info("refreshed marts", "views", len(refreshOrder), "duration", took.Round(time.Millisecond))
	return took, nil
}

// acquire takes the refresh lock, polling so that waiting obeys ctx and no
// statement_timeout of the pool's sessions can cut the wait short.
func acquire(ctx context.Context, conn *sql.Conn, log *slog.Logger) error {
	waiting := false
	for {
		var ok bool
		if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, lockKey).Scan(&ok); err != nil {
			return fmt.Errorf("marts refresh: taking the refresh lock: %w", err)
		}
		if ok {
			return nil
		}
		if !waiting {
			log.Info("another process is refreshing the marts; waiting for it")
			waiting = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("marts refresh: waiting for another refresh to finish: %w", ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}

// release drops the refresh lock. If that fails the connection is discarded
// instead of going back to the pool: closing the session frees the lock.
func release(conn *sql.Conn, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, lockKey); err != nil {
		log.Warn("could not release the marts refresh lock; closing the connection", "err", err)
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	}
}

func refreshView(ctx context.Context, conn *sql.Conn, v view, log *slog.Logger) error {
	var populated bool
	err := conn.QueryRowContext(ctx, `SELECT ispopulated FROM pg_matviews WHERE schemaname || '.' || matviewname = $1`, v.name).Scan(&populated)
	if errors.Is(err, sql.ErrNoRows) {
		return errors.New("the materialized view does not exist (migrations not applied?)")
	}
	if err != nil {
		return fmt.Errorf("reading its state: %w", err)
	}
	stmt := "REFRESH MATERIALIZED VIEW " + v.name
	// CONCURRENTLY is refused on a view never populated.
	if v.concurrent && populated {
		stmt = "REFRESH MATERIALIZED VIEW CONCURRENTLY " + v.name
	}

	var started time.Time
	if err := conn.QueryRowContext(ctx, `SELECT clock_timestamp()`).Scan(&started); err != nil {
		return fmt.Errorf("reading the database clock: %w", err)
	}
	t0 := time.Now()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning the transaction: %w", err)
	}
	defer tx.Rollback()
	// A rebuild over years of lines legitimately outlasts the statement
	// timeout meant for loads; ctx still bounds it. More work_mem keeps the
	// distinct counts and sorts in memory.
	if _, err := tx.ExecContext(ctx, `SET LOCAL statement_timeout = 0; SET LOCAL work_mem = '128MB'`); err != nil {
		return fmt.Errorf("setting session limits: %w", err)
	}
	if _, err := tx.ExecContext(ctx, stmt); err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = tx.Rollback()
		if serr := setState(rctx, conn, v.name, "failed", started, time.Since(t0), err); serr != nil {
			log.Warn("could not record the failed refresh", "view", v.name, "err", serr)
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	took := time.Since(t0)
	log.Debug("refreshed materialized view", "view", v.name, "concurrently", v.concurrent && populated, "duration", took.Round(time.Millisecond))
	return setState(ctx, conn, v.name, "succeeded", started, took, nil)
}

// setState records a refresh outcome in marts.refresh_state.
func setState(ctx context.Context, conn *sql.Conn, mart, status string, started time.Time, took time.Duration, failure error) error {
	var finished, ms, msg any
	if status != "running" {
		finished, ms = time.Now(), took.Milliseconds()
	}
	if failure != nil {
		msg = failure.Error()
	}
	_, err := conn.ExecContext(ctx, `
		INSERT INTO marts.refresh_state (mart, status, started_at, finished_at, duration_ms, error)
		VALUES ($1, $2, $3, CASE WHEN $4::timestamptz IS NULL THEN NULL ELSE clock_timestamp() END, $5, $6)
		ON CONFLICT (mart) DO UPDATE SET status = EXCLUDED.status, started_at = EXCLUDED.started_at,
			finished_at = EXCLUDED.finished_at, duration_ms = EXCLUDED.duration_ms, error = EXCLUDED.error`,
		mart, status, started, finished, ms, msg)
	if err != nil {
		return fmt.Errorf("recording the refresh of %s in marts.refresh_state: %w", mart, err)
	}
	return nil
}
