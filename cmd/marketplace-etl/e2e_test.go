package main

// End-to-end tests: the real binary against the simulator and a real
// PostgreSQL.

import (
	"bytes"
	"context"
	"database/sql"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/marketplace-etl/marketplace-etl/internal/marketplace"
	"github.com/marketplace-etl/marketplace-etl/internal/pgtest"
)

var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// Every test here runs the binary against PostgreSQL: none is short.
		fmt.Println("end-to-end tests of the binary skipped with -short; make test-go runs them")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "marketplace-etl-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "marketplace-etl")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the binary: %v\n%s", err, out)
		os.Exit(1)
	}
	code := pgtest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is a test's world: a database and a simulator.
type env struct {
	t   *testing.T
	dsn string
	db  *sql.DB
	sim *marketplace.Simulator
	api string
}

func newEnv(t *testing.T, cfg marketplace.SimConfig) *env {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &env{t: t, dsn: dsn, db: db}
	e.setSim(cfg)
	return e
}

func (e *env) setSim(cfg marketplace.SimConfig) {
	e.sim = marketplace.NewSimulator(cfg)
	srv := httptest.NewServer(e.sim)
	e.t.Cleanup(srv.Close)
	e.api = srv.URL + "/data"
}

// run executes the binary and returns its exit code and stderr.
func (e *env) run(extraEnv []string, args ...string) (int, string) {
	e.t.Helper()
	cmd := e.command(extraEnv, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	return code, stderr.String()
}

func (e *env) command(extraEnv []string, args ...string) *exec.Cmd {
	cmd := exec.Command(binary, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "DATABASE_URL=" + e.dsn, "MARKETPLACE_API_URL=" + e.api,
		"LOG_FORMAT=json", "ETL_HTTP_RETRY_BACKOFF=10ms", "ETL_HTTP_RETRY_MAX_BACKOFF=50ms"}, extraEnv...)
	return cmd
}

func (e *env) mustRun(args ...string) string {
	e.t.Helper()
	code, stderr := e.run(nil, args...)
	if code != 0 {
		e.t.Fatalf("%v: exit %d\n%s", args, code, stderr)
	}
	return stderr
}

func (e *env) scalar(q string, args ...any) string {
	e.t.Helper()
	var s sql.NullString
	if err := e.db.QueryRow(q, args...).Scan(&s); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	return s.String
}

// snapshot digests the full content of the data tables, load metadata
// included, so two snapshots are equal only if nothing changed at all.
func (e *env) snapshot() string {
	e.t.Helper()
	return e.scalar(`SELECT md5(
		(SELECT coalesce(string_agg(p::text, E'\n' ORDER BY purchase_date, line_no), '') FROM marketplace.purchases p) ||
		(SELECT coalesce(string_agg(r::text, E'\n' ORDER BY purchase_date, line_no), '') FROM marketplace.rejected_purchases r) ||
		(SELECT coalesce(string_agg(d::text, E'\n' ORDER BY purchase_date), '') FROM marketplace.day_loads d))`)
}

// checkAgainstSimulator asserts that every loaded day holds exactly the
// simulator's valid lines and that no other day has any.
func (e *env) checkAgainstSimulator(from, to string) {
	e.t.Helper()
	f, _ := time.Parse(time.DateOnly, from)
	l, _ := time.Parse(time.DateOnly, to)
	for d := f; !d.After(l); d = d.AddDate(0, 0, 1) {
		date := d.Format(time.DateOnly)
		st := e.sim.Stats(date)
		var lines, rejected int
		var revenue string
		if err := e.db.QueryRow(`SELECT count(*), coalesce(sum(total_price), 0)::bigint::text FROM marketplace.purchases WHERE purchase_date = $1`, date).Scan(&lines, &revenue); err != nil {
			e.t.Fatal(err)
		}
		e.db.QueryRow(`SELECT count(*) FROM marketplace.rejected_purchases WHERE purchase_date = $1`, date).Scan(&rejected)
		var status string
		_ = e.db.QueryRow(`SELECT status FROM marketplace.day_loads WHERE purchase_date = $1`, date).Scan(&status)
		switch status {
		case "loaded":
			if lines != st.ValidLines || revenue != fmt.Sprint(st.Revenue) || lines+rejected != st.Lines {
				e.e2eFail(date, "loaded day has %d lines (%d rejected), revenue %s; simulator: %d valid of %d, revenue %d", lines, rejected, revenue, st.ValidLines, st.Lines, st.Revenue)
			}
		case "no_data":
			if lines != 0 || st.Lines != 0 {
				e.e2eFail(date, "no_data day has %d lines, simulator %d", lines, st.Lines)
			}
		default:
			if lines != 0 {
				e.e2eFail(date, "day with status %q has %d lines", status, lines)
			}
		}
	}
}

// waitForRequest waits until the simulator has been asked for a day (the
// pass is then past its start-up, in the middle of a load), so signal tests
// do not depend on how fast the machine is.
func (e *env) waitForRequest(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for e.sim.Requests() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the pass never asked the API for a day")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
}

func (e *env) e2eFail(date, format string, args ...any) {
	e.t.Helper()
	e.t.Fatalf("%s: %s", date, fmt.Sprintf(format, args...))
}

func TestBackfillTwiceIsByteIdentical(t *testing.T) {
	e := newEnv(t, marketplace.SimConfig{})
	e.mustRun("backfill", "--from", "2023-01-01", "--to", "2023-01-31")
	e.checkAgainstSimulator("2023-01-01", "2023-01-31")
	first := e.snapshot()
	if got := e.scalar(`SELECT count(*) FROM marketplace.day_loads WHERE status = 'loaded'`); got != "31" {
		t.Fatalf("%s days loaded, want 31", got)
	}
	e.mustRun("backfill", "--from", "2023-01-01", "--to", "2023-01-31")
	if e.snapshot() != first {
		t.Fatal("a second backfill changed the tables")
	}
	// --force re-fetches every day (in a new row order): still nothing changes.
	stderr := e.mustRun("backfill", "--from", "2023-01-01", "--to", "2023-01-31", "--force")
	if e.snapshot() != first {
		t.Fatal("a forced backfill of unchanged days changed the tables")
	}
	if !strings.Contains(stderr, `"days_unchanged":31`) {
		t.Fatalf("forced backfill did not report 31 unchanged days:\n%s", stderr)
	}
	// Every rejected line is kept with its reason.
	if got := e.scalar(`SELECT sum(rows_rejected) - (SELECT count(*) FROM marketplace.rejected_purchases) FROM marketplace.day_loads`); got != "0" {
		t.Fatalf("rejected rows and day_loads disagree by %s", got)
	}
	if got := e.scalar(`SELECT count(*) FROM marketplace.rejected_purchases WHERE reason = '' OR raw = ''`); got != "0" {
		t.Fatalf("%s rejects without a reason or raw line", got)
	}
}

func TestShardsCoverTheRangeOnce(t *testing.T) {
	e := newEnv(t, marketplace.SimConfig{RowsPerDay: 200})
	for i := 0; i < 3; i++ {
		e.mustRun("backfill", "--from", "2023-02-01", "--to", "2023-02-10", "--shard-index", fmt.Sprint(i), "--shard-count", "3")
	}
	e.checkAgainstSimulator("2023-02-01", "2023-02-10")
	if got := e.scalar(`SELECT count(*) FROM marketplace.day_loads WHERE status = 'loaded'`); got != "10" {
		t.Fatalf("%s days loaded, want 10", got)
	}
	// Shard from the environment, as an Indexed Job sets it.
	e2 := newEnv(t, marketplace.SimConfig{RowsPerDay: 50})
	code, stderr := e2.run([]string{"JOB_COMPLETION_INDEX=1", "BACKFILL_SHARD_COUNT=2"}, "backfill", "--from", "2023-02-01", "--to", "2023-02-04")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got := e2.scalar(`SELECT string_agg(purchase_date::text, ',' ORDER BY purchase_date) FROM marketplace.day_loads`); got != "2023-02-02,2023-02-04" {
		t.Fatalf("shard 1 of 2 loaded %s", got)
	}
}

func TestNoDataBeforeFirstDay(t *testing.T) {
	e := newEnv(t, marketplace.SimConfig{RowsPerDay: 100})
	e.mustRun("backfill", "--from", "2021-12-30", "--to", "2022-01-02")
	got := e.scalar(`SELECT string_agg(purchase_date || '=' || status, ',' ORDER BY purchase_date) FROM marketplace.day_loads`)
	if got != "2021-12-30=no_data,2021-12-31=no_data,2022-01-01=loaded,2022-01-02=loaded" {
		t.Fatalf("day states %s", got)
	}
	e.checkAgainstSimulator("2021-12-30", "2022-01-02")
}

func TestUpstreamChangeReplacesTheDay(t *testing.T) {
	e := newEnv(t, marketplace.SimConfig{})
	e.mustRun("run", "--date", "2023-06-01")
	before := e.scalar(`SELECT checksum FROM marketplace.day_loads WHERE purchase_date = '2023-06-01'`)
	e.setSim(marketplace.SimConfig{Seed: 7})
	stderr := e.mustRun("run", "--date", "2023-06-01")
	if !strings.Contains(stderr, "changed upstream") {
		t.Fatalf("the change was not logged:\n%s", stderr)
	}
	after := e.scalar(`SELECT checksum || ' ' || checksum_changes FROM marketplace.day_loads WHERE purchase_date = '2023-06-01'`)
	if strings.HasPrefix(after, before) || !strings.HasSuffix(after, " 1") {
		t.Fatalf("checksum before %s, after %s", before, after)
	}
	e.checkAgainstSimulator("2023-06-01", "2023-06-01")
}

func TestDailyRunCatchesUp(t *testing.T) {
	loc, _ := time.LoadLocation("Europe/Moscow")
	now := time.Now().In(loc)
	yesterday := time.Date(now.Year(), now.Month(), now.Day()-1, 0, 0, 0, 0, time.UTC)
	failing := yesterday.AddDate(0, 0, -2).Format(time.DateOnly)
	e := newEnv(t, marketplace.SimConfig{RowsPerDay: 100, FailDates: map[string]bool{failing: true}})
	code, stderr := e.run([]string{"ETL_CATCHUP_DAYS=3", "ETL_HTTP_RETRIES=1"}, "run")
	if code != 1 {
		t.Fatalf("run with a failing day: exit %d, want 1\n%s", code, stderr)
	}
	got := e.scalar(`SELECT string_agg(status, ',' ORDER BY purchase_date) FROM marketplace.day_loads`)
	if got != "loaded,failed,loaded,loaded" {
		t.Fatalf("day states after the outage: %s", got)
	}
	if e.scalar(`SELECT last_error FROM marketplace.day_loads WHERE purchase_date = $1`, failing) == "" {
		t.Fatal("failed day has no last_error")
	}
	e.setSim(marketplace.SimConfig{RowsPerDay: 100})
	if code, stderr := e.run([]string{"ETL_CATCHUP_DAYS=3"}, "run"); code != 0 {
		t.Fatalf("catch-up run: exit %d\n%s", code, stderr)
	}
	if got := e.scalar(`SELECT string_agg(status, ',' ORDER BY purchase_date) FROM marketplace.day_loads`); got != "loaded,loaded,loaded,loaded" {
		t.Fatalf("day states after catch-up: %s", got)
	}
	e.checkAgainstSimulator(yesterday.AddDate(0, 0, -3).Format(time.DateOnly), yesterday.Format(time.DateOnly))
}

func TestRejectRatioAboveThresholdExits3(t *testing.T) {
	e := newEnv(t, marketplace.SimConfig{RowsPerDay: 400, NullRate: 0.3})
	code, stderr := e.run(nil, "run", "--date", "2023-03-03")
	if code != 3 {
		t.Fatalf("exit %d, want 3\n%s", code, stderr)
	}
	if got := e.scalar(`SELECT status FROM marketplace.day_loads WHERE purchase_date = '2023-03-03'`); got != "failed" {
		t.Fatalf("status %s, want failed", got)
	}
	if got := e.scalar(`SELECT count(*) FROM marketplace.purchases`); got != "0" {
		t.Fatalf("%s lines loaded from a refused day", got)
	}
	if got := e.scalar(`SELECT count(*) FROM marketplace.rejected_purchases WHERE reason = 'all_null'`); got == "0" {
		t.Fatal("rejects of the refused day are not kept for inspection")
	}
	// A higher threshold accepts the day.
	code, stderr = e.run([]string{"ETL_MAX_REJECT_RATIO=0.6"}, "run", "--date", "2023-03-03")
	if code != 0 {
		t.Fatalf("exit %d with a higher threshold\n%s", code, stderr)
	}
}

func TestUsageErrorsExit2AndWriteNothing(t *testing.T) {
	e := newEnv(t, marketplace.SimConfig{RowsPerDay: 10})
	loc, _ := time.LoadLocation("Europe/Moscow")
	today := time.Now().In(loc).Format(time.DateOnly)
	cases := []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"ETL_TIMEZONE=Mars/Olympus"}, []string{"run"}, "ETL_TIMEZONE"},
		{[]string{"ETL_CATCHUP_DAYS=-1"}, []string{"run"}, "ETL_CATCHUP_DAYS"},
		{[]string{"ETL_CATCHUP_DAYS=seven"}, []string{"run"}, "ETL_CATCHUP_DAYS"},
		{[]string{"ETL_MAX_REJECT_RATIO=2"}, []string{"run"}, "ETL_MAX_REJECT_RATIO"},
		{[]string{"ETL_HTTP_TIMEOUT=soon"}, []string{"run"}, "ETL_HTTP_TIMEOUT"},
		{[]string{"DATABASE_URL=postgres://u:secret@"}, []string{"run"}, "DATABASE_URL"},
		{nil, []string{"run", "--bogus"}, "bogus"},
		{nil, []string{"run", "--date", "2023-02-30"}, "--date"},
		{nil, []string{"run", "--date", today}, "has not ended yet"},
		{nil, []string{"backfill"}, "--from is required"},
		{nil, []string{"backfill", "--from", "2023-02-10", "--to", "2023-02-01"}, "after --to"},
		{nil, []string{"backfill", "--from", "2023-02-01", "--to", today}, "has not ended yet"},
		{nil, []string{"backfill", "--from", "2023-02-01", "--to", "2023-02-02", "--shard-index", "2", "--shard-count", "2"}, "shard"},
		{nil, []string{"frobnicate"}, "unknown command"},
	}
	for _, c := range cases {
		code, stderr := e.run(c.env, c.args...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code != 2 || !strings.Contains(stderr, c.want) || len(lines) != 1 {
			t.Errorf("%v %v: exit %d, stderr %q; want exit 2 and one line naming %q", c.env, c.args, code, stderr, c.want)
		}
		if strings.Contains(stderr, "secret") {
			t.Errorf("%v: password leaked: %s", c.env, stderr)
		}
	}
	// Nothing was written: not even the schema.
	if got := e.scalar(`SELECT count(*) FROM pg_namespace WHERE nspname = 'marketplace'`); got != "0" {
		t.Fatal("a usage error touched the database")
	}
}

func TestDatabaseUnreachableExits1(t *testing.T) {
	e := newEnv(t, marketplace.SimConfig{RowsPerDay: 10})
	code, stderr := e.run([]string{"DATABASE_URL=postgres://etl:hunter2@127.0.0.1:1/marketplace?sslmode=disable&connect_timeout=2"}, "run", "--date", "2023-01-01")
	if code != 1 || !strings.Contains(stderr, "connecting to the database") {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	if strings.Contains(stderr, "hunter2") {
		t.Fatal("password leaked into the output")
	}
}

func TestTransientFaultsAreRetriedThenLoaded(t *testing.T) {
	e := newEnv(t, marketplace.SimConfig{RowsPerDay: 300, FailFirst: 2})
	e.mustRun("backfill", "--from", "2023-04-01", "--to", "2023-04-03")
	e.checkAgainstSimulator("2023-04-01", "2023-04-03")
	if got := e.scalar(`SELECT count(*) FROM marketplace.day_loads WHERE status = 'loaded'`); got != "3" {
		t.Fatalf("%s days loaded", got)
	}
}

// TestSigkillLeavesNoPartialDay kills the backfill at several points and
// checks that every day is either complete or absent, and that a re-run
// completes the range.
func TestSigkillLeavesNoPartialDay(t *testing.T) {
	e := newEnv(t, marketplace.SimConfig{RowsPerDay: 3000, Latency: 30 * time.Millisecond})
	// The schema first: a kill during the migrations is not what this
	// checks, and on a slow machine the earliest kill would land there.
	e.mustRun("migrate", "up")
	for _, after := range []time.Duration{150 * time.Millisecond, 400 * time.Millisecond, 700 * time.Millisecond, 1100 * time.Millisecond} {
		cmd := e.command(nil, "backfill", "--from", "2023-05-01", "--to", "2023-05-20")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(after)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		e.checkAgainstSimulator("2023-05-01", "2023-05-20")
	}
	e.mustRun("backfill", "--from", "2023-05-01", "--to", "2023-05-20")
	e.checkAgainstSimulator("2023-05-01", "2023-05-20")
	if got := e.scalar(`SELECT count(*) FROM marketplace.day_loads WHERE status = 'loaded'`); got != "20" {
		t.Fatalf("%s days loaded after the re-run, want 20", got)
	}
}

func TestSigtermRollsBackAndExits(t *testing.T) {
	e := newEnv(t, marketplace.SimConfig{RowsPerDay: 2000, TruncateRate: 1, StallAfter: time.Minute})
	cmd := e.command([]string{"ETL_HTTP_TIMEOUT=1m"}, "run", "--date", "2023-07-01")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e.waitForRequest(t) // in the middle of the stalled body
	start := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if time.Since(start) > 10*time.Second {
		t.Fatal("SIGTERM did not end the pass promptly")
	}
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1\n%s", err, stderr.String())
	}
	if got := e.scalar(`SELECT count(*) FROM marketplace.purchases`); got != "0" {
		t.Fatalf("%s lines of an interrupted day were committed", got)
	}
	if got := e.scalar(`SELECT status FROM marketplace.etl_runs`); got != "failed" {
		t.Fatalf("run status %s, want failed", got)
	}
	_ = context.Background()
}

func TestMigrateAndCheck(t *testing.T) {
	e := newEnv(t, marketplace.SimConfig{RowsPerDay: 10})
	e.mustRun("migrate", "up")
	cmd := e.command(nil, "migrate", "status")
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), "applied") || strings.Contains(string(out), "pending") {
		t.Fatalf("migrate status: %v\n%s", err, out)
	}
	cmd = e.command(nil, "check")
	out, err = cmd.Output()
	if err != nil || !strings.Contains(string(out), "ok   API") {
		t.Fatalf("check: %v\n%s", err, out)
	}
	code, stderr := e.run([]string{"MARKETPLACE_API_URL=http://127.0.0.1:1/data", "ETL_HTTP_TIMEOUT=2s"}, "check")
	if code == 0 || !strings.Contains(stderr, "API") {
		t.Fatalf("check with a dead API: exit %d %s", code, stderr)
	}
}

// TestNoDataAnswerNeverDeletesALoadedDay: if the API ever answers its
// no-data sentence for a day already loaded, the lines stay.
func TestNoDataAnswerNeverDeletesALoadedDay(t *testing.T) {
	e := newEnv(t, marketplace.SimConfig{RowsPerDay: 100})
	e.mustRun("run", "--date", "2022-03-01")
	lines := e.scalar(`SELECT count(*) FROM marketplace.purchases`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(marketplace.NoDataSentence))
	}))
	defer srv.Close()
	e.api = srv.URL + "/data"
	stderr := e.mustRun("run", "--date", "2022-03-01")
	if !strings.Contains(stderr, "loaded lines are kept") {
		t.Fatalf("no warning:\n%s", stderr)
	}
	if got := e.scalar(`SELECT status || ' ' || rows_loaded FROM marketplace.day_loads`); got != "loaded "+lines {
		t.Fatalf("day state %q, want loaded with %s lines", got, lines)
	}
	if got := e.scalar(`SELECT count(*) FROM marketplace.purchases`); got != lines {
		t.Fatalf("%s lines left of %s", got, lines)
	}
}
