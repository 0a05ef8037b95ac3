package main

// The reliability and security suite: the real binary against the
// simulator's fault injection and a real PostgreSQL. Every fault of
// docs/reliability.md is one test (or one case of a table) here; the tests
// of e2e_test.go are not repeated.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/marketplace-etl/marketplace-etl/internal/marketplace"
	"github.com/marketplace-etl/marketplace-etl/internal/pgtest"
	"github.com/marketplace-etl/marketplace-etl/internal/pipeline"
)

// yesterdayAgo is the business day n days before yesterday in the default
// ETL_TIMEZONE, as the binary computes it.
func yesterdayAgo(n int) string {
	loc, _ := time.LoadLocation("Europe/Moscow")
	return pipeline.Yesterday(time.Now(), loc).AddDate(0, 0, -n).Format(time.DateOnly)
}

// runFor runs the binary, killing it after limit; it returns the exit code
// (-1 when killed), stderr and how long it ran.
func (e *env) runFor(limit time.Duration, extraEnv []string, args ...string) (int, string, time.Duration) {
	e.t.Helper()
	cmd := e.command(extraEnv, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	timer := time.AfterFunc(limit, func() { _ = cmd.Process.Kill() })
	err := cmd.Wait()
	timer.Stop()
	took := time.Since(start)
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	return code, stderr.String(), took
}

func (e *env) dayStates() string {
	e.t.Helper()
	return e.scalar(`SELECT string_agg(purchase_date || '=' || status, ',' ORDER BY purchase_date) FROM marketplace.day_loads`)
}

// lastLine is the final line of stderr: the one-line summary of a failure.
func lastLine(stderr string) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	return lines[len(lines)-1]
}

// apiFaults are the API's faults, each configured to hit every answer it is
// allowed to (the callers limit it with FaultFirst or FaultDates).
var apiFaults = []struct {
	name string
	cfg  marketplace.SimConfig
	env  []string
	log  string // what the retry log or the day's last_error must mention
}{
	{"5xx", marketplace.SimConfig{ErrorRate: 1}, nil, "HTTP 50"},
	{"429", marketplace.SimConfig{RateLimitRate: 1}, nil, "HTTP 429"},
	{"connection reset", marketplace.SimConfig{ResetRate: 1}, nil, "fetching"},
	{"body cut off mid-JSON", marketplace.SimConfig{TruncateRate: 1}, nil, "cut off"},
	{"non-JSON page with 200", marketplace.SimConfig{HTMLErrorRate: 1}, nil, "not a JSON array"},
	{"empty array for a past day", marketplace.SimConfig{EmptyRate: 1}, nil, "no lines"},
	{"body stalls", marketplace.SimConfig{TruncateRate: 1, StallAfter: time.Minute}, []string{"ETL_HTTP_TIMEOUT=300ms"}, "cut off"},
	{"no answer (header timeout)", marketplace.SimConfig{Latency: time.Minute}, []string{"ETL_HTTP_TIMEOUT=300ms"}, "timeout"},
}

// TestAPIFaultBurstsAreRetriedThenLoaded: each transient fault hits the first
// two requests of every date; the job retries and loads every day exactly.
func TestAPIFaultBurstsAreRetriedThenLoaded(t *testing.T) {
	for _, f := range apiFaults {
		t.Run(f.name, func(t *testing.T) {
			cfg := f.cfg
			cfg.RowsPerDay, cfg.FaultFirst = 300, 2
			e := newEnv(t, cfg)
			code, stderr, took := e.runFor(time.Minute, append([]string{"ETL_HTTP_RETRIES=3"}, f.env...), "backfill", "--from", "2023-04-01", "--to", "2023-04-02")
			if code != 0 {
				t.Fatalf("exit %d after %s\n%s", code, took, stderr)
			}
			e.checkAgainstSimulator("2023-04-01", "2023-04-02")
			if got := e.dayStates(); got != "2023-04-01=loaded,2023-04-02=loaded" {
				t.Fatalf("day states %s", got)
			}
			// Two faulty answers per day; net/http itself retries a GET once
			// when a reused connection is reset before any answer.
			if n := strings.Count(stderr, "transient failure, retrying"); n < 2 || n > 4 {
				t.Fatalf("%d retries logged, want 1 or 2 per day\n%s", n, stderr)
			}
			if !strings.Contains(stderr, f.log) {
				t.Fatalf("the retry log does not say %q\n%s", f.log, stderr)
			}
			t.Logf("%s: 2 faulty answers per day, retried, loaded in %s", f.name, took.Round(time.Millisecond))
		})
	}
}

// TestRetryAfterIsHonoured: a 429 with Retry-After: 1 makes the job wait a
// second (when ETL_HTTP_RETRY_MAX_BACKOFF allows it), not its own short backoff.
func TestRetryAfterIsHonoured(t *testing.T) {
	e := newEnv(t, marketplace.SimConfig{RowsPerDay: 50, RateLimitRate: 1, FaultFirst: 2})
	code, stderr, took := e.runFor(time.Minute, []string{"ETL_HTTP_RETRY_MAX_BACKOFF=5s"}, "run", "--date", "2023-04-05")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if took < 2*time.Second {
		t.Fatalf("two 429 answers with Retry-After: 1 were retried within %s", took)
	}
	if !strings.Contains(stderr, `"wait":1,`) { // seconds: JSON logs write durations as seconds
		t.Fatalf("the retry did not wait the 1s asked for\n%s", stderr)
	}
	e.checkAgainstSimulator("2023-04-05", "2023-04-05")
}

// TestNoDataSentenceSurvivesFaults: the pre-2022 sentence behind a burst of
// 5xx is still a no_data day, and a forced re-fetch keeps it so.
func TestNoDataSentenceSurvivesFaults(t *testing.T) {
	e := newEnv(t, marketplace.SimConfig{RowsPerDay: 50, ErrorRate: 1, FaultFirst: 1})
	e.mustRun("backfill", "--from", "2021-12-31", "--to", "2022-01-01")
	e.mustRun("backfill", "--from", "2021-12-31", "--to", "2022-01-01", "--force")
	if got := e.dayStates(); got != "2021-12-31=no_data,2022-01-01=loaded" {
		t.Fatalf("day states %s", got)
	}
	if got := e.scalar(`SELECT count(*) FROM marketplace.day_loads WHERE last_error IS NOT NULL`); got != "0" {
		t.Fatalf("%s days with an error", got)
	}
	e.checkAgainstSimulator("2021-12-31", "2022-01-01")
}

// TestPersistentAPIFaultsFailTheDayAndCatchUpHeals: a fault that does not go
// away on one day: that day is failed with the reason, the others load, exit
// 1; the next daily run heals it through catch-up.
func TestPersistentAPIFaultsFailTheDayAndCatchUpHeals(t *testing.T) {
	first, bad, last := yesterdayAgo(2), yesterdayAgo(1), yesterdayAgo(0)
	for _, f := range apiFaults {
		t.Run(f.name, func(t *testing.T) {
			cfg := f.cfg
			cfg.RowsPerDay, cfg.FaultDates = 200, map[string]bool{bad: true}
			e := newEnv(t, cfg)
			code, stderr, took := e.runFor(time.Minute, append([]string{"ETL_HTTP_RETRIES=2"}, f.env...), "backfill", "--from", first, "--to", last)
			if code != 1 {
				t.Fatalf("exit %d after %s, want 1\n%s", code, took, stderr)
			}
			if got, want := e.dayStates(), first+"=loaded,"+bad+"=failed,"+last+"=loaded"; got != want {
				t.Fatalf("day states %s, want %s\n%s", got, want, stderr)
			}
			if lastErr := e.scalar(`SELECT last_error FROM marketplace.day_loads WHERE purchase_date = $1`, bad); !strings.Contains(lastErr, f.log) {
				t.Fatalf("last_error %q does not say %q", lastErr, f.log)
			}
			if l := lastLine(stderr); !strings.Contains(l, bad) || !strings.Contains(l, "failed") {
				t.Fatalf("the final line does not name the failed day: %s", l)
			}
			if got := e.scalar(`SELECT attempts FROM marketplace.day_loads WHERE purchase_date = $1`, bad); got != "1" {
				t.Fatalf("attempts %s", got)
			}
			e.checkAgainstSimulator(first, last)
			// The API recovers: the next daily run heals the day.
			clean := f.cfg
			clean.RowsPerDay, clean.ErrorRate, clean.RateLimitRate, clean.ResetRate, clean.TruncateRate = 200, 0, 0, 0, 0
			clean.HTMLErrorRate, clean.EmptyRate, clean.Latency = 0, 0, 0
			e.setSim(clean)
			if code, stderr := e.run([]string{"ETL_CATCHUP_DAYS=2"}, "run"); code != 0 {
				t.Fatalf("catch-up run: exit %d\n%s", code, stderr)
			}
			if got, want := e.dayStates(), first+"=loaded,"+bad+"=loaded,"+last+"=loaded"; got != want {
				t.Fatalf("after catch-up: %s", got)
			}
			e.checkAgainstSimulator(first, last)
		})
	}
}

// TestMixedDateRowsAreRejectedAndCounted: lines of other dates in a day's
// answer are rejected as date_mismatch, kept verbatim, counted per day, and
// every other line is loaded.
func TestMixedDateRowsAreRejectedAndCounted(t *testing.T) {
	e := newEnv(t, marketplace.SimConfig{RowsPerDay: 2000, MixedDateRate: 0.05})
	e.mustRun("run", "--date", "2023-05-10")
	st := e.sim.Stats("2023-05-10")
	var loaded, rejected, mismatched, counted int
	if err := e.db.QueryRow(`SELECT
		(SELECT count(*) FROM marketplace.purchases),
		(SELECT count(*) FROM marketplace.rejected_purchases),
		(SELECT count(*) FROM marketplace.rejected_purchases WHERE reason = 'date_mismatch'),
		(SELECT coalesce((rejected_by_reason->>'date_mismatch')::int, 0) FROM marketplace.day_loads)`).Scan(&loaded, &rejected, &mismatched, &counted); err != nil {
		t.Fatal(err)
	}
	if loaded+rejected != st.Lines {
		t.Fatalf("%d loaded + %d rejected, the API sent %d", loaded, rejected, st.Lines)
	}
	if mismatched < 50 || mismatched != counted {
		t.Fatalf("%d date_mismatch rejects, %d counted in day_loads; want about 100 and equal", mismatched, counted)
	}
	if got := e.scalar(`SELECT count(*) FROM marketplace.rejected_purchases WHERE reason = 'date_mismatch' AND raw::jsonb->>'purchase_datetime' = '2023-05-10'`); got != "0" {
		t.Fatalf("%s date_mismatch rejects carry the requested date", got)
	}
	// Nothing was lost: the loaded revenue plus the revenue of the otherwise
	// valid mismatched lines is the day's revenue.
	got := e.scalar(`SELECT ((SELECT sum(total_price) FROM marketplace.purchases) + (SELECT coalesce(sum((raw::jsonb->>'total_price')::numeric), 0)
		FROM marketplace.rejected_purchases WHERE reason = 'date_mismatch' AND (raw::jsonb->>'quantity')::numeric > 0
		AND (raw::jsonb->>'purchase_time_as_seconds_from_midnight')::numeric < 86400))::bigint::text`)
	if got != fmt.Sprint(st.Revenue) {
		t.Fatalf("loaded + mismatched revenue %s, simulator %d", got, st.Revenue)
	}
}

// TestAllNullObjectsAreRejected: all-null objects below the threshold are
// rejected as all_null and the day loads; nothing is dropped.
func TestAllNullObjectsAreRejected(t *testing.T) {
	e := newEnv(t, marketplace.SimConfig{RowsPerDay: 2000, NullRate: 0.03})
	e.mustRun("run", "--date", "2023-05-11")
	st := e.sim.Stats("2023-05-11")
	var loaded, rejected, nulls, counted int
	if err := e.db.QueryRow(`SELECT
		(SELECT count(*) FROM marketplace.purchases),
		(SELECT count(*) FROM marketplace.rejected_purchases),
		(SELECT count(*) FROM marketplace.rejected_purchases WHERE reason = 'all_null' AND raw LIKE '{"client_id": null%'),
		(SELECT coalesce((rejected_by_reason->>'all_null')::int, 0) FROM marketplace.day_loads WHERE status = 'loaded')`).Scan(&loaded, &rejected, &nulls, &counted); err != nil {
		t.Fatal(err)
	}
	if loaded+rejected != st.Lines || nulls < 20 || nulls != counted {
		t.Fatalf("%d loaded, %d rejected, %d all_null (%d counted); the API sent %d", loaded, rejected, nulls, counted, st.Lines)
	}
}

// TestPostgresRestartMidBackfill: pg_ctl restart -m fast while a backfill
// writes; the day in flight is rolled back, the job retries or exits 1, and
// a re-run completes with no duplicate and no gap.
func TestPostgresRestartMidBackfill(t *testing.T) {
	cluster, err := pgtest.Shared()
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("TEST_DATABASE_URL") != "" {
		t.Skip("the server of TEST_DATABASE_URL cannot be restarted by the test")
	}
	e := newEnv(t, marketplace.SimConfig{RowsPerDay: 3000, Latency: 40 * time.Millisecond})
	e.mustRun("migrate", "up")
	for round, after := range []time.Duration{500 * time.Millisecond, 300 * time.Millisecond} {
		cmd := e.command([]string{"ETL_HTTP_RETRIES=2"}, "backfill", "--from", "2023-08-01", "--to", "2023-08-20")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(after)
		if err := cluster.Restart(context.Background()); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err = <-done:
		case <-time.After(30 * time.Second):
			// Hung: ask the Go runtime for its goroutines, then give up.
			_ = cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
			t.Fatalf("round %d: the backfill did not end 30s after the restart\n%s", round, stderr.String())
		}
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != 0 && code != 1 {
			t.Fatalf("round %d: exit %d, want 0 (retried) or 1\n%s", round, code, stderr.String())
		}
		waitCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = pgtest.WaitReady(waitCtx, e.dsn)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		e.checkAgainstSimulator("2023-08-01", "2023-08-20")
		t.Logf("round %d: restart after %s, exit %d, %s loaded", round, after, code, e.scalar(`SELECT count(*) FROM marketplace.day_loads WHERE status = 'loaded'`))
		if code == 1 && !strings.Contains(lastLine(stderr.String()), `"msg":"pass failed"`) {
			t.Fatalf("round %d: the log does not end with the pass's failure\n%s", round, stderr.String())
		}
	}
	e.mustRun("backfill", "--from", "2023-08-01", "--to", "2023-08-20")
	e.checkAgainstSimulator("2023-08-01", "2023-08-20")
	if got := e.scalar(`SELECT count(*) FROM marketplace.day_loads WHERE status = 'loaded'`); got != "20" {
		t.Fatalf("%s days loaded after the re-run, want 20", got)
	}
}

// TestStuckDatabaseCannotHangTheJob: another session holds a lock the job
// needs; ETL_DB_LOCK_TIMEOUT / ETL_DB_STATEMENT_TIMEOUT end the job with
// exit 1 instead of a CronJob that never finishes.
func TestStuckDatabaseCannotHangTheJob(t *testing.T) {
	const date = "2023-09-01"
	// What a loader of the same day holds while it loads.
	dayLock := `INSERT INTO marketplace.day_locks (purchase_date) VALUES ('` + date + `')
		ON CONFLICT (purchase_date) DO UPDATE SET purchase_date = EXCLUDED.purchase_date`
	cases := []struct {
		name string
		hold string // SQL run in an open transaction of another session
		env  []string
	}{
		{"lock of the day, lock timeout", dayLock, []string{"ETL_DB_LOCK_TIMEOUT=1s"}},
		{"lock of the day, statement timeout", dayLock, []string{"ETL_DB_STATEMENT_TIMEOUT=1s"}},
		{"purchases locked", `LOCK TABLE marketplace.purchases IN ACCESS EXCLUSIVE MODE`, []string{"ETL_DB_LOCK_TIMEOUT=1s"}},
		{"day_loads locked", `LOCK TABLE marketplace.day_loads IN ACCESS EXCLUSIVE MODE`, []string{"ETL_DB_LOCK_TIMEOUT=1s", "ETL_DB_STATEMENT_TIMEOUT=2s"}},
		{"etl_runs locked", `LOCK TABLE marketplace.etl_runs IN ACCESS EXCLUSIVE MODE`, []string{"ETL_DB_LOCK_TIMEOUT=1s", "ETL_DB_STATEMENT_TIMEOUT=2s"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, marketplace.SimConfig{RowsPerDay: 100})
			e.mustRun("migrate", "up")
			tx, err := e.db.Begin()
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			if _, err := tx.Exec(c.hold); err != nil {
				t.Fatal(err)
			}
			code, stderr, took := e.runFor(15*time.Second, append([]string{"ETL_HTTP_RETRIES=1"}, c.env...), "run", "--date", date)
			if code != 1 || took > 10*time.Second {
				t.Fatalf("exit %d after %s; want exit 1 within the configured timeouts (killed: -1)\n%s", code, took.Round(time.Millisecond), stderr)
			}
			if l := lastLine(stderr); !strings.Contains(l, "timeout") && !strings.Contains(l, "lock") {
				t.Fatalf("the final line does not say a timeout or lock ended the job: %s", l)
			}
			tx.Rollback()
			if got := e.scalar(`SELECT count(*) FROM marketplace.purchases`); got != "0" {
				t.Fatalf("%s lines written", got)
			}
			t.Logf("ended with exit %d after %s: %s", code, took.Round(time.Millisecond), lastLine(stderr))
			// Once the lock is gone the day loads.
			e.mustRun("run", "--date", date)
			e.checkAgainstSimulator(date, date)
		})
	}
}

// TestDailyRunAndBackfillAtTheSameTime: the CronJob's run and an operator's
// backfill over the same days, concurrently: every day ends up exactly once.
func TestDailyRunAndBackfillAtTheSameTime(t *testing.T) {
	e := newEnv(t, marketplace.SimConfig{RowsPerDay: 1500, Latency: 30 * time.Millisecond})
	e.mustRun("migrate", "up")
	from, to := yesterdayAgo(6), yesterdayAgo(0)
	runs := [][]string{
		{"run"},
		{"backfill", "--from", from, "--to", to},
		{"backfill", "--from", from, "--to", to, "--force"},
	}
	codes, logs := e.concurrently([]string{"ETL_CATCHUP_DAYS=6"}, runs)
	for i := range runs {
		if codes[i] != 0 {
			t.Fatalf("%v: exit %d\n%s", runs[i], codes[i], logs[i])
		}
	}
	e.checkAgainstSimulator(from, to)
	if got := e.scalar(`SELECT count(*) FROM marketplace.day_loads WHERE status = 'loaded'`); got != "7" {
		t.Fatalf("%s days loaded, want 7", got)
	}
	e.checkLineNumbers()
}

// TestOverlappingBackfillShards: shards of two backfills over overlapping
// ranges (and a forced one) run at once: every day exactly once.
func TestOverlappingBackfillShards(t *testing.T) {
	e := newEnv(t, marketplace.SimConfig{RowsPerDay: 1000, Latency: 20 * time.Millisecond})
	e.mustRun("migrate", "up")
	runs := [][]string{
		{"backfill", "--from", "2023-10-01", "--to", "2023-10-12", "--shard-index", "0", "--shard-count", "2"},
		{"backfill", "--from", "2023-10-01", "--to", "2023-10-12", "--shard-index", "1", "--shard-count", "2"},
		{"backfill", "--from", "2023-10-05", "--to", "2023-10-16", "--shard-index", "0", "--shard-count", "3"},
		{"backfill", "--from", "2023-10-05", "--to", "2023-10-16", "--shard-index", "1", "--shard-count", "3"},
		{"backfill", "--from", "2023-10-05", "--to", "2023-10-16", "--shard-index", "2", "--shard-count", "3"},
		{"backfill", "--from", "2023-10-01", "--to", "2023-10-16", "--force"},
	}
	codes, logs := e.concurrently(nil, runs)
	for i := range runs {
		if codes[i] != 0 {
			t.Fatalf("%v: exit %d\n%s", runs[i], codes[i], logs[i])
		}
	}
	e.checkAgainstSimulator("2023-10-01", "2023-10-16")
	if got := e.scalar(`SELECT count(*) FROM marketplace.day_loads WHERE status = 'loaded'`); got != "16" {
		t.Fatalf("%s days loaded, want 16", got)
	}
	e.checkLineNumbers()
	if got := e.scalar(`SELECT count(*) FROM marketplace.etl_runs WHERE status <> 'succeeded'`); got != "0" {
		t.Fatalf("%s runs not succeeded", got)
	}
}

func (e *env) concurrently(extraEnv []string, runs [][]string) ([]int, []string) {
	e.t.Helper()
	codes, logs := make([]int, len(runs)), make([]string, len(runs))
	var wg sync.WaitGroup
	for i, args := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := e.command(extraEnv, args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if ee, ok := err.(*exec.ExitError); ok {
				codes[i] = ee.ExitCode()
			} else if err != nil {
				codes[i] = -1
			}
			logs[i] = stderr.String()
		}()
	}
	wg.Wait()
	return codes, logs
}

// checkLineNumbers: each loaded day's lines are numbered 1..n exactly once,
// and n is the day's rows_loaded (no second copy, no gap).
func (e *env) checkLineNumbers() {
	e.t.Helper()
	if got := e.scalar(`SELECT count(*) FROM marketplace.day_loads d
		LEFT JOIN (SELECT purchase_date, count(*) n, count(DISTINCT line_no) dn, min(line_no) lo, max(line_no) hi FROM marketplace.purchases GROUP BY 1) p USING (purchase_date)
		WHERE d.status = 'loaded' AND NOT (p.n = d.rows_loaded AND p.dn = p.n AND p.lo = 1 AND p.hi = p.n)`); got != "0" {
		e.t.Fatalf("%s loaded days whose lines are not numbered 1..rows_loaded once", got)
	}
}

// TestEveryBadConfigValueExits2: every variable and flag given a bad value:
// exit 2, one line naming it and what was expected, nothing written. (The
// cases of TestUsageErrorsExit2AndWriteNothing are not repeated.)
func TestEveryBadConfigValueExits2(t *testing.T) {
	e := newEnv(t, marketplace.SimConfig{RowsPerDay: 10})
	cases := []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"ETL_TIMEZONE=Europe/Moscow "}, nil, "ETL_TIMEZONE"},
		{[]string{"ETL_CATCHUP_DAYS=400"}, nil, "ETL_CATCHUP_DAYS"},
		{[]string{"ETL_CATCHUP_DAYS=1.5"}, nil, "ETL_CATCHUP_DAYS"},
		{[]string{"ETL_MAX_REJECT_RATIO=-0.1"}, nil, "ETL_MAX_REJECT_RATIO"},
		{[]string{"ETL_MAX_REJECT_RATIO=NaN"}, nil, "ETL_MAX_REJECT_RATIO"},
		{[]string{"ETL_MAX_REJECT_RATIO=10%"}, nil, "ETL_MAX_REJECT_RATIO"},
		{[]string{"ETL_HTTP_TIMEOUT=0s"}, nil, "ETL_HTTP_TIMEOUT"},
		{[]string{"ETL_HTTP_TIMEOUT=-5s"}, nil, "ETL_HTTP_TIMEOUT"},
		{[]string{"ETL_HTTP_TIMEOUT=30"}, nil, "ETL_HTTP_TIMEOUT"},
		{[]string{"ETL_HTTP_RETRIES=-1"}, nil, "ETL_HTTP_RETRIES"},
		{[]string{"ETL_HTTP_RETRIES=1000"}, nil, "ETL_HTTP_RETRIES"},
		{[]string{"ETL_HTTP_RETRIES=three"}, nil, "ETL_HTTP_RETRIES"},
		{[]string{"ETL_HTTP_RETRY_BACKOFF=0s"}, nil, "ETL_HTTP_RETRY_BACKOFF"},
		{[]string{"ETL_HTTP_RETRY_BACKOFF=fast"}, nil, "ETL_HTTP_RETRY_BACKOFF"},
		{[]string{"ETL_HTTP_RETRY_MAX_BACKOFF=1ms"}, nil, "ETL_HTTP_RETRY_MAX_BACKOFF"},
		{[]string{"ETL_DB_STATEMENT_TIMEOUT=0s"}, nil, "ETL_DB_STATEMENT_TIMEOUT"},
		{[]string{"ETL_DB_STATEMENT_TIMEOUT=forever"}, nil, "ETL_DB_STATEMENT_TIMEOUT"},
		{[]string{"ETL_DB_LOCK_TIMEOUT=-1s"}, nil, "ETL_DB_LOCK_TIMEOUT"},
		{[]string{"ETL_MARTS_LOCK_TIMEOUT=0s"}, nil, "ETL_MARTS_LOCK_TIMEOUT"},
		{[]string{"ETL_MARTS_LOCK_TIMEOUT=5"}, nil, "ETL_MARTS_LOCK_TIMEOUT"},
		{[]string{"ETL_DB_LOCK_TIMEOUT=500us"}, nil, "ETL_DB_LOCK_TIMEOUT"},          // was lock_timeout=0
		{[]string{"ETL_DB_STATEMENT_TIMEOUT=600h"}, nil, "ETL_DB_STATEMENT_TIMEOUT"}, // above PostgreSQL's maximum
		{[]string{"MARKETPLACE_API_URL="}, nil, "MARKETPLACE_API_URL"},               // was the default, silently
		{[]string{"ETL_HTTP_BODY_TIMEOUT=1s"}, nil, "ETL_HTTP_BODY_TIMEOUT"},         // below ETL_HTTP_TIMEOUT
		{[]string{"ETL_MAX_LINE_BYTES=10"}, nil, "ETL_MAX_LINE_BYTES"},
		{[]string{"ETL_MAX_BODY_BYTES=lots"}, nil, "ETL_MAX_BODY_BYTES"},
		{[]string{"ETL_SHUTDOWN_GRACE=0s"}, nil, "ETL_SHUTDOWN_GRACE"},
		{[]string{"ETL_AUTO_MIGRATE=maybe"}, nil, "ETL_AUTO_MIGRATE"},
		{[]string{"LOG_LEVEL=loud"}, nil, "LOG_LEVEL"},
		{[]string{"LOG_FORMAT=xml"}, nil, "LOG_FORMAT"},
		{[]string{"MARKETPLACE_API_URL=ftp://example.com/data"}, nil, "MARKETPLACE_API_URL"},
		{[]string{"MARKETPLACE_API_URL=example.com/data"}, nil, "MARKETPLACE_API_URL"},
		{[]string{"DATABASE_URL=mysql://etl:secret@db/marketplace"}, nil, "DATABASE_URL"},
		{[]string{"DATABASE_URL=postgres://etl:secret@db:notaport/marketplace"}, nil, "DATABASE_URL"},
		{[]string{"DATABASE_URL=just-a-hostname"}, nil, "DATABASE_URL"},
		{[]string{"PUSHGATEWAY_URL=pushgateway:9091"}, nil, "PUSHGATEWAY_URL"},
		{[]string{"PUSHGATEWAY_TIMEOUT=0s"}, nil, "PUSHGATEWAY_TIMEOUT"},
		{[]string{"PUSHGATEWAY_TIMEOUT=ten"}, nil, "PUSHGATEWAY_TIMEOUT"},
		{[]string{"PUSHGATEWAY_GROUPING_LABELS=env"}, nil, "PUSHGATEWAY_GROUPING_LABELS"},
		{[]string{"PUSHGATEWAY_GROUPING_LABELS=__name__=x"}, nil, "PUSHGATEWAY_GROUPING_LABELS"},
		{[]string{"PUSHGATEWAY_GROUPING_LABELS=1bad=x"}, nil, "PUSHGATEWAY_GROUPING_LABELS"},
		{[]string{"BACKFILL_SHARD_COUNT=0"}, []string{"backfill", "--from", "2023-01-01", "--to", "2023-01-02"}, "BACKFILL_SHARD_COUNT"},
		{[]string{"BACKFILL_SHARD_COUNT=two"}, []string{"backfill", "--from", "2023-01-01", "--to", "2023-01-02"}, "BACKFILL_SHARD_COUNT"},
		{[]string{"JOB_COMPLETION_INDEX=-1"}, []string{"backfill", "--from", "2023-01-01", "--to", "2023-01-02"}, "JOB_COMPLETION_INDEX"},
		{[]string{"JOB_COMPLETION_INDEX=x"}, []string{"backfill", "--from", "2023-01-01", "--to", "2023-01-02"}, "JOB_COMPLETION_INDEX"},
		{nil, []string{"run", "--api-url", "not a url"}, "--api-url"},
		{nil, []string{"run", "--date", "yesterday"}, "--date"},
		{nil, []string{"run", "--date", "2023-1-5"}, "--date"},
		{nil, []string{"run", "--date", "9999-12-31"}, "--date"},
		{nil, []string{"run", "--date"}, "date"},
		{nil, []string{"run", "extra"}, "extra"},
		{nil, []string{"backfill", "--from", "2023-13-01"}, "--from"},
		{nil, []string{"backfill", "--from", "2023-01-01", "--to", "31.01.2023"}, "--to"},
		{nil, []string{"backfill", "--from", "2023-01-01", "--to", "2023-01-02", "--shard-index", "-1", "--shard-count", "2"}, "--shard-index"},
		{nil, []string{"backfill", "--from", "2023-01-01", "--to", "2023-01-02", "--shard-count", "0"}, "--shard-count"},
		{nil, []string{"backfill", "--from", "2023-01-01", "--to", "2023-01-02", "--force=maybe"}, "force"},
		{nil, []string{"migrate", "sideways"}, "migrate"},
		{[]string{"ETL_TIMEZONE=Mars/Olympus"}, []string{"check"}, "ETL_TIMEZONE"},
		{[]string{"ETL_TIMEZONE=Mars/Olympus"}, []string{"migrate", "up"}, "ETL_TIMEZONE"},
	}
	for _, c := range cases {
		args := c.args
		if args == nil {
			args = []string{"run", "--date", "2023-01-01"}
		}
		cmd := e.command(c.env, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		out := strings.TrimSpace(stderr.String())
		lines := strings.Split(out, "\n")
		switch {
		case code != 2 || len(lines) != 1 || !strings.Contains(out, c.want):
			t.Errorf("%v %v: exit %d, stderr %q; want exit 2 and one line naming %q", c.env, args, code, out, c.want)
		case strings.HasPrefix(c.want, strings.ToUpper(c.want)) && !strings.Contains(out, "expected"):
			t.Errorf("%v: the line does not say what was expected: %s", c.env, out)
		case strings.Contains(out+stdout.String(), "secret"):
			t.Errorf("%v: password leaked: %s", c.env, out)
		}
	}
	if got := e.scalar(`SELECT count(*) FROM pg_namespace WHERE nspname = 'marketplace'`); got != "0" {
		t.Fatal("a configuration error touched the database")
	}
	if got := e.scalar(`SELECT count(*) FROM pg_tables WHERE tablename LIKE '%migrations%'`); got != "0" {
		t.Fatal("a configuration error created the migrations table")
	}
}

// TestSecretsNeverLogged runs every command, at debug level, in both log
// formats, on success and failure paths, with passwords in DATABASE_URL,
// PGPASSWORD, the Pushgateway and Metabase settings, and greps everything the
// process printed and wrote to its error columns.
func TestSecretsNeverLogged(t *testing.T) {
	secrets := []string{"DbUrlPass-7f3a", "PgPassword-91c2", "PushPass-5e8d", "PushUrlPass-c4b1", "MbAdminPass-2d6f", "MbPass-8a0e"}
	var pushed sync.Map
	push := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		pushed.Store(r.URL.Path, string(body))
		w.WriteHeader(http.StatusOK)
	}))
	defer push.Close()
	e := newEnv(t, marketplace.SimConfig{RowsPerDay: 100, FailDates: map[string]bool{"2023-11-02": true}})
	u, _ := url.Parse(e.dsn)
	u.User = url.UserPassword("postgres", secrets[0]) // the test server trusts any password
	withPass := u.String()
	pu, _ := url.Parse(push.URL)
	pu.User = url.UserPassword("pusher", secrets[3])
	base := []string{"DATABASE_URL=" + withPass, "PGPASSWORD=" + secrets[1], "PUSHGATEWAY_URL=" + pu.String(),
		"PUSHGATEWAY_USERNAME=pusher", "PUSHGATEWAY_PASSWORD=" + secrets[2], "MB_ADMIN_PASSWORD=" + secrets[4],
		"MB_PASSWORD=" + secrets[5], "MB_URL=http://127.0.0.1:1", "LOG_LEVEL=debug", "ETL_HTTP_RETRIES=1"}
	unreachable := *u
	unreachable.Host = "127.0.0.1:1"
	q := unreachable.Query()
	q.Set("connect_timeout", "2")
	unreachable.RawQuery = q.Encode()
	kv := fmt.Sprintf("host=127.0.0.1 port=1 user=etl password=%s dbname=x sslmode=disable connect_timeout=2", secrets[0])
	cases := []struct {
		env  []string
		args []string
	}{
		{nil, []string{"run", "--date", "2023-11-01"}},
		{nil, []string{"backfill", "--from", "2023-11-01", "--to", "2023-11-03"}}, // a failing day
		{nil, []string{"run", "--date", "2023-11-01", "--force-typo"}},
		{nil, []string{"check"}},
		{nil, []string{"migrate", "status"}},
		{nil, []string{"metabase-setup"}},
		{[]string{"DATABASE_URL=" + unreachable.String()}, []string{"run", "--date", "2023-11-01"}},
		{[]string{"DATABASE_URL=" + unreachable.String()}, []string{"check"}},
		{[]string{"DATABASE_URL=" + kv}, []string{"run", "--date", "2023-11-01"}},
		{[]string{"DATABASE_URL=postgres://etl:" + secrets[0] + "@db:notaport/x"}, []string{"run", "--date", "2023-11-01"}},
		{[]string{"DATABASE_URL=postgres://etl:" + secrets[0] + "@127.0.0.1:1/x?sslmode=disable&password=" + secrets[0]}, []string{"check"}},
		{[]string{"DATABASE_URL=", "PGHOST=127.0.0.1", "PGPORT=1", "PGUSER=etl", "PGCONNECT_TIMEOUT=2"}, []string{"run", "--date", "2023-11-01"}},
		{[]string{"PUSHGATEWAY_URL=http://pusher:" + secrets[3] + "@127.0.0.1:1"}, []string{"run", "--date", "2023-11-04"}},
		{[]string{"PUSHGATEWAY_URL=pusher:" + secrets[3] + "@nowhere"}, []string{"run", "--date", "2023-11-01"}},
		{[]string{"DATABASE_URL=etl:" + secrets[0] + "@db.internal/marketplace"}, []string{"run", "--date", "2023-11-01"}},
		{[]string{"MARKETPLACE_API_URL=http://127.0.0.1:1/data"}, []string{"run", "--date", "2023-11-05"}},
	}
	for _, format := range []string{"json", "text"} {
		for _, c := range cases {
			env := append(append(append([]string{}, base...), "LOG_FORMAT="+format), c.env...)
			cmd := e.command(env, c.args...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			_ = cmd.Run()
			for _, s := range secrets {
				if strings.Contains(out.String(), s) {
					t.Errorf("%s %v %v: a password was printed:\n%s", format, c.env, c.args, out.String())
				}
			}
			if testing.Verbose() {
				t.Logf("%s %v: %d bytes of output, exit %d", format, c.args, out.Len(), cmd.ProcessState.ExitCode())
			}
		}
	}
	stored := e.scalar(`SELECT coalesce(string_agg(coalesce(error, ''), ' '), '') FROM marketplace.etl_runs`) +
		e.scalar(`SELECT coalesce(string_agg(coalesce(last_error, ''), ' '), '') FROM marketplace.day_loads`)
	pushed.Range(func(k, v any) bool { stored += k.(string) + v.(string); return true })
	for _, s := range secrets {
		if strings.Contains(stored, s) {
			t.Errorf("a password was stored in etl_runs, day_loads or pushed metrics: %s", s)
		}
	}
	if got := e.scalar(`SELECT count(*) FROM marketplace.etl_runs`); got == "0" {
		t.Fatal("no run reached the database: the success paths were not exercised")
	}
}

// TestLoadWithFaults backfills RELIABILITY_LOAD_DAYS days (default 20; 365
// for the year of docs/reliability.md, about 2 M lines) at the simulator's
// varying 1,000..10,000 lines a day, with 5 % of the requests faulty, and
// compares the table totals with the simulator's own.
func TestLoadWithFaults(t *testing.T) {
	days := 20
	if v := os.Getenv("RELIABILITY_LOAD_DAYS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("RELIABILITY_LOAD_DAYS=%q: expected a number of days from 1", v)
		}
		days = n
	}
	e := newEnv(t, marketplace.SimConfig{ErrorRate: 0.01, RateLimitRate: 0.01, ResetRate: 0.01, TruncateRate: 0.01, HTMLErrorRate: 0.005, EmptyRate: 0.005})
	from := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(0, 0, days-1)
	start := time.Now()
	code, stderr := e.run([]string{"ETL_HTTP_RETRIES=8"}, "backfill", "--from", from.Format(time.DateOnly), "--to", to.Format(time.DateOnly))
	took := time.Since(start)
	if code != 0 {
		t.Fatalf("exit %d after %s\n%s", code, took, lastLine(stderr))
	}
	var want marketplace.DayStats
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		st := e.sim.Stats(d.Format(time.DateOnly))
		want.Lines += st.Lines
		want.ValidLines += st.ValidLines
		want.Units += st.Units
		want.Revenue += st.Revenue
	}
	var lines, rejected, units, loadedDays int
	var revenue string
	if err := e.db.QueryRow(`SELECT count(*), coalesce(sum(quantity), 0), coalesce(sum(total_price), 0)::bigint::text FROM marketplace.purchases`).Scan(&lines, &units, &revenue); err != nil {
		t.Fatal(err)
	}
	e.db.QueryRow(`SELECT count(*) FROM marketplace.rejected_purchases`).Scan(&rejected)
	e.db.QueryRow(`SELECT count(*) FROM marketplace.day_loads WHERE status = 'loaded'`).Scan(&loadedDays)
	if loadedDays != days || lines != want.ValidLines || int64(units) != want.Units || revenue != fmt.Sprint(want.Revenue) || lines+rejected != want.Lines {
		t.Fatalf("tables: %d days, %d lines (+%d rejected), %d units, revenue %s; simulator: %d days, %d valid of %d lines, %d units, revenue %d",
			loadedDays, lines, rejected, units, revenue, days, want.ValidLines, want.Lines, want.Units, want.Revenue)
	}
	retries := strings.Count(stderr, "transient failure, retrying")
	t.Logf("load: %d days, %d lines fetched (%d loaded, %d rejected), %d API requests (%d retries after injected faults), %s, %.0f lines/s",
		days, want.Lines, lines, rejected, e.sim.Requests(), retries, took.Round(time.Millisecond), float64(want.Lines)/took.Seconds())
}

// TestSQLOnlyThroughParameters: no SQL text of the product is built by
// formatting strings into it (only integers, %d, are allowed); values go
// through $n parameters or COPY.
func TestSQLOnlyThroughParameters(t *testing.T) {
	sqlFormat := regexp.MustCompile(`(?is)(Sprintf|Fprintf|Errorf)?\(\s*[` + "`" + `"][^` + "`" + `"]*\b(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|LOCK|SET LOCAL|TRUNCATE|GRANT)\b[^` + "`" + `"]*%[^d%]`)
	checked := 0
	err := filepath.WalkDir("../../internal", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		checked++
		for _, m := range sqlFormat.FindAllIndex(src, -1) {
			if bytes.HasPrefix(src[m[0]:], []byte("Sprintf")) {
				line := bytes.Count(src[:m[0]], []byte("\n")) + 1
				t.Errorf("%s:%d: SQL built with a formatted value: %.120s", path, line, src[m[0]:m[1]])
			}
		}
		return nil
	})
	if err != nil || checked < 10 {
		t.Fatalf("walked %d files: %v", checked, err)
	}
}

// TestSimulatorDisabledByDefaultInChart: a default install reads the real
// API, never the simulator.
func TestSimulatorDisabledByDefaultInChart(t *testing.T) {
	values, err := os.ReadFile("../../charts/marketplace/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^mockApi:\n(?:[ \t]*#.*\n)*[ \t]+enabled: false$`).Match(values) {
		t.Fatal("charts/marketplace/values.yaml: mockApi.enabled is not false by default")
	}
}

// TestSigtermPushesMetrics: SIGTERM in the middle of a day: the transaction
// is rolled back, the run's metrics (exit code 1, success 0) still reach the
// Pushgateway, and the process ends well within Kubernetes' 30 s grace.
func TestSigtermPushesMetrics(t *testing.T) {
	var mu sync.Mutex
	var pushes []string
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Decode whatever format the client pushes into "name value" lines.
		var text strings.Builder
		dec := expfmt.NewDecoder(r.Body, expfmt.ResponseFormat(r.Header))
		for {
			var mf dto.MetricFamily
			if err := dec.Decode(&mf); err != nil {
				break
			}
			for _, m := range mf.GetMetric() {
				if g := m.GetGauge(); g != nil {
					fmt.Fprintf(&text, "%s %g\n", mf.GetName(), g.GetValue())
				}
			}
		}
		mu.Lock()
		pushes = append(pushes, r.Method+" "+r.URL.Path+"\n"+text.String())
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer gw.Close()
	e := newEnv(t, marketplace.SimConfig{RowsPerDay: 2000, TruncateRate: 1, StallAfter: time.Minute})
	stderr, took, err := e.sigtermMidDay(25*time.Second, []string{"ETL_HTTP_TIMEOUT=1m", "PUSHGATEWAY_URL=" + gw.URL}, "run", "--date", "2023-07-02")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1\n%s", err, stderr)
	}
	if got := e.scalar(`SELECT count(*) FROM marketplace.purchases`); got != "0" {
		t.Fatalf("%s lines of the interrupted day were committed", got)
	}
	mu.Lock()
	all := strings.Join(pushes, "\n")
	mu.Unlock()
	if !strings.Contains(all, "marketplace_etl_last_run_exit_code 1") || !strings.Contains(all, "marketplace_etl_last_run_success 0") {
		t.Fatalf("no push of the failed run's metrics after SIGTERM (%d pushes):\n%.2000s", len(pushes), all)
	}
	t.Logf("SIGTERM to exit: %s, %d push(es)", took.Round(time.Millisecond), len(pushes))
}
