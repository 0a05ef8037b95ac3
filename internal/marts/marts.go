// Package marts keeps the analytics marts (schema marts, created by
// migrations 00010 and 00011) up to date with the loaded purchase lines.
//
// The marts are small tables maintained for the days that changed, and
// views over them. Every write of marketplace.day_loads queues its day in
// marketplace.marts_queue, by trigger, in the day's own transaction. Update
// drains that queue in one transaction: per-day tables are recomputed for
// the queued days, per-client and per-month state is corrected by
// subtracting the touched clients' old contribution and adding the new one,
// and the global parts (RFM tercile thresholds, the ABC/XYZ period) are
// derived from those small tables. A failure or a kill rolls all of it
// back and leaves the queue as it was, so the next Update redoes it: the
// marts are never left stale, whatever happened to a pass.
package marts

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
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

// Helpers lists the internal relations the marts are built from, e.g. for
// a check that they exist or a comparison of two databases.
var Helpers = []string{
	"marts.client_day",
	"marts.client_days_applied",
	"marts.product_days",
	"marts.product_months",
	"marts.client_first_purchase",
	"marts.client_stats",
	"marts.client_events",
	"marts.cohort_activity",
	"marts.product_day",
	"marts.product_month",
	"marts.monthly_products",
	"marts.period_products",
	"marts.product_period",
	"marts.product_sales_12m",
	"marts.abc_xyz_period",
	"marts.client_rfm_scores",
	"marts.rfm_thresholds",
	"marts.rfm_histogram",
}

// Tables are the tables Update writes; Rebuild empties them first.
var Tables = append(append([]string{}, dayHalf.tables...), clientHalf.tables...)

// DefaultLockTimeout bounds the wait for another process's marts update
// when the caller sets none.
const DefaultLockTimeout = 5 * time.Minute

// Updater maintains the marts of one database.
type Updater struct {
	DB  *sqlx.DB
	Log *slog.Logger
	// LockTimeout bounds the wait for another process updating the marts
	// (ETL_MARTS_LOCK_TIMEOUT); 0 means DefaultLockTimeout.
	LockTimeout time.Duration
}

// Result is what one Update or Rebuild did.
type Result struct {
	Days     int           // distinct days brought up to date
	Duration time.Duration // the whole transaction, lock wait included
}

// LockTimeoutError: another process held the marts lock for longer than
// the lock timeout. The queued days stay queued.
type LockTimeoutError struct{ Timeout time.Duration }

func (e *LockTimeoutError) Error() string {
	return fmt.Sprintf("another process has been updating the marts for longer than ETL_MARTS_LOCK_TIMEOUT (%s); the changed days stay queued for the next pass", e.Timeout)
}

// Refresh brings the marts up to date with the default lock timeout and
// returns how long it took; see Updater.Update.
func Refresh(ctx context.Context, db *sqlx.DB, log *slog.Logger) (time.Duration, error) {
	res, err := (&Updater{DB: db, Log: log}).Update(ctx)
	return res.Duration, err
}

// Update drains the queue of changed days: afterwards the marts reflect
// every load committed before it started. It costs what the queued days
// changed, not the size of the history, and nothing when the queue is empty.
func (u *Updater) Update(ctx context.Context) (Result, error) {
	return u.run(ctx, false, false)
}

// ErrBusy: TryUpdate found another process updating the marts.
var ErrBusy = errors.New("another process is updating the marts")

// TryUpdate is Update when no other process is updating the marts, and
// returns ErrBusy at once otherwise (nothing recorded: it is not a
// failure). A pass uses it to keep the marts close behind its loads while
// it runs; its final Update waits for the lock.
func (u *Updater) TryUpdate(ctx context.Context) (Result, error) {
	return u.run(ctx, false, true)
}

// Rebuild recomputes every mart from all loaded lines, as if every day had
// changed. It gives the same content as the incremental updates (the tests
// check it) and is the remedy for lines written outside marketplace-etl.
// Readers keep seeing the previous content until it commits.
func (u *Updater) Rebuild(ctx context.Context) (Result, error) {
	return u.run(ctx, true, false)
}

func (u *Updater) run(ctx context.Context, rebuild, nowait bool) (Result, error) {
	start := time.Now()
	what := "updating the marts"
	if rebuild {
		what = "rebuilding the marts"
	}
	conn, err := u.DB.Conn(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("%s: getting a connection: %w", what, err)
	}
	defer conn.Close()
	var started time.Time
	if err := conn.QueryRowContext(ctx, `SELECT clock_timestamp()`).Scan(&started); err != nil {
		return Result{}, fmt.Errorf("%s: reading the database clock: %w", what, err)
	}
	days, err := u.update(ctx, conn, rebuild, nowait)
	res := Result{Days: days, Duration: time.Since(start)}
	if errors.Is(err, ErrBusy) {
		return res, err
	}
	if err != nil {
		err = fmt.Errorf("%s: %w", what, err)
		// Record the failure even when ctx is what failed, on a connection
		// from the pool: a cancelled ctx makes database/sql close conn in
		// the background, and using a Conn while it closes can crash.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if serr := setState(rctx, u.DB, "failed", started, err); serr != nil {
			u.log().Warn("could not record the failed marts update", "err", serr)
		}
		return res, err
	}
	if days > 0 || rebuild {
		attrs := []any{"days", days, "rebuild", rebuild, "duration", res.Duration.Round(time.Millisecond)}
		if nowait {
			attrs = append(attrs, "behind_loads", true) // not the pass's final update
		}
		u.log().Info("marts updated", attrs...)
	}
	return res, nil
}

func (u *Updater) log() *slog.Logger {
	if u.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return u.Log
}

// The marts are kept in two halves that read nothing of each other: the
// day half (daily_sales, sales_by_gender, sales_by_hour, product_days,
// product_months and the ABC/XYZ period) and the client half
// (client_stats, client_events, cohort_activity, the RFM histograms and
// thresholds). Each drains its own entries of the queue in its own
// transaction, and the two run side by side on two connections: a first
// update after a backfill takes about as long as the bigger half instead
// of both. Each half is atomic: a failure or a kill leaves its own queue
// entries for the next update. Between the two commits a reader may see
// one half a moment ahead of the other.
type half struct {
	part   string   // its entries in marketplace.marts_queue
	tables []string // what it writes, emptied by a rebuild
	// lock, when set, is the half's own lock, taken by its transaction
	// when it runs in a transaction of its own (see martsLock).
	lock string
	// update brings the half's tables up to date with the changed days of
	// b (none: a rebuild of an empty database).
	update func(ctx context.Context, b *batch) error
}

// batch is one half's update: its transaction and the days it drained.
type batch struct {
	tx   *sql.Tx
	conn *sql.Conn // tx's connection, for COPY
	log  *slog.Logger
	// days are the changed days, sorted and distinct ($1 of the steps);
	// of them, fromLines ($2) are computed from their lines and
	// fromSummaries ($3) read from marketplace.day_summaries. A rebuild
	// reads every day from its lines.
	days, fromLines, fromSummaries []string
	rebuild                        bool
}

var (
	dayHalf = half{part: "days", tables: []string{
		"marts.daily_sales", "marts.sales_by_gender", "marts.sales_by_hour", "marts.product_days",
		"marts.product_months", "marts.abc_xyz_period", "marts.period_products",
	}, lock: dayLock, update: updateDays}
	clientHalf = half{part: "clients", tables: []string{
		"marts.client_stats", "marts.client_days_applied", "marts.client_events", "marts.cohort_activity",
		"marts.rfm_thresholds", "marts.rfm_histogram",
	}, update: updateClients}
)

// The locks are the two rows of marketplace.marts_lock, taken FOR UPDATE
// (a row lock needs UPDATE privilege on the table: the read-only role can
// neither take them nor hold them). An update holds martsLock from start
// to end; whichever transaction updates the day half holds dayLock too.
// A drain behind the loads that only does the day half lets go of
// martsLock as soon as it holds dayLock: the pass's final update, when
// the loads end in the middle of such a drain, then starts its client
// half at once and only its day half waits for the drain. Both are
// always taken in that order.
const (
	martsLock = `SELECT id FROM marketplace.marts_lock WHERE id FOR UPDATE`
	dayLock   = `SELECT id FROM marketplace.marts_lock WHERE NOT id FOR UPDATE`
)

// lock takes the lock q in tx: at once or ErrBusy (nowait), or within the
// lock timeout or a LockTimeoutError.
func (u *Updater) lock(ctx context.Context, tx *sql.Tx, q string, nowait bool) error {
	if nowait {
		q += ` NOWAIT`
	}
	if _, err := tx.ExecContext(ctx, q); err != nil {
		var pe *pq.Error
		if errors.As(err, &pe) && pe.Code == "55P03" { // lock_not_available
			if nowait {
				return ErrBusy
			}
			return &LockTimeoutError{Timeout: u.lockTimeout()}
		}
		return fmt.Errorf("taking the marts lock: %w", err)
	}
	return nil
}

// update does the whole update and returns the number of days it brought
// up to date. conn holds the marts lock, and runs the client half; the day
// half runs on a second connection meanwhile.
func (u *Updater) update(ctx context.Context, conn *sql.Conn, rebuild, nowait bool) (int, error) {
	tx, err := u.begin(ctx, conn)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	if err := u.lock(ctx, tx, martsLock, nowait); err != nil {
		return 0, err
	}
	if nowait {
		// Behind the loads, the day half only until the client half has
		// its first update: done at once at the end of the pass, that
		// costs a fraction of many incremental ones. The day half costs
		// the same either way.
		fresh, err := clientsFresh(ctx, tx)
		if err != nil {
			return 0, err
		}
		if fresh {
			// The day half lets go of the marts lock as soon as it holds
			// its own.
			release := func() error {
				if err := tx.Commit(); err != nil {
					return fmt.Errorf("letting go of the marts lock: %w", err)
				}
				return nil
			}
			n, err := u.updateHalfAlone(ctx, dayHalf, false, true, release)
			if err != nil {
				return 0, fmt.Errorf("the day marts: %w", err)
			}
			return n, nil
		}
	}
	var dayDays int
	var dayErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				dayErr = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
			}
		}()
		dayDays, dayErr = u.updateHalfAlone(ctx, dayHalf, rebuild, nowait, nil)
	}()
	n, err := u.updateHalf(ctx, clientHalf, conn, tx, rebuild)
	<-done
	if err != nil {
		return 0, fmt.Errorf("the client marts: %w", err)
	}
	if errors.Is(dayErr, ErrBusy) {
		// Behind the loads, another pass's drain has the day half: its
		// days stay queued for that pass or the next update.
		dayErr = nil
	}
	if dayErr != nil {
		// The client half is good: keep it, and report the day half.
		if err := tx.Commit(); err != nil {
			return 0, fmt.Errorf("the client marts: committing: %w", err)
		}
		return 0, fmt.Errorf("the day marts: %w", dayErr)
	}
	if n > 0 || dayDays > 0 || rebuild {
		var started time.Time
		if err := tx.QueryRowContext(ctx, `SELECT now()`).Scan(&started); err != nil {
			return 0, fmt.Errorf("reading the database clock: %w", err)
		}
		if err := setState(ctx, tx, "succeeded", started, nil); err != nil {
			return 0, err
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("the client marts: committing: %w", err)
	}
	return max(n, dayDays), nil
}

func (u *Updater) lockTimeout() time.Duration {
	if u.LockTimeout <= 0 {
		return DefaultLockTimeout
	}
	return u.LockTimeout
}

// begin starts a transaction of the update on conn.
func (u *Updater) begin(ctx context.Context, conn *sql.Conn) (*sql.Tx, error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("beginning a transaction: %w", err)
	}
	// Every lock wait of the update is bounded by the lock timeout. The
	// statements themselves are bounded by ctx: a rebuild over years of
	// lines may legitimately outlast the loads' statement timeout.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d; SET LOCAL statement_timeout = 0; SET LOCAL work_mem = '128MB'`,
		max(1, u.lockTimeout().Milliseconds()))); err != nil { // 0 would mean no limit
		tx.Rollback()
		return nil, fmt.Errorf("setting session limits: %w", err)
	}
	return tx, nil
}

// updateHalfAlone runs updateHalf in a transaction of its own, on a
// connection of its own, which takes the half's lock (nowait: or ErrBusy),
// then calls locked if set, and commits.
func (u *Updater) updateHalfAlone(ctx context.Context, h half, rebuild, nowait bool, locked func() error) (int, error) {
	conn, err := u.DB.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("getting a connection: %w", err)
	}
	defer conn.Close()
	tx, err := u.begin(ctx, conn)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	if h.lock != "" {
		if err := u.lock(ctx, tx, h.lock, nowait); err != nil {
			return 0, err
		}
	}
	if locked != nil {
		if err := locked(); err != nil {
			return 0, err
		}
	}
	n, err := u.updateHalf(ctx, h, conn, tx, rebuild)
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("committing: %w", err)
	}
	return n, nil
}

// updateHalf drains h's queue entries and updates its tables, in tx on
// conn.
func (u *Updater) updateHalf(ctx context.Context, h half, conn *sql.Conn, tx *sql.Tx, rebuild bool) (int, error) {
	if rebuild {
		for _, t := range h.tables {
			// DELETE, not TRUNCATE: TRUNCATE needs an ACCESS EXCLUSIVE lock
			// that any reader's long SELECT would hold up.
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+t); err != nil {
				return 0, fmt.Errorf("emptying %s: %w", t, err)
			}
		}
	}
	days, err := drainQueue(ctx, tx, h.part, rebuild)
	if err != nil {
		return 0, err
	}
	if len(days) == 0 && !rebuild {
		return 0, nil
	}
	b := &batch{tx: tx, conn: conn, log: u.log(), days: days, rebuild: rebuild}
	if err := b.split(ctx); err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := h.update(ctx, b); err != nil {
		return 0, err
	}
	u.log().Debug("marts half updated", "half", h.part, "days", len(days), "from_summaries", len(b.fromSummaries),
		"duration", time.Since(t0).Round(time.Microsecond))
	return len(days), nil
}

// split sorts the changed days into those with a summary and the others.
func (b *batch) split(ctx context.Context) error {
	b.fromLines, b.fromSummaries = b.days, nil
	if b.rebuild || len(b.days) == 0 {
		return nil
	}
	rows, err := b.tx.QueryContext(ctx, `SELECT purchase_date::text FROM marketplace.day_summaries
		WHERE purchase_date = ANY($1::date[]) ORDER BY 1`, pq.Array(b.days))
	if err != nil {
		return fmt.Errorf("reading which days have a summary: %w", err)
	}
	defer rows.Close()
	has := map[string]bool{}
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return fmt.Errorf("reading which days have a summary: %w", err)
		}
		has[d] = true
		b.fromSummaries = append(b.fromSummaries, d)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading which days have a summary: %w", err)
	}
	b.fromLines = nil
	for _, d := range b.days {
		if !has[d] {
			b.fromLines = append(b.fromLines, d)
		}
	}
	return nil
}

// updateClients is the client half's update.
func updateClients(ctx context.Context, b *batch) error {
	if len(b.days) > 0 {
		fresh, err := clientsFresh(ctx, b.tx)
		if err != nil {
			return err
		}
		steps := clientSteps(fresh)
		if fresh && !b.rebuild {
			// A first update is built here from the days' summaries; a
			// rebuild, the reference, stays in SQL over the lines.
			built, err := buildClients(ctx, b)
			if err != nil {
				return err
			}
			if built {
				steps = clientTail(true)
			}
		}
		if err := runSteps(ctx, b, steps); err != nil {
			return err
		}
	}
	return updateRFM(ctx, b.tx)
}

// clientsFresh tells whether the client half has never been updated (or was
// emptied for a rebuild): its next update is a first one.
func clientsFresh(ctx context.Context, tx *sql.Tx) (bool, error) {
	var fresh bool
	if err := tx.QueryRowContext(ctx, `SELECT NOT EXISTS (SELECT FROM marts.client_stats)`).Scan(&fresh); err != nil {
		return false, fmt.Errorf("reading the state of the marts: %w", err)
	}
	return fresh, nil
}

// updateDays is the day half's update.
func updateDays(ctx context.Context, b *batch) error {
	if len(b.days) > 0 {
		if err := runSteps(ctx, b, daySteps(len(b.fromLines) > 0, len(b.fromSummaries) > 0, len(b.days) > 31)); err != nil {
			return err
		}
	}
	return updatePeriod(ctx, b.tx, b.days)
}

// runSteps runs the statements of steps with the batch's days as their
// arguments $1, $2 and $3 (see batch), as many as a statement uses.
func runSteps(ctx context.Context, b *batch, steps []step) error {
	args := []any{pq.Array(b.days), pq.Array(b.fromLines), pq.Array(b.fromSummaries)}
	for _, s := range steps {
		t0 := time.Now()
		for _, q := range s.sql {
			if consecutive(b.days) {
				q = strings.ReplaceAll(q, onChangedDays, onDayRange(1))
			}
			if consecutive(b.fromLines) {
				q = strings.ReplaceAll(q, onLineDays, onDayRange(2))
			}
			// Only the arguments the statement uses, numbered from $1: the
			// server cannot type a parameter that is not referenced.
			var used []any
			for i, a := range args {
				if p := fmt.Sprintf("$%d", i+1); strings.Contains(q, p) {
					used = append(used, a)
					q = strings.ReplaceAll(q, p, fmt.Sprintf("$%d", len(used)))
				}
			}
			if _, err := b.tx.ExecContext(ctx, q, used...); err != nil {
				return fmt.Errorf("%s: %w", s.what, err)
			}
		}
		if s.fn != nil {
			if err := s.fn(ctx, b); err != nil {
				return fmt.Errorf("%s: %w", s.what, err)
			}
		}
		b.log.Debug("marts step", "step", s.what, "duration", time.Since(t0).Round(time.Microsecond))
	}
	return nil
}

// consecutive tells whether days (sorted, distinct, YYYY-MM-DD) are a run
// of consecutive calendar days.
func consecutive(days []string) bool {
	if len(days) == 0 {
		return false
	}
	first, err := time.Parse(time.DateOnly, days[0])
	if err != nil {
		return false
	}
	return first.AddDate(0, 0, len(days)-1).Format(time.DateOnly) == days[len(days)-1]
}

// drainQueue takes the queued days of a half out of the queue and returns them,
// distinct and sorted. Only entries of committed loads are visible and
// taken, so a load committing meanwhile stays queued for the next Update.
// A rebuild takes every day that has a load state or lines.
func drainQueue(ctx context.Context, tx *sql.Tx, part string, rebuild bool) ([]string, error) {
	q, args := `DELETE FROM marketplace.marts_queue WHERE part = $1 RETURNING purchase_date::text`, []any{part}
	if rebuild {
		args = nil
		if _, err := tx.ExecContext(ctx, `DELETE FROM marketplace.marts_queue WHERE part = $1`, part); err != nil {
			return nil, fmt.Errorf("emptying the queue: %w", err)
		}
		// The recursive walk reads one index entry per distinct day, not
		// every line.
		q = `WITH RECURSIVE d AS (
				SELECT min(purchase_date) AS day FROM marketplace.purchases
				UNION ALL
				SELECT (SELECT min(purchase_date) FROM marketplace.purchases WHERE purchase_date > d.day) FROM d WHERE d.day IS NOT NULL
			)
			SELECT day::text FROM d WHERE day IS NOT NULL
			UNION SELECT purchase_date::text FROM marketplace.day_loads`
	}
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("reading the queue of changed days: %w", err)
	}
	defer rows.Close()
	seen := map[string]bool{}
	var days []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, fmt.Errorf("reading the queue of changed days: %w", err)
		}
		if !seen[d] {
			seen[d] = true
			days = append(days, d)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the queue of changed days: %w", err)
	}
	sort.Strings(days)
	return days, nil
}

// step is one part of an update: statements run in order, those with a $1
// get the array of changed days.
type step struct {
	what string
	sql  []string
	// fn, when set, runs after the statements.
	fn func(ctx context.Context, b *batch) error
}

// clientActivity adds (sign 1) or subtracts (sign -1) the contribution of
// the clients of scope (x: client_stats rows) to client_events and
// cohort_activity. Both come from one pass over the clients' purchase days
// (sorted, so the previous day is the previous element), grouped two ways
// at once; tag names the temporary table of that pass.
//
// client_events: rolling distinct counts without a self-join. A client is
// in the N-day window of day x when it bought on some d in [x-N+1, x], i.e.
// x lies in [d, d+N). Each purchase day adds the part of that interval not
// already covered by the client's previous purchase day p:
// [max(d, p+N), d+N). The intervals of one client are then disjoint, so a
// running sum of +1/-1 events counts distinct clients exactly, and a
// client's events depend on its own days only. The events of a purchase
// day depend only on the day and the gap to the previous one (capped at
// 30: longer gaps give the same events), so the purchase days are counted
// per (day, gap) and each of those few groups, not each purchase day,
// expands into its four events.
//
// cohort_activity: a client counts in its cohort (the month of its first
// purchase) as active in a month once, on the first of its days in that
// month.
func clientActivity(sign, scope, tag string) []string {
	t := "marts_activity_" + tag
	return []string{
		// Each expression where it is cheapest: the cohort once per client,
		// the month once per day (the previous day is in this month when
		// it is not before its first day).
		`CREATE TEMP TABLE ` + t + ` ON COMMIT DROP AS
		SELECT cohort_month, month, day, gap, count(*) AS n, count(*) FILTER (WHERE prev IS NULL OR prev < month) AS active,
		       sum(revenue) AS revenue, GROUPING(day, gap) AS by_month
		FROM (SELECT cohort_month, ` + dayOf("days[i]") + ` AS day, ` + dayOf("days[i - 1]") + ` AS prev,
		             CASE WHEN i > 1 THEN least(days[i] - days[i - 1], 30) END AS gap,
		             ` + month(dayOf("days[i]")) + ` AS month, revenues[i] AS revenue
		      FROM (SELECT cohort_month, days, revenues, generate_subscripts(days, 1) AS i
		            FROM (SELECT ` + month(dayOf("x.first_day")) + ` AS cohort_month, x.days::integer[] AS days, x.revenues::numeric[] AS revenues
		                  FROM ` + scope + ` OFFSET 0) c) e) e
		GROUP BY GROUPING SETS ((cohort_month, month), (day, gap))`,
		`INSERT INTO marts.client_events AS t (day, d7, d30, new_clients)
		SELECT e.day, ` + sign + ` * sum(e.d7), ` + sign + ` * sum(e.d30), ` + sign + ` * sum(e.n)
		FROM (SELECT day, gap, n FROM ` + t + ` WHERE by_month = 0) c
		-- A first purchase (gap null) opens both windows on its day:
		-- greatest ignores nulls.
		CROSS JOIN LATERAL (VALUES
			(c.day + greatest(0, 7 - c.gap), c.n, 0, CASE WHEN c.gap IS NULL THEN c.n ELSE 0 END),
			(c.day + 7, -c.n, 0, 0),
			(c.day + greatest(0, 30 - c.gap), 0, c.n, 0),
			(c.day + 30, 0, -c.n, 0)) AS e(day, d7, d30, n)
		GROUP BY e.day
		ON CONFLICT (day) DO UPDATE SET d7 = t.d7 + EXCLUDED.d7, d30 = t.d30 + EXCLUDED.d30,
			new_clients = t.new_clients + EXCLUDED.new_clients`,
		`INSERT INTO marts.cohort_activity AS t (cohort_month, activity_month, active_clients, revenue)
		SELECT cohort_month::date, month::date, ` + sign + ` * active, ` + sign + ` * revenue
		FROM ` + t + ` WHERE by_month <> 0
		ON CONFLICT (cohort_month, activity_month) DO UPDATE SET
			active_clients = t.active_clients + EXCLUDED.active_clients, revenue = t.revenue + EXCLUDED.revenue`,
	}
}

// month is the first day of the month of the date expression d; through
// timestamp, which unlike timestamptz needs no time zone arithmetic.
func month(d string) string { return `date_trunc('month', (` + d + `)::timestamp)` }

// dayOf is the date of the day number n (client_stats' days: days since
// 2000-01-01, which the server parses as integers where dates cost it a
// date_in each).
func dayOf(n string) string { return `(date '2000-01-01' + ` + n + `)` }

// dayNumber is the day number of the date expression d.
func dayNumber(d string) string { return `(` + d + ` - date '2000-01-01')` }

// changedDayNumbers is the changed days ($1) as day numbers.
var changedDayNumbers = `ARRAY(SELECT ` + dayNumber("d") + ` FROM unnest($1::date[]) AS d)`

// rfmHistogram adds or subtracts the clients of scope (x: client_stats
// rows) to the RFM histograms.
func rfmHistogram(sign, scope string) string {
	// One grouping per measure: three small aggregates instead of one over
	// three rows per client.
	return `INSERT INTO marts.rfm_histogram AS t (measure, bucket, clients)
		WITH c AS MATERIALIZED (SELECT x.last_day, x.frequency, x.m_bucket FROM ` + scope + `)
		SELECT 'r', last_day, ` + sign + ` * count(*) FROM c GROUP BY 2
		UNION ALL
		SELECT 'f', frequency::integer, ` + sign + ` * count(*) FROM c GROUP BY 2
		UNION ALL
		SELECT 'm', m_bucket, ` + sign + ` * count(*) FROM c GROUP BY 2
		ON CONFLICT (measure, bucket) DO UPDATE SET clients = t.clients + EXCLUDED.clients`
}

// statsOf is the client_stats rows of the client days of src (client_id,
// day, revenue), which must come sorted by client and day: array_agg keeps
// the input order, so the arrays come out sorted by day without a sort per
// client.
func statsOf(src string) string {
	return `SELECT client_id, days[1], days[cardinality(days)], cardinality(days), monetary,
		       floor(400 * ln(1 + monetary::float8))::integer, days::text, revenues::text
		FROM (SELECT client_id, array_agg(day) AS days, array_agg(revenue) AS revenues, sum(revenue) AS monetary
		      FROM (` + src + `) s
		      GROUP BY client_id) g`
}

const statsColumns = `(client_id, first_day, last_day, frequency, monetary, m_bucket, days, revenues)`

// sorted runs q, an INSERT whose rows are grouped and then ordered by the
// same key, with grouping by sorting: sorting the narrow input rows and
// grouping them in order costs a fraction of hashing them into groups and
// sorting the wide groups afterwards (seconds on a first update of millions
// of lines), and the planner, unsure of the number of groups, picks the
// latter.
func sorted(q string) []string {
	return []string{`SET LOCAL enable_hashagg = off`, q, `SET LOCAL enable_hashagg = on`}
}

// onChangedDays restricts purchase lines to the changed days, onLineDays
// to those of them computed from their lines. When those are a run of
// consecutive days (a daily pass, a backfill's range) it is replaced by a
// range, which the primary key answers directly instead of a join with the
// list.
const (
	onChangedDays = `purchase_date IN (SELECT unnest($1::date[]))`
	onLineDays    = `purchase_date IN (SELECT unnest($2::date[]))`
)

// onDayRange is the range of the days in argument n.
func onDayRange(n int) string {
	a := fmt.Sprintf("($%d::date[])", n)
	return `purchase_date BETWEEN ` + a + `[1] AND ` + a + `[cardinality(` + a + `)]`
}

// months of the changed days, for the per-month tables.
const changedMonths = `(SELECT DISTINCT date_trunc('month', d::timestamp)::date FROM unnest($1::date[]) AS d)`

// changedMonths5 is changedMonths with the days in $5.
var changedMonths5 = strings.ReplaceAll(changedMonths, "$1", "$5")

// clientSteps lists the statements of the client half. fresh: the client
// table is empty (first update, rebuild), so there is no old contribution
// to take away and every client is new: the client rows are written
// straight from the lines, and the new contributions read back from them.
func clientSteps(fresh bool) []step {
	var out []step
	// newScope is where the new client rows are: the touched clients' in a
	// temporary table, or all of them.
	newScope := "marts_new x"
	if fresh {
		newScope = "marts.client_stats x"
		out = append(out, step{what: "writing the client rows", sql: append([]string{
			// Every statement of a fresh update handles the whole history:
			// room for its sorts and hashes in memory, where they fit.
			`SET LOCAL work_mem = '256MB'`}, append(emptyClients,
			sorted(`INSERT INTO marts.client_stats `+statsColumns+`
			`+statsOf(`SELECT client_id, `+dayNumber("purchase_date")+` AS day, sum(total_price) AS revenue
				FROM marketplace.purchases WHERE `+onChangedDays+`
				GROUP BY 1, 2 ORDER BY 1, 2`)+`
			ORDER BY client_id`)...)...)})
	} else {
		out = append(out,
			step{what: "finding the clients of the changed days", sql: append(sorted(
				`CREATE TEMP TABLE marts_days ON COMMIT DROP AS
				SELECT client_id, `+dayNumber("purchase_date")+` AS day, sum(total_price) AS revenue
				FROM marketplace.purchases WHERE `+onLineDays+`
				GROUP BY 1, 2`),
				`INSERT INTO marts_days
				SELECT u.client_id, `+dayNumber("s.purchase_date")+`, u.revenue
				FROM marketplace.day_summaries s, unnest(s.client_ids::integer[], s.client_revenue::numeric[]) AS u(client_id, revenue)
				WHERE s.purchase_date = ANY($3::date[])`,
				// The touched clients are few (a day's buyers) next to all
				// clients: their rows are fetched by primary key. The
				// planner, costing random reads high, would rather hash-join
				// whole tables.
				`SET LOCAL enable_hashjoin = off`, `SET LOCAL enable_mergejoin = off`,
				`CREATE TEMP TABLE marts_old ON COMMIT DROP AS
				SELECT c.* FROM marts.client_stats c WHERE c.client_id IN (SELECT DISTINCT client_id FROM marts_days)`,
				// Clients who bought on a changed day that the marts already
				// show, and not any more: only a reload takes days away. The
				// day's clients as the marts show them are kept with it.
				`INSERT INTO marts_old
				SELECT c.* FROM marts.client_stats c
				WHERE c.client_id IN (SELECT unnest(s.client_ids::integer[]) FROM marts.client_days_applied s WHERE s.day = ANY($1::date[]))
				  AND c.client_id NOT IN (SELECT client_id FROM marts_old)`,
				`SET LOCAL enable_hashjoin = on`, `SET LOCAL enable_mergejoin = on`,
				`ANALYZE marts_old`,
			)},
			// The old contribution of the touched clients goes ...
			step{what: "subtracting the old client activity", sql: clientActivity("-1", "marts_old x", "old")},
			step{what: "subtracting the old RFM histograms", sql: []string{rfmHistogram("-1", "marts_old x")}},
			step{what: "rewriting the touched clients", sql: append([]string{
				`CREATE TEMP TABLE marts_new ON COMMIT DROP AS SELECT * FROM marts_old WITH NO DATA`},
				append(sorted(`INSERT INTO marts_new `+statsColumns+`
				`+statsOf(`SELECT o.client_id, u.day, u.revenue
					FROM marts_old o, unnest(o.days::integer[], o.revenues::numeric[]) AS u(day, revenue)
					WHERE u.day <> ALL(`+changedDayNumbers+`)
					UNION ALL
					SELECT client_id, day, revenue FROM marts_days
					ORDER BY 1, 2`)),
					`ANALYZE marts_new`,
					`SET LOCAL enable_hashjoin = off`, `SET LOCAL enable_mergejoin = off`,
					`DELETE FROM marts.client_stats c USING marts_old o WHERE c.client_id = o.client_id`,
					`SET LOCAL enable_hashjoin = on`, `SET LOCAL enable_mergejoin = on`,
					`INSERT INTO marts.client_stats SELECT * FROM marts_new ORDER BY client_id`)...)},
		)
	}
	// ... and the new one comes in.
	out = append(out,
		step{what: "adding the new client activity", sql: clientActivity("1", newScope, "new")},
		step{what: "adding the new RFM histograms", sql: []string{rfmHistogram("1", newScope)}},
		step{what: "dropping empty cells", sql: []string{
			`DELETE FROM marts.client_events WHERE d7 = 0 AND d30 = 0 AND new_clients = 0`,
			`DELETE FROM marts.cohort_activity WHERE active_clients = 0`,
			`DELETE FROM marts.rfm_histogram WHERE clients = 0`,
		}},
	)
	return append(out, clientTail(fresh)...)
}

// emptyClients empties the client half's tables for a first update.
var emptyClients = []string{
	`DELETE FROM marts.client_events`, `DELETE FROM marts.cohort_activity`,
	`DELETE FROM marts.rfm_histogram`, `DELETE FROM marts.client_stats`, `DELETE FROM marts.client_days_applied`,
}

// clientTail is the end of every client update, however its rows were
// written.
func clientTail(fresh bool) []step {
	// Each changed day with lines, and its clients: a summary has them in
	// the same form (ascending ids, one each); a day without one, from its
	// lines.
	out := []step{{what: "recording the days the client rows show", sql: []string{
		`DELETE FROM marts.client_days_applied WHERE day = ANY($1::date[])`,
		`INSERT INTO marts.client_days_applied (day, client_ids)
		SELECT purchase_date, client_ids FROM marketplace.day_summaries WHERE purchase_date = ANY($3::date[])`,
		`INSERT INTO marts.client_days_applied (day, client_ids)
		SELECT purchase_date, array_agg(DISTINCT client_id ORDER BY client_id)::text
		FROM marketplace.purchases WHERE ` + onLineDays + `
		GROUP BY 1`,
	}}}
	if fresh {
		// The next update's plans should see what was just written, not
		// an empty table.
		out = append(out, step{what: "analyzing the client rows", sql: []string{`ANALYZE marts.client_stats`}})
	}
	return out
}

// daySteps lists the statements of the day half: every changed day's rows
// go, and come back computed from the lines (lines: some days have no
// summary) and copied from the summaries (summaries: some have one); big:
// many days, whose statistics the next update's plans need. It keeps the
// default work_mem even then: it runs alongside the client half, and only
// one of the two (the client half's first update) gets 256MB, so that a
// first update of years of lines cannot ask a small server for twice that
// in sorts.
func daySteps(lines, summaries, big bool) []step {
	// Each mart: the old rows of the changed days, then the new rows from
	// either source.
	mart := func(what string, del []string, fromLines, fromSummaries []string) step {
		q := del
		if lines {
			q = append(q, fromLines...)
		}
		if summaries {
			q = append(q, fromSummaries...)
		}
		return step{what: what, sql: q}
	}
	// A day loaded with no lines is a real zero, not a gap: keep it.
	const loadedDay = `EXISTS (SELECT FROM marketplace.day_loads dl WHERE dl.purchase_date = %s AND dl.status = 'loaded')`
	out := []step{
		mart("replacing product_days",
			// The old rows leave their months (next step).
			[]string{`CREATE TEMP TABLE marts_old_days ON COMMIT DROP AS SELECT * FROM marts.product_days WHERE day = ANY($1::date[])`,
				`DELETE FROM marts.product_days WHERE day = ANY($1::date[])`},
			sorted(`INSERT INTO marts.product_days (day, product_ids, units, revenue)
			SELECT day, array_agg(product_id)::text, array_agg(units)::text, array_agg(revenue)::text
			FROM (SELECT purchase_date AS day, product_id, sum(quantity)::bigint AS units, sum(total_price) AS revenue
			      FROM marketplace.purchases WHERE `+onLineDays+`
			      GROUP BY 1, 2 ORDER BY 1, 2) p
			GROUP BY day`),
			[]string{`INSERT INTO marts.product_days (day, product_ids, units, revenue)
			SELECT purchase_date, product_ids, product_units, product_revenue FROM marketplace.day_summaries
			WHERE purchase_date = ANY($3::date[]) AND lines > 0`}),
		{what: "replacing product_months", sql: []string{
			// The old rows leave the ABC/XYZ period's totals (updatePeriod).
			`CREATE TEMP TABLE marts_old_months ON COMMIT DROP AS
			SELECT * FROM marts.product_months WHERE month IN ` + changedMonths,
			`DELETE FROM marts.product_months WHERE month IN ` + changedMonths,
		}, fn: updateProductMonths},
		mart("replacing daily_sales", []string{`DELETE FROM marts.daily_sales WHERE day = ANY($1::date[])`},
			[]string{`WITH agg AS (
				SELECT purchase_date AS day, count(*) AS lines, sum(quantity)::bigint AS units, sum(total_price) AS revenue,
				       sum(quantity * price_per_item) AS gross_revenue, sum(quantity * discount_per_item) AS discount,
				       count(DISTINCT client_id) AS clients
				FROM marketplace.purchases WHERE ` + onLineDays + `
				GROUP BY 1
			)
			INSERT INTO marts.daily_sales (day, lines, units, revenue, gross_revenue, discount, discount_share, clients, products, avg_line_value)
			SELECT d.day, coalesce(a.lines, 0), coalesce(a.units, 0), coalesce(a.revenue, 0), coalesce(a.gross_revenue, 0),
			       coalesce(a.discount, 0), a.discount / nullif(a.gross_revenue, 0), coalesce(a.clients, 0),
			       coalesce(cardinality(p.product_ids::integer[]), 0), a.revenue / nullif(a.lines, 0)
			FROM unnest($2::date[]) AS d(day)
			LEFT JOIN agg a USING (day)
			LEFT JOIN marts.product_days p USING (day)
			WHERE a.day IS NOT NULL OR ` + fmt.Sprintf(loadedDay, "d.day")},
			// The same figures from the summaries; a day without lines gets
			// the same plain zeros as above.
			[]string{`INSERT INTO marts.daily_sales (day, lines, units, revenue, gross_revenue, discount, discount_share, clients, products, avg_line_value)
			SELECT s.purchase_date, s.lines, s.units, z.revenue, z.gross_revenue, z.discount, z.discount / nullif(z.gross_revenue, 0),
			       s.clients, coalesce(cardinality(p.product_ids::integer[]), 0), z.revenue / nullif(s.lines, 0)
			FROM marketplace.day_summaries s
			LEFT JOIN marts.product_days p ON p.day = s.purchase_date
			CROSS JOIN LATERAL (SELECT CASE WHEN s.lines > 0 THEN s.revenue ELSE 0 END AS revenue,
			                           CASE WHEN s.lines > 0 THEN s.gross_revenue ELSE 0 END AS gross_revenue,
			                           CASE WHEN s.lines > 0 THEN s.discount ELSE 0 END AS discount) z
			WHERE s.purchase_date = ANY($3::date[]) AND (s.lines > 0 OR ` + fmt.Sprintf(loadedDay, "s.purchase_date") + `)`}),
		mart("replacing sales_by_gender", []string{`DELETE FROM marts.sales_by_gender WHERE day = ANY($1::date[])`},
			[]string{`INSERT INTO marts.sales_by_gender (day, gender, lines, units, revenue, gross_revenue, discount, clients, avg_line_value)
			SELECT purchase_date, gender::text, count(*), sum(quantity)::bigint, sum(total_price), sum(quantity * price_per_item),
			       sum(quantity * discount_per_item), count(DISTINCT client_id), sum(total_price) / count(*)
			FROM marketplace.purchases WHERE ` + onLineDays + `
			GROUP BY purchase_date, gender`},
			[]string{`INSERT INTO marts.sales_by_gender (day, gender, lines, units, revenue, gross_revenue, discount, clients, avg_line_value)
			SELECT s.purchase_date, g.gender, g.lines, g.units, g.revenue, g.gross_revenue, g.discount, g.clients, g.revenue / g.lines
			FROM marketplace.day_summaries s,
			     unnest(s.genders, s.gender_lines, s.gender_units, s.gender_revenue, s.gender_gross_revenue, s.gender_discount, s.gender_clients)
			         AS g(gender, lines, units, revenue, gross_revenue, discount, clients)
			WHERE s.purchase_date = ANY($3::date[])`}),
		mart("replacing sales_by_hour", []string{`DELETE FROM marts.sales_by_hour WHERE day = ANY($1::date[])`},
			[]string{`INSERT INTO marts.sales_by_hour (day, hour, lines, units, revenue, clients)
			SELECT purchase_date, (seconds_from_midnight / 3600)::smallint, count(*), sum(quantity)::bigint, sum(total_price),
			       count(DISTINCT client_id)
			FROM marketplace.purchases WHERE ` + onLineDays + `
			GROUP BY purchase_date, seconds_from_midnight / 3600`},
			[]string{`INSERT INTO marts.sales_by_hour (day, hour, lines, units, revenue, clients)
			SELECT s.purchase_date, h.hour, h.lines, h.units, h.revenue, h.clients
			FROM marketplace.day_summaries s,
			     unnest(s.hours, s.hour_lines, s.hour_units, s.hour_revenue, s.hour_clients) AS h(hour, lines, units, revenue, clients)
			WHERE s.purchase_date = ANY($3::date[])`}),
	}
	if big {
		out = append(out, step{what: "analyzing the written tables", sql: []string{`ANALYZE marts.product_days`, `ANALYZE marts.daily_sales`}})
	}
	return out
}

// productMonthRows are the rows summed into the changed months' new rows:
// a month's new row is its old one, plus the changed days' new rows, minus
// their old ones, however many days the month has.
var productMonthRows = `SELECT month::text, 1, product_ids::text, units::text, revenue::text, NULL FROM marts_old_months
	UNION ALL
	SELECT ` + month("day") + `::date::text, 1, product_ids, units, revenue, NULL FROM marts.product_days WHERE day = ANY($1::date[])
	UNION ALL
	SELECT ` + month("day") + `::date::text, -1, product_ids, units, revenue, NULL FROM marts_old_days`

// updateProductMonths writes the changed months' rows (old rows deleted).
func updateProductMonths(ctx context.Context, b *batch) error {
	months, ok, err := sumProductRows(ctx, b.tx, productMonthRows, pq.Array(b.days))
	if err != nil {
		return err
	}
	if ok {
		return writeProductMonths(ctx, b.tx, months)
	}
	// Beyond int64: the same sums as numerics. Hashed into products
	// first, so that only the products need sorting.
	_, err = b.tx.ExecContext(ctx, `INSERT INTO marts.product_months (month, product_ids, units, revenue)
		SELECT month::date, array_agg(product_id), array_agg(units), array_agg(revenue)
		FROM (SELECT * FROM (
		          SELECT m.month, u.product_id, sum(m.sign * u.units)::bigint AS units, sum(m.sign * u.revenue) AS revenue
		          FROM (`+productMonthRows+`) AS m(month, sign, product_ids, units, revenue, units_sq),
		               unnest(m.product_ids::integer[], m.units::bigint[], m.revenue::numeric[]) AS u(product_id, units, revenue)
		          GROUP BY 1, 2
		          -- Units are positive on every line: none left means not
		          -- sold in the month any more.
		          HAVING sum(m.sign * u.units) <> 0) g
		      ORDER BY 1, 2) p
		GROUP BY month`, pq.Array(b.days))
	return err
}

// updatePeriod keeps the ABC/XYZ period: the trailing 12 complete calendar
// months before the newest loaded day (its own month counts only when that
// day is the month's last), never starting before the first complete month
// of loaded data (months before the data began would look like months
// without sales). The per-product totals are recomputed from product_month
// only when the period moved or one of its months changed, i.e. about
// once a month for daily passes.
func updatePeriod(ctx context.Context, tx *sql.Tx, days []string) error {
	var start, endExcl sql.NullString
	var months, known int
	err := tx.QueryRowContext(ctx, `
		WITH b AS (
			SELECT greatest((date_trunc('month', max(day) + 1) - interval '12 months')::date,
			                (date_trunc('month', min(day) - 1) + interval '1 month')::date) AS s,
			       date_trunc('month', max(day) + 1)::date AS e
			FROM marts.daily_sales
		)
		SELECT b.s::text, b.e::text,
		       coalesce((SELECT count(*) FROM generate_series(b.s, b.e - 1, interval '1 month')), 0),
		       (SELECT count(DISTINCT date_trunc('month', day)) FROM marts.daily_sales WHERE day >= b.s AND day < b.e)
		FROM b`).Scan(&start, &endExcl, &months, &known)
	if err != nil {
		return fmt.Errorf("computing the ABC/XYZ period: %w", err)
	}
	if !start.Valid || months == 0 {
		// Less than one complete month of data: no period yet.
		if _, err := tx.ExecContext(ctx, `DELETE FROM marts.abc_xyz_period; DELETE FROM marts.period_products`); err != nil {
			return fmt.Errorf("clearing the ABC/XYZ period: %w", err)
		}
		return nil
	}
	var same bool
	err = tx.QueryRowContext(ctx, `
		SELECT EXISTS (SELECT FROM marts.abc_xyz_period WHERE period_start = $1::date AND period_end = $2::date - 1 AND months_known = $3)
		   AND NOT EXISTS (SELECT FROM unnest($4::date[]) d WHERE d >= $1::date AND d < $2::date)`,
		start.String, endExcl.String, known, pq.Array(days)).Scan(&same)
	if err != nil {
		return fmt.Errorf("comparing the ABC/XYZ period: %w", err)
	}
	if same {
		return nil
	}
	var oldStart, oldEndExcl sql.NullString
	err = tx.QueryRowContext(ctx, `SELECT period_start::text, (period_end + 1)::text FROM marts.abc_xyz_period`).Scan(&oldStart, &oldEndExcl)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("reading the ABC/XYZ period: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO marts.abc_xyz_period (id, period_start, period_end, months, months_known)
		VALUES (true, $1::date, $2::date - 1, $3, $4)
		ON CONFLICT (id) DO UPDATE SET period_start = EXCLUDED.period_start, period_end = EXCLUDED.period_end,
			months = EXCLUDED.months, months_known = EXCLUDED.months_known`, start.String, endExcl.String, months, known); err != nil {
		return fmt.Errorf("recording the ABC/XYZ period: %w", err)
	}
	// The totals are one row of arrays (marts.period_products), rewritten
	// whole: from its old content when the period overlaps the old one
	// (the months that left it or changed go out, those that came in or
	// changed come in: a month or two instead of twelve), else from the
	// period's months.
	parts := `SELECT 1 AS sign, product_ids, units, revenue, NULL::numeric[] AS units_sq FROM marts.product_months WHERE month >= $1::date AND month < $2::date`
	var args []any
	if oldStart.Valid && len(days) > 0 && oldStart.String < endExcl.String && start.String < oldEndExcl.String {
		parts = `SELECT 1 AS sign, product_ids, units, revenue, NULL::numeric[] AS units_sq FROM marts.product_months
			WHERE month >= $1::date AND month < $2::date AND (month < $3::date OR month >= $4::date OR month IN ` + changedMonths5 + `)
			UNION ALL
			SELECT -1, product_ids, units, revenue, NULL::numeric[] FROM marts.product_months
			WHERE month >= $3::date AND month < $4::date AND (month < $1::date OR month >= $2::date) AND month NOT IN ` + changedMonths5 + `
			UNION ALL
			SELECT -1, product_ids, units, revenue, NULL::numeric[] FROM marts_old_months WHERE month >= $3::date AND month < $4::date
			UNION ALL
			-- The old row, kept aside: it is deleted before the new one is
			-- written.
			SELECT 1, product_ids, units, revenue, units_sq FROM marts_period`
		args = []any{oldStart.String, oldEndExcl.String, pq.Array(days)}
		if _, err := tx.ExecContext(ctx, `CREATE TEMP TABLE marts_period ON COMMIT DROP AS SELECT * FROM marts.period_products`); err != nil {
			return fmt.Errorf("updating the ABC/XYZ period totals: %w", err)
		}
	}
	args = append([]any{start.String, endExcl.String}, args...)
	if _, err := tx.ExecContext(ctx, `DELETE FROM marts.period_products`); err != nil {
		return fmt.Errorf("updating the ABC/XYZ period totals: %w", err)
	}
	// The rows' units_sq is null for months: their units squared.
	sums, ok, err := sumProductRows(ctx, tx, `SELECT '', sign, product_ids, units, revenue, units_sq FROM (`+parts+`) m`, args...)
	if err != nil {
		return fmt.Errorf("updating the ABC/XYZ period totals: %w", err)
	}
	if ok {
		if p := sums[""]; len(p) > 0 {
			ids, units, revenue, unitsSq := productArrays(p)
			_, err = tx.ExecContext(ctx, `INSERT INTO marts.period_products (id, product_ids, revenue, units, units_sq)
				VALUES (true, $1::integer[], $2::numeric[], $3::bigint[], $4::numeric[])`, ids, revenue, units, unitsSq)
		}
	} else {
		// Beyond int64: the same sums as numerics.
		_, err = tx.ExecContext(ctx, `WITH t AS (
				SELECT product_id, sum(revenue) AS revenue, sum(units) AS units, sum(units_sq) AS units_sq
				FROM (SELECT u.product_id, m.sign * u.revenue AS revenue, m.sign * u.units AS units,
				             m.sign * coalesce(u.units_sq, u.units::numeric * u.units) AS units_sq
				      FROM (`+parts+`) m, unnest(m.product_ids, m.units, m.revenue, m.units_sq) AS u(product_id, units, revenue, units_sq)) x
				GROUP BY product_id
				-- Units are positive on every line: none means not sold in
				-- the period.
				HAVING sum(units) <> 0
				ORDER BY product_id
			)
			INSERT INTO marts.period_products (id, product_ids, revenue, units, units_sq)
			SELECT true, array_agg(product_id), array_agg(revenue), array_agg(units::bigint), array_agg(units_sq) FROM t
			HAVING count(*) > 0`, args...)
	}
	if err != nil {
		return fmt.Errorf("updating the ABC/XYZ period totals: %w", err)
	}
	return nil
}

// updateRFM recomputes the tercile boundaries. A score is
// 1 + floor(3 * clients strictly worse / clients), so it is at least 2
// exactly when the value is above the ceil(n/3)-th smallest value of all
// clients, and 3 above the ceil(2n/3)-th. The histograms find those values
// without ranking every client (monetary: the bucket from the histogram,
// the value from the few clients in it), and the scores of clients who did
// not buy follow the new boundaries live, in client_rfm_scores.
func updateRFM(ctx context.Context, tx *sql.Tx) error {
	var n int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(sum(clients), 0)::bigint FROM marts.rfm_histogram WHERE measure = 'r'`).Scan(&n); err != nil {
		return fmt.Errorf("counting clients: %w", err)
	}
	if n == 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM marts.rfm_thresholds`); err != nil {
			return fmt.Errorf("clearing the RFM thresholds: %w", err)
		}
		return nil
	}
	var b [3][2]int64 // r, f, m bucket at the two boundaries
	var off [2]int64  // position of the monetary boundaries in their buckets
	var m [2]string
	for i, measure := range []string{"r", "f", "m"} {
		for j, k := range []int64{(n+2)/3 - 1, (2*n+2)/3 - 1} { // 0-based positions
			var before int64
			err := tx.QueryRowContext(ctx, `
				SELECT bucket, upto - clients FROM (
					SELECT bucket, clients, sum(clients) OVER (ORDER BY bucket) AS upto
					FROM marts.rfm_histogram WHERE measure = $1) h
				WHERE upto > $2 ORDER BY bucket LIMIT 1`, measure, k).Scan(&b[i][j], &before)
			if err != nil {
				return fmt.Errorf("finding the %s tercile boundary: %w", measure, err)
			}
			if measure == "m" {
				off[j] = k - before
			}
		}
	}
	// The two monetary values, from the clients of their buckets: one scan
	// of client_stats (an index on the bucket, filled in random order,
	// would cost a first update more than the table itself). The sort key
	// is qualified: a bare "monetary" would name the output column, the
	// text, and a bucket can hold 999.50 and 1000.20.
	err := tx.QueryRowContext(ctx, `
		WITH c AS MATERIALIZED (SELECT m_bucket, monetary FROM marts.client_stats WHERE m_bucket IN ($1, $3))
		SELECT (SELECT c.monetary::text FROM c WHERE m_bucket = $1 ORDER BY c.monetary OFFSET $2 LIMIT 1),
		       (SELECT c.monetary::text FROM c WHERE m_bucket = $3 ORDER BY c.monetary OFFSET $4 LIMIT 1)`,
		b[2][0], off[0], b[2][1], off[1]).Scan(&m[0], &m[1])
	if err != nil {
		return fmt.Errorf("finding the monetary tercile boundaries: %w", err)
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO marts.rfm_thresholds (id, clients, r_2, r_3, f_2, f_3, m_2, m_3)
		VALUES (true, $1, date '2000-01-01' + $2::integer, date '2000-01-01' + $3::integer, $4, $5, $6::numeric, $7::numeric)
		ON CONFLICT (id) DO UPDATE SET clients = EXCLUDED.clients, r_2 = EXCLUDED.r_2, r_3 = EXCLUDED.r_3,
			f_2 = EXCLUDED.f_2, f_3 = EXCLUDED.f_3, m_2 = EXCLUDED.m_2, m_3 = EXCLUDED.m_3`,
		n, b[0][0], b[0][1], b[1][0], b[1][1], m[0], m[1])
	if err != nil {
		return fmt.Errorf("recording the RFM thresholds: %w", err)
	}
	return nil
}

// execer is a connection or a transaction.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// setState records the outcome of an update in marts.refresh_state.
func setState(ctx context.Context, db execer, status string, started time.Time, failure error) error {
	var msg any
	if failure != nil {
		msg = failure.Error()
	}
	_, err := db.ExecContext(ctx, `
		INSERT INTO marts.refresh_state (mart, status, started_at, finished_at, duration_ms, error)
		VALUES ('all', $1, $2, clock_timestamp(), (extract(epoch FROM clock_timestamp() - $2::timestamptz) * 1000)::bigint, $3)
		ON CONFLICT (mart) DO UPDATE SET status = EXCLUDED.status, started_at = EXCLUDED.started_at,
			finished_at = EXCLUDED.finished_at, duration_ms = EXCLUDED.duration_ms, error = EXCLUDED.error`,
		status, started, msg)
	if err != nil {
		return fmt.Errorf("recording the marts update in marts.refresh_state: %w", err)
	}
	return nil
}
