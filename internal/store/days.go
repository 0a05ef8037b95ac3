package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lib/pq"

	"github.com/marketplace-etl/marketplace-etl/internal/purchases"
)

// Day statuses stored in marketplace.day_loads.status.
const (
	StatusLoaded = "loaded"
	StatusNoData = "no_data"
	StatusFailed = "failed"
)

// DayState is the stored load state of one business date.
type DayState struct {
	Date     time.Time      `db:"purchase_date"`
	Status   string         `db:"status"`
	Checksum sql.NullString `db:"checksum"`
	Attempts int            `db:"attempts"`
	Rows     int            `db:"rows_loaded"`
}

// Done tells whether the day needs no further attempt.
func (d DayState) Done() bool { return d.Status == StatusLoaded || d.Status == StatusNoData }

// DayStates returns the stored state of the days in [from, to], by date
// (YYYY-MM-DD). Days never attempted are absent.
func (s *Store) DayStates(ctx context.Context, from, to time.Time) (map[string]DayState, error) {
	var rows []DayState
	err := s.db.SelectContext(ctx, &rows, `SELECT purchase_date, status, checksum, attempts, rows_loaded
		FROM marketplace.day_loads WHERE purchase_date BETWEEN $1 AND $2`, from.Format(time.DateOnly), to.Format(time.DateOnly))
	if err != nil {
		return nil, fmt.Errorf("reading day load states: %w", err)
	}
	out := make(map[string]DayState, len(rows))
	for _, r := range rows {
		out[r.Date.Format(time.DateOnly)] = r
	}
	return out, nil
}

// LatestLoadedDay is the newest day with status loaded (zero time if none).
func (s *Store) LatestLoadedDay(ctx context.Context) (time.Time, error) {
	var d sql.NullTime
	if err := s.db.GetContext(ctx, &d, `SELECT max(purchase_date) FROM marketplace.day_loads WHERE status = 'loaded'`); err != nil {
		return time.Time{}, fmt.Errorf("reading the newest loaded day: %w", err)
	}
	return d.Time, nil
}

// DayTx is the one transaction in which a day is replaced. Nothing it writes
// is visible until Commit; a crash at any point leaves the previous day.
type DayTx struct {
	s      *Store
	tx     *sql.Tx
	date   string
	runID  int64
	stored *DayState // nil when the day was never attempted
	staged bool      // rows go to temp tables first, compared by checksum

	copy     *sql.Stmt
	lineNo   int
	rejectNo int
	rejects  []rejectRow
	loaded   int
	args     [12]any
	dayStart time.Time
}

type rejectRow struct {
	lineNo int
	reason purchases.Reason
	detail string
	raw    string
}

// rejectBatch bounds the rejects held in memory: a day of rejects streams to
// the database in batches like its purchases.
const rejectBatch = 5000

// BeginDay opens the transaction for date, takes the per-date advisory lock
// (a concurrent loader of the same day waits for this one to finish) and
// reads the day's state as it is once the lock is held.
func (s *Store) BeginDay(ctx context.Context, date time.Time, runID int64) (*DayTx, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, &UnavailableError{Err: fmt.Errorf("beginning the load of %s: %w", date.Format(time.DateOnly), err)}
	}
	loc := s.opt.Location
	if loc == nil {
		loc = time.UTC
	}
	y, m, dd := date.Date()
	d := &DayTx{s: s, tx: tx, date: date.Format(time.DateOnly), runID: runID, dayStart: time.Date(y, m, dd, 0, 0, 0, 0, loc)}
	fail := func(what string, err error) (*DayTx, error) {
		_ = tx.Rollback()
		return nil, fmt.Errorf("%s for %s: %w", what, d.date, err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d; SET LOCAL lock_timeout = %d",
		s.opt.StatementTimeout.Milliseconds(), s.opt.LockTimeout.Milliseconds())); err != nil {
		return fail("setting timeouts", err)
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, dayLockKey, date.Unix()/86400); err != nil {
		return fail("waiting for the day's lock", err)
	}
	var st DayState
	err = tx.QueryRowContext(ctx, `SELECT purchase_date, status, checksum, attempts, rows_loaded
		FROM marketplace.day_loads WHERE purchase_date = $1`, d.date).Scan(&st.Date, &st.Status, &st.Checksum, &st.Attempts, &st.Rows)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fail("reading the day's state", err)
	default:
		d.stored = &st
	}
	return d, nil
}

// dayLockKey namespaces the per-date advisory locks (first key of the pair).
const dayLockKey = 0x6d6b74 // "mkt"

// Stored is the day's state before this transaction (nil if never attempted).
func (d *DayTx) Stored() *DayState { return d.stored }

// Start prepares to receive the day's lines. A day already loaded is staged
// in temporary tables so that unchanged content can be discarded untouched;
// any other day streams straight into the tables after its old rows go.
func (d *DayTx) Start(ctx context.Context) error {
	d.staged = d.stored != nil && d.stored.Status == StatusLoaded && d.stored.Checksum.Valid
	if d.staged {
		if _, err := d.tx.ExecContext(ctx, `
			CREATE TEMP TABLE IF NOT EXISTS stage_purchases (LIKE marketplace.purchases) ON COMMIT DELETE ROWS;
			CREATE TEMP TABLE IF NOT EXISTS stage_rejects (LIKE marketplace.rejected_purchases INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
			TRUNCATE stage_purchases, stage_rejects`); err != nil {
			return fmt.Errorf("preparing staging tables for %s: %w", d.date, err)
		}
	} else if err := d.deleteDay(ctx); err != nil {
		return err
	}
	return d.openCopy()
}

func (d *DayTx) purchasesTable() (schema, table string) {
	if d.staged {
		return "", "stage_purchases"
	}
	return "marketplace", "purchases"
}

func (d *DayTx) rejectsTable() (schema, table string) {
	if d.staged {
		return "", "stage_rejects"
	}
	return "marketplace", "rejected_purchases"
}

func (d *DayTx) openCopy() error {
	schema, table := d.purchasesTable()
	cols := []string{"purchase_date", "line_no", "client_id", "gender", "product_id", "quantity", "price_per_item",
		"discount_per_item", "total_price", "seconds_from_midnight", "purchased_at", "run_id"}
	var q string
	if schema == "" {
		q = pq.CopyIn(table, cols...)
	} else {
		q = pq.CopyInSchema(schema, table, cols...)
	}
	st, err := d.tx.Prepare(q)
	if err != nil {
		return fmt.Errorf("starting COPY of %s: %w", d.date, err)
	}
	d.copy = st
	return nil
}

func (d *DayTx) closeCopy() error {
	if d.copy == nil {
		return nil
	}
	st := d.copy
	d.copy = nil
	if _, err := st.Exec(); err != nil {
		st.Close()
		return fmt.Errorf("finishing COPY of %s: %w", d.date, err)
	}
	return st.Close()
}

// Add streams one accepted line.
func (d *DayTx) Add(r *purchases.Record) error {
	d.lineNo++
	d.loaded++
	a := &d.args
	a[0], a[1], a[2], a[3], a[4], a[5] = d.date, d.lineNo, r.ClientID, string(r.Gender), r.ProductID, r.Quantity
	a[6], a[7], a[8], a[9] = r.Price.String(), r.Discount.String(), r.Total.String(), r.Seconds
	a[10], a[11] = r.PurchasedAt(d.dayStart), d.runID
	if _, err := d.copy.Exec(a[:]...); err != nil {
		return fmt.Errorf("copying a line of %s: %w", d.date, err)
	}
	return nil
}

// Reject keeps a refused line verbatim with its reason.
func (d *DayTx) Reject(raw []byte, rej *purchases.Rejection) error {
	d.rejectNo++
	d.rejects = append(d.rejects, rejectRow{lineNo: d.rejectNo, reason: rej.Reason, detail: rej.Detail, raw: sanitize(raw)})
	if len(d.rejects) >= rejectBatch {
		return d.flushRejects()
	}
	return nil
}

// flushRejects pauses the purchases COPY (one COPY at a time per connection),
// copies the buffered rejects, and resumes.
func (d *DayTx) flushRejects() error {
	if len(d.rejects) == 0 {
		return nil
	}
	reopen := d.copy != nil
	if err := d.closeCopy(); err != nil {
		return err
	}
	schema, table := d.rejectsTable()
	cols := []string{"purchase_date", "line_no", "reason", "detail", "raw", "run_id"}
	q := pq.CopyInSchema(schema, table, cols...)
	if schema == "" {
		q = pq.CopyIn(table, cols...)
	}
	st, err := d.tx.Prepare(q)
	if err != nil {
		return fmt.Errorf("starting COPY of rejects of %s: %w", d.date, err)
	}
	for _, r := range d.rejects {
		if _, err := st.Exec(d.date, r.lineNo, string(r.reason), r.detail, r.raw, d.runID); err != nil {
			st.Close()
			return fmt.Errorf("copying a reject of %s: %w", d.date, err)
		}
	}
	if _, err := st.Exec(); err != nil {
		st.Close()
		return fmt.Errorf("finishing COPY of rejects of %s: %w", d.date, err)
	}
	st.Close()
	d.rejects = d.rejects[:0]
	if reopen {
		return d.openCopy()
	}
	return nil
}

// Summary is what a day's load found.
type Summary struct {
	Fetched  int
	Loaded   int
	Rejected int
	ByReason map[purchases.Reason]int
	Checksum string
}

// Outcome of a day's commit.
type Outcome string

// Outcomes, also the metric label values of days by outcome.
const (
	OutcomeLoaded    Outcome = "loaded"
	OutcomeUnchanged Outcome = "unchanged"
	OutcomeNoData    Outcome = "no_data"
	OutcomeFailed    Outcome = "failed"
)

// Finish ends the day's streams and commits the day: unchanged content is
// discarded; otherwise the day's rows are replaced and day_loads updated.
// Rows are loaded only when accept is true; otherwise the rejects are kept
// for inspection, the day is marked failed with failReason, and rows already
// loaded by an earlier good load stay.
func (d *DayTx) Finish(ctx context.Context, sum Summary, accept bool, failReason string) (Outcome, error) {
	if err := d.closeCopy(); err != nil {
		return "", err
	}
	if err := d.flushRejects(); err != nil {
		return "", err
	}
	if accept && d.staged && d.stored.Checksum.String == sum.Checksum {
		return OutcomeUnchanged, d.Rollback()
	}
	changed := d.staged && accept
	switch {
	case !accept && d.staged:
		// Keep the previous good lines; replace only the rejects.
		if err := d.exec(ctx, "keeping the rejects",
			`DELETE FROM marketplace.rejected_purchases WHERE purchase_date = $1`,
			`INSERT INTO marketplace.rejected_purchases SELECT * FROM stage_rejects`); err != nil {
			return "", err
		}
	case !accept:
		if err := d.exec(ctx, "discarding the lines", `DELETE FROM marketplace.purchases WHERE purchase_date = $1`); err != nil {
			return "", err
		}
	case d.staged:
		if err := d.deleteDay(ctx); err != nil {
			return "", err
		}
		if err := d.exec(ctx, "replacing the lines",
			`INSERT INTO marketplace.purchases SELECT * FROM stage_purchases`,
			`INSERT INTO marketplace.rejected_purchases SELECT * FROM stage_rejects`); err != nil {
			return "", err
		}
	}
	reasons, _ := json.Marshal(reasonCounts(sum.ByReason))
	status, outcome, lastErr := StatusLoaded, OutcomeLoaded, sql.NullString{}
	if !accept {
		status, outcome, lastErr = StatusFailed, OutcomeFailed, sql.NullString{String: failReason, Valid: true}
	}
	_, err := d.tx.ExecContext(ctx, `
		INSERT INTO marketplace.day_loads AS d (purchase_date, status, rows_fetched, rows_loaded, rows_rejected,
			rejected_by_reason, checksum, checksum_changes, attempts, last_error, run_id, first_loaded_at, loaded_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 1, $8, $9, CASE WHEN $2 = 'loaded' THEN now() END, CASE WHEN $2 = 'loaded' THEN now() END, now())
		ON CONFLICT (purchase_date) DO UPDATE SET
			status = EXCLUDED.status, rows_fetched = EXCLUDED.rows_fetched,
			rows_loaded = CASE WHEN EXCLUDED.status = 'loaded' THEN EXCLUDED.rows_loaded ELSE d.rows_loaded END,
			rows_rejected = EXCLUDED.rows_rejected, rejected_by_reason = EXCLUDED.rejected_by_reason,
			checksum = CASE WHEN EXCLUDED.status = 'loaded' THEN EXCLUDED.checksum ELSE d.checksum END,
			checksum_changes = d.checksum_changes + $10,
			attempts = d.attempts + 1, last_error = EXCLUDED.last_error, run_id = EXCLUDED.run_id,
			first_loaded_at = COALESCE(d.first_loaded_at, EXCLUDED.first_loaded_at),
			loaded_at = COALESCE(EXCLUDED.loaded_at, d.loaded_at), updated_at = now()`,
		d.date, status, sum.Fetched, sum.Loaded, sum.Rejected, string(reasons), sum.Checksum, lastErr, d.runID, b2i(changed))
	if err != nil {
		_ = d.Rollback()
		return "", fmt.Errorf("recording the load of %s: %w", d.date, err)
	}
	if err := d.tx.Commit(); err != nil {
		return "", &UnavailableError{Err: fmt.Errorf("committing %s: %w", d.date, err)}
	}
	return outcome, nil
}

func (d *DayTx) deleteDay(ctx context.Context) error {
	return d.exec(ctx, "removing the previous lines",
		`DELETE FROM marketplace.purchases WHERE purchase_date = $1`,
		`DELETE FROM marketplace.rejected_purchases WHERE purchase_date = $1`)
}

// exec runs statements in the day's transaction; those with a $1 get the date.
func (d *DayTx) exec(ctx context.Context, what string, stmts ...string) error {
	for _, q := range stmts {
		var args []any
		if strings.Contains(q, "$1") {
			args = []any{d.date}
		}
		if _, err := d.tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("%s of %s: %w", what, d.date, err)
		}
	}
	return nil
}

// Rollback abandons the transaction; safe to call twice.
func (d *DayTx) Rollback() error {
	if d.copy != nil {
		d.copy.Close()
		d.copy = nil
	}
	err := d.tx.Rollback()
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

// MarkDay records a day outside a load: no_data, or a failure that left no
// rows. A failure never downgrades a day that is already loaded; it only
// notes the error there.
func (s *Store) MarkDay(ctx context.Context, date time.Time, runID int64, status, lastErr string) error {
	d, err := s.BeginDay(ctx, date, runID)
	if err != nil {
		return err
	}
	defer d.Rollback()
	_, err = d.tx.ExecContext(ctx, `
		INSERT INTO marketplace.day_loads AS d (purchase_date, status, attempts, last_error, run_id, updated_at)
		VALUES ($1, $2, 1, NULLIF($3, ''), $4, now())
		ON CONFLICT (purchase_date) DO UPDATE SET
			status = CASE WHEN d.status = 'loaded' AND EXCLUDED.status = 'failed' THEN d.status ELSE EXCLUDED.status END,
			rows_fetched = CASE WHEN EXCLUDED.status = 'no_data' THEN 0 ELSE d.rows_fetched END,
			rows_loaded = CASE WHEN EXCLUDED.status = 'no_data' THEN 0 ELSE d.rows_loaded END,
			attempts = d.attempts + 1, last_error = EXCLUDED.last_error, run_id = EXCLUDED.run_id, updated_at = now()`,
		d.date, status, lastErr, runID)
	if err != nil {
		return fmt.Errorf("recording %s as %s: %w", d.date, status, err)
	}
	if status == StatusNoData {
		// A day the API has no data for has no lines, whatever was there.
		if err := d.deleteDay(ctx); err != nil {
			return err
		}
	}
	if err := d.tx.Commit(); err != nil {
		return &UnavailableError{Err: fmt.Errorf("committing %s: %w", d.date, err)}
	}
	return nil
}

func reasonCounts(m map[purchases.Reason]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[string(k)] = v
	}
	return out
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sanitize keeps a raw line storable as text: PostgreSQL refuses invalid
// UTF-8 and NUL bytes.
func sanitize(raw []byte) string {
	s := string(raw)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", `\u0000`)
	}
	return s
}
