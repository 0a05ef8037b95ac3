package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lib/pq"

	"github.com/marketplace-etl/marketplace-etl/internal/etl"
	"github.com/marketplace-etl/marketplace-etl/internal/purchases"
	"github.com/marketplace-etl/marketplace-etl/internal/redact"
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
	conn   *sql.Conn
	tx     *sql.Tx
	date   string
	runID  int64
	stored *DayState   // nil when the day was never attempted
	staged bool        // rows go to temp tables first, compared by checksum
	sum    *daySummary // the summary of the lines streamed, from summaryPool

	dayStart time.Time
	dbTime   time.Duration // spent waiting on the database
}

// DBTime is how long the day's load waited on PostgreSQL: COPY, replacing
// the day, bookkeeping, commit. The rest of a load is the API and parsing.
func (d *DayTx) DBTime() time.Duration { return d.dbTime }

// BeginDay opens the transaction for date, takes the per-date row lock
// (a concurrent loader of the same day waits for this one to finish) and
// reads the day's state as it is once the lock is held.
func (s *Store) BeginDay(ctx context.Context, date time.Time, runID int64) (*DayTx, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, &UnavailableError{Err: fmt.Errorf("connecting for the load of %s: %w", date.Format(time.DateOnly), err)}
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		conn.Close()
		return nil, &UnavailableError{Err: fmt.Errorf("beginning the load of %s: %w", date.Format(time.DateOnly), err)}
	}
	loc := s.opt.Location
	if loc == nil {
		loc = time.UTC
	}
	y, m, dd := date.Date()
	d := &DayTx{s: s, conn: conn, tx: tx, date: date.Format(time.DateOnly), runID: runID, dayStart: time.Date(y, m, dd, 0, 0, 0, 0, loc)}
	fail := func(what string, err error) (*DayTx, error) {
		d.Rollback()
		return nil, fmt.Errorf("%s for %s: %w", what, d.date, err)
	}
	// A row lock on the day in a bookkeeping table: unlike an advisory
	// lock, a role without UPDATE privilege there (the read-only one)
	// cannot take it and so cannot hold up loads. The lock and the read of
	// the day's state go in one round trip, as two statements of one
	// simple query: each takes its own snapshot, so the state is read as
	// it is once the lock is held (one statement, e.g. a WITH, would read
	// the state from before a wait for another loader). Without
	// arguments the date is a literal: time.Format's digits and dashes.
	var st DayState
	err = tx.QueryRowContext(ctx, `INSERT INTO marketplace.day_locks (purchase_date) VALUES ('`+d.date+`')
			ON CONFLICT (purchase_date) DO UPDATE SET purchase_date = EXCLUDED.purchase_date;
		SELECT purchase_date, status, checksum, attempts, rows_loaded
			FROM marketplace.day_loads WHERE purchase_date = '`+d.date+`'`).Scan(&st.Date, &st.Status, &st.Checksum, &st.Attempts, &st.Rows)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fail("waiting for the day's lock and reading the day's state", err)
	default:
		d.stored = &st
	}
	return d, nil
}

func (d *DayTx) timed(start time.Time) { d.dbTime += time.Since(start) }

// Stored is the day's state before this transaction (nil if never attempted).
func (d *DayTx) Stored() *DayState { return d.stored }

// Start prepares to receive the day's lines. A day already loaded is staged
// in temporary tables so that unchanged content can be discarded untouched;
// any other day streams straight into the tables after its old rows go.
func (d *DayTx) Start(ctx context.Context) error {
	defer d.timed(time.Now())
	d.staged = d.stored != nil && d.stored.Status == StatusLoaded && d.stored.Checksum.Valid
	if !d.staged {
		return d.deleteDay(ctx)
	}
	if _, err := d.tx.ExecContext(ctx, `
		CREATE TEMP TABLE IF NOT EXISTS stage_purchases (LIKE marketplace.purchases) ON COMMIT DELETE ROWS;
		CREATE TEMP TABLE IF NOT EXISTS stage_rejects (LIKE marketplace.rejected_purchases INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
		TRUNCATE stage_purchases, stage_rejects`); err != nil {
		return fmt.Errorf("preparing staging tables for %s: %w", d.date, err)
	}
	return nil
}

// Stream runs fill with a writer of the day's lines. The lines go to
// PostgreSQL by COPY, encoded here rather than through database/sql's
// per-row argument conversion, which cost as much as the rest of a load.
func (d *DayTx) Stream(ctx context.Context, fill func(w *DayWriter) error) error {
	return d.conn.Raw(func(dc any) error {
		w := &DayWriter{d: d, ctx: ctx, sum: &d.summary().DaySummary}
		w.purchases = newCopyStream(ctx, dc, d.copyQuery(purchaseColumns, "purchases", "stage_purchases"), &d.dbTime)
		w.rejects = newCopyStream(ctx, dc, d.copyQuery(rejectColumns, "rejected_purchases", "stage_rejects"), &d.dbTime)
		err := fill(w)
		if err == nil {
			err = w.close()
		}
		if err != nil {
			w.purchases.abort()
			w.rejects.abort()
		}
		if errors.Is(err, driver.ErrBadConn) {
			// Returning ErrBadConn from Raw makes database/sql close the
			// Conn, which waits for the day's open Tx on it: a deadlock.
			// The connection is lost either way; say so without the sentinel.
			err = &UnavailableError{Err: fmt.Errorf("copying %s: the database connection was lost: %s", d.date, err.Error())}
		}
		return err
	})
}

var (
	purchaseColumns = []string{"purchase_date", "line_no", "client_id", "gender", "product_id", "quantity", "price_per_item",
		"discount_per_item", "total_price", "seconds_from_midnight", "purchased_at", "run_id"}
	rejectColumns = []string{"purchase_date", "line_no", "reason", "detail", "raw", "run_id"}
)

func (d *DayTx) copyQuery(cols []string, table, stage string) string {
	if d.staged {
		return pq.CopyIn(stage, cols...)
	}
	return pq.CopyInSchema("marketplace", table, cols...)
}

// DayWriter receives one day's lines inside DayTx.Stream.
type DayWriter struct {
	d         *DayTx
	ctx       context.Context
	purchases *copyStream
	rejects   *copyStream
	sum       *purchases.DaySummary
	lineNo    int
	rejectNo  int
	nRejects  int // rejects buffered since the last flush
	line      []byte
	prefix    []byte // "date\t", the same on every line
	offset    string // the day's UTC offset, "?" when it changes within the day
}

// rejectBatch and rejectBatchBytes bound the rejects held in memory: only
// one COPY can run on a connection, so rejects wait in a buffer while the
// purchases stream, and a day of rejects goes out in batches. A rejected
// line can be up to ETL_MAX_LINE_BYTES long, hence the bound in bytes too.
const (
	rejectBatch      = 5000
	rejectBatchBytes = 4 << 20
)

// Add streams one accepted line.
func (w *DayWriter) Add(r *purchases.Record) error {
	w.lineNo++
	// The line is encoded straight into the COPY buffer: a copy of every
	// line through a line buffer was a measurable share of the client's CPU.
	if err := w.purchases.end(w.appendLine(w.purchases.begin(), r)); err != nil {
		return fmt.Errorf("copying a line of %s: %w", w.d.date, err)
	}
	w.sum.Add(r)
	return nil
}

// appendLine appends r as a line of COPY text, in purchaseColumns' order.
// Validated records have no negative value; the digits are written by
// appendUint, several times cheaper than strconv's for these small ints.
func (w *DayWriter) appendLine(b []byte, r *purchases.Record) []byte {
	if w.prefix == nil {
		w.prefix = append([]byte(w.d.date), '\t')
	}
	b = append(b, w.prefix...)
	b = appendInt(b, int64(w.lineNo))
	b = append(b, '\t')
	b = appendInt(b, r.ClientID)
	b = append(b, '\t', r.Gender, '\t')
	b = appendInt(b, r.ProductID)
	b = append(b, '\t')
	b = appendInt(b, r.Quantity)
	b = append(b, '\t')
	b = appendCents(b, r.Price)
	b = append(b, '\t')
	b = appendCents(b, r.Discount)
	b = append(b, '\t')
	b = appendCents(b, r.Total)
	b = append(b, '\t')
	b = appendInt(b, r.Seconds)
	b = append(b, '\t')
	b = w.appendPurchasedAt(b, r)
	b = append(b, '\t')
	return appendInt(b, w.d.runID)
}

// appendPurchasedAt formats the line's instant for COPY. On a day whose
// UTC offset does not change (every day of Europe/Moscow since 2014), the
// local clock is simply the seconds since midnight, which is much cheaper
// than formatting a time.Time per line.
func (w *DayWriter) appendPurchasedAt(b []byte, r *purchases.Record) []byte {
	if w.offset == "" {
		_, off0 := w.d.dayStart.Zone()
		_, off1 := w.d.dayStart.Add(purchases.SecondsPerDay*time.Second - time.Second).Zone()
		w.offset = "?"
		if off0 == off1 {
			w.offset = w.d.dayStart.Format("-07:00")
		}
	}
	if w.offset == "?" || r.Seconds < 0 || r.Seconds >= purchases.SecondsPerDay {
		return r.PurchasedAt(w.d.dayStart).AppendFormat(b, "2006-01-02 15:04:05Z07:00")
	}
	b = append(b, w.d.date...)
	h, m, sec := r.Seconds/3600, r.Seconds/60%60, r.Seconds%60
	b = append(b, ' ', byte('0'+h/10), byte('0'+h%10), ':', byte('0'+m/10), byte('0'+m%10), ':', byte('0'+sec/10), byte('0'+sec%10))
	return append(b, w.offset...)
}

// Reject keeps a refused line verbatim with its reason.
func (w *DayWriter) Reject(raw []byte, rej *purchases.Rejection) error {
	w.rejectNo++
	b := append(w.line[:0], w.d.date...)
	b = append(b, '\t')
	b = strconv.AppendInt(b, int64(w.rejectNo), 10)
	b = append(b, '\t')
	b = append(b, rej.Reason...)
	b = append(b, '\t')
	b = appendCopyText(b, sanitize([]byte(rej.Detail)))
	b = append(b, '\t')
	b = appendCopyText(b, sanitize(raw))
	b = append(b, '\t')
	b = strconv.AppendInt(b, w.d.runID, 10)
	w.line = b
	w.rejects.buffer(b)
	w.nRejects++
	if w.nRejects >= rejectBatch || len(w.rejects.buf) >= rejectBatchBytes {
		return w.flushRejects()
	}
	return nil
}

// flushRejects pauses the purchases COPY and sends the buffered rejects.
func (w *DayWriter) flushRejects() error {
	if err := w.purchases.close(); err != nil {
		return fmt.Errorf("copying the lines of %s: %w", w.d.date, err)
	}
	if err := w.rejects.close(); err != nil {
		return fmt.Errorf("copying the rejects of %s: %w", w.d.date, err)
	}
	w.nRejects = 0
	return nil
}

func (w *DayWriter) close() error { return w.flushRejects() }

// Accept ends the day's streams and commits the day as loaded: content
// unchanged since the last load is discarded untouched (Unchanged);
// otherwise the day's rows are replaced, its summary written after them
// when it is exact (purchases.DaySummary), and day_loads updated (Loaded).
func (d *DayTx) Accept(ctx context.Context, sum etl.Summary) (etl.Outcome, error) {
	defer d.timed(time.Now())
	if d.staged && d.stored.Checksum.String == sum.Checksum {
		return etl.Unchanged, d.Rollback()
	}
	if d.staged {
		// One round trip: the old day out, the staged one in.
		if err := d.exec(ctx, "replacing the lines and rejects", d.deleteDayQuery()+`;
			INSERT INTO marketplace.purchases SELECT * FROM stage_purchases;
			INSERT INTO marketplace.rejected_purchases SELECT * FROM stage_rejects`); err != nil {
			return 0, err
		}
	}
	// The old summary went with the old lines (deleteDay); a day whose
	// summary is not exact has none, and the marts read its lines.
	summary := d.summary()
	if !summary.Finish() {
		summary = nil
	}
	if err := d.record(ctx, sum, StatusLoaded, sql.NullString{}, d.staged, summary); err != nil {
		return 0, err
	}
	return etl.Loaded, d.commit()
}

// Refuse commits the day as failed with reason, loading none of its lines:
// its rejects are kept for inspection, and rows loaded by an earlier good
// load stay.
func (d *DayTx) Refuse(ctx context.Context, sum etl.Summary, reason string) error {
	defer d.timed(time.Now())
	if d.staged {
		// Keep the previous good lines; replace only the rejects.
		if err := d.exec(ctx, "keeping the rejects", `DELETE FROM marketplace.rejected_purchases WHERE purchase_date = $1`, d.date); err != nil {
			return err
		}
		if err := d.exec(ctx, "keeping the rejects", `INSERT INTO marketplace.rejected_purchases SELECT * FROM stage_rejects`); err != nil {
			return err
		}
	} else if err := d.exec(ctx, "discarding the lines", d.deleteLinesQuery()); err != nil {
		return err
	}
	if err := d.record(ctx, sum, StatusFailed, sql.NullString{String: errorText(reason), Valid: true}, false, nil); err != nil {
		return err
	}
	return d.commit()
}

// record writes the day's row of day_loads; changed counts a checksum change.
// A finished summary, if any, is written by the same statement, as a
// data-modifying WITH: no round trip of its own.
func (d *DayTx) record(ctx context.Context, sum etl.Summary, status string, lastErr sql.NullString, changed bool, summary *daySummary) error {
	reasons, _ := json.Marshal(reasonCounts(sum.ByReason))
	args := []any{d.date, status, sum.Fetched, sum.Loaded, sum.Rejected, string(reasons), sum.Checksum, lastErr, d.runID, b2i(changed)}
	var with string
	if summary != nil {
		with = "WITH summary AS (" + insertSummary(len(args)+1) + ")"
		args = summary.values(args)
	}
	_, err := d.tx.ExecContext(ctx, with+`
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
			loaded_at = COALESCE(EXCLUDED.loaded_at, d.loaded_at), updated_at = now()`, args...)
	if err != nil {
		_ = d.Rollback()
		return fmt.Errorf("recording the load of %s: %w", d.date, err)
	}
	return nil
}

// commit commits the day and returns the connection to the pool.
func (d *DayTx) commit() error {
	if err := d.tx.Commit(); err != nil {
		d.Rollback()
		return &UnavailableError{Err: fmt.Errorf("committing %s: %w", d.date, err)}
	}
	return d.Rollback()
}

// deleteDay removes the day's lines, summary and rejects. Every day of a
// backfill runs this: one simple query without arguments (the date literal
// is time.Format's digits and dashes) is one round trip, where each
// statement with arguments costs lib/pq two.
func (d *DayTx) deleteDay(ctx context.Context) error {
	return d.exec(ctx, "removing the previous lines and rejects", d.deleteDayQuery())
}

func (d *DayTx) deleteDayQuery() string {
	return d.deleteLinesQuery() + `;
		DELETE FROM marketplace.rejected_purchases WHERE purchase_date = '` + d.date + `'`
}

// deleteLinesQuery removes the day's lines and, with them, its summary: a
// summary exists only while the lines it sums are there
// (migrations/00014_day_summaries.sql), so no statement removes one
// without the other.
func (d *DayTx) deleteLinesQuery() string {
	return `DELETE FROM marketplace.purchases WHERE purchase_date = '` + d.date + `';
		DELETE FROM marketplace.day_summaries WHERE purchase_date = '` + d.date + `'`
}

// summary is the day's summary, empty until lines are streamed.
func (d *DayTx) summary() *daySummary {
	if d.sum == nil {
		d.sum = getSummary()
	}
	return d.sum
}

// exec runs one statement in the day's transaction.
func (d *DayTx) exec(ctx context.Context, what, q string, args ...any) error {
	if _, err := d.tx.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("%s of %s: %w", what, d.date, err)
	}
	return nil
}

// Rollback abandons the transaction and returns the connection; safe to
// call twice.
func (d *DayTx) Rollback() error {
	if d.sum != nil {
		summaryPool.Put(d.sum)
		d.sum = nil
	}
	err := d.tx.Rollback()
	if errors.Is(err, sql.ErrTxDone) {
		err = nil
	}
	if cerr := d.conn.Close(); err == nil && !errors.Is(cerr, sql.ErrConnDone) {
		err = cerr
	}
	return err
}

// MarkNoData records that the API has no data for date, removing any lines
// it had. It never downgrades a day that is already loaded: an API glitch
// must not delete lines, so such a day keeps its lines, notes the answer,
// and MarkNoData reports keptLoaded.
func (s *Store) MarkNoData(ctx context.Context, date time.Time, runID int64) (keptLoaded bool, err error) {
	status, err := s.markDay(ctx, date, runID, StatusNoData, "")
	return status == StatusLoaded, err
}

// MarkFailed records a failure that left no rows. A day already loaded
// stays loaded and only notes the error.
func (s *Store) MarkFailed(ctx context.Context, date time.Time, runID int64, reason string) error {
	_, err := s.markDay(ctx, date, runID, StatusFailed, reason)
	return err
}

// markDay records a day outside a load and reports the status the day has
// afterwards.
func (s *Store) markDay(ctx context.Context, date time.Time, runID int64, status, lastErr string) (string, error) {
	d, err := s.BeginDay(ctx, date, runID)
	if err != nil {
		return "", err
	}
	defer d.Rollback()
	if d.stored != nil && d.stored.Status == StatusLoaded {
		if status == StatusNoData {
			lastErr = "the API answered with its no-data sentence for a day that has lines; the loaded lines are kept"
		}
		status = StatusLoaded
	}
	_, err = d.tx.ExecContext(ctx, `
		INSERT INTO marketplace.day_loads AS d (purchase_date, status, attempts, last_error, run_id, updated_at)
		VALUES ($1, $2, 1, NULLIF($3, ''), $4, now())
		ON CONFLICT (purchase_date) DO UPDATE SET
			status = EXCLUDED.status,
			rows_fetched = CASE WHEN EXCLUDED.status = 'no_data' THEN 0 ELSE d.rows_fetched END,
			rows_loaded = CASE WHEN EXCLUDED.status = 'no_data' THEN 0 ELSE d.rows_loaded END,
			attempts = d.attempts + 1, last_error = EXCLUDED.last_error, run_id = EXCLUDED.run_id, updated_at = now()`,
		d.date, status, errorText(lastErr), runID)
	if err != nil {
		return "", fmt.Errorf("recording %s as %s: %w", d.date, status, err)
	}
	if status == StatusNoData {
		// A day the API has no data for has no lines (a failed day may have
		// kept the rejects of a refused load).
		if err := d.deleteDay(ctx); err != nil {
			return "", err
		}
	}
	if err := d.tx.Commit(); err != nil {
		return "", &UnavailableError{Err: fmt.Errorf("committing %s: %w", d.date, err)}
	}
	return status, d.Rollback()
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

// maxErrorText bounds an error stored in day_loads.last_error or
// etl_runs.error.
const maxErrorText = 2000

// errorText makes an error message safe to store, so that the record of a
// failure always lands: credentials hidden (the read-only Metabase role
// can read these tables), valid UTF-8 without NUL (PostgreSQL refuses
// both), and at most maxErrorText bytes, cut between characters.
func errorText(msg string) string {
	s := sanitize([]byte(redact.String(msg)))
	if len(s) > maxErrorText {
		cut := maxErrorText
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
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
