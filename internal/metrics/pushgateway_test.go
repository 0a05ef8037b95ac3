package metrics

// Integration test: the real binary pushes to a real Pushgateway (the pinned
// one in bin/, else one on PATH), against the simulator and a real
// PostgreSQL. Skipped with -short.

import (
	"bytes"
	"database/sql"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/marketplace-etl/marketplace-etl/internal/etl"
	"github.com/marketplace-etl/marketplace-etl/internal/marketplace"
	"github.com/marketplace-etl/marketplace-etl/internal/pgtest"
)

var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	// hack/test-go.sh builds the binary once for every package; -short runs
	// no binary.
	binary = os.Getenv("MARKETPLACE_ETL_BIN")
	dir := ""
	if binary == "" && !testing.Short() {
		var err error
		if dir, err = os.MkdirTemp("", "marketplace-etl-metrics-"); err != nil {
			panic(err)
		}
		binary = filepath.Join(dir, "marketplace-etl")
		cmd := exec.Command("go", "build", "-o", binary, "github.com/marketplace-etl/marketplace-etl/cmd/marketplace-etl")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building the binary: %v\n%s", err, out)
			os.Exit(1)
		}
	}
	code := pgtest.Main(m)
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// startPushgateway runs a Pushgateway on a free loopback port, in memory
// only, and returns its URL. A missing binary fails the test: CI must not
// pass without the real gateway.
func startPushgateway(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	url, _ := runPushgateway(t, addr)
	return url
}

// runPushgateway starts a Pushgateway listening on addr with extra flags,
// waits until it is ready, and returns its URL and a stop function
// (SIGTERM, as Kubernetes stops a pod, then wait).
func runPushgateway(t *testing.T, addr string, args ...string) (string, func()) {
	t.Helper()
	path := toolPath(t, "pushgateway", "prometheus-pushgateway") // Debian names it prometheus-pushgateway
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--persistence.file=") }) {
		// An empty file keeps the state in memory, dying with the process:
		// Debian's build defaults to a file that would carry groups over
		// from one run to the next.
		args = append(args, "--persistence.file=")
	}
	var logs syncBuffer
	cmd := exec.Command(path, append([]string{"--web.listen-address=" + addr, "--log.level=warn"}, args...)...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		})
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("pushgateway log:\n%s", logs.String())
		}
	})
	url := "http://" + addr
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url, stop
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pushgateway at %s is not ready after 15 s: %v\n%s", url, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The chart runs the Pushgateway with --persistence.file: the last success
// and a backfill shard's failure survive a restart, and so do the alerts
// on them (without it, MarketplaceETLNoRecentSuccess would go silent).
func TestPushgatewayPersistenceSurvivesRestart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	file := filepath.Join(t.TempDir(), "pushgateway.db")
	gw, stop := runPushgateway(t, addr, "--persistence.file="+file, "--persistence.interval=1m")
	grouping := map[string]string{"release": "mp", "namespace": "etl"}
	r, err := New(Options{URL: gw, Job: "marketplace_etl", Grouping: grouping, Run: etl.Run{Mode: "run", ShardCount: 1},
		ExitCode: exitCode, ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	r.Finish(aPass(r), nil, time.Now())
	runGroup := map[string]string{"job": "marketplace_etl", "mode": "run", "release": "mp", "namespace": "etl"}
	success := value(t, scrape(t, gw), "marketplace_etl_last_success_timestamp_seconds", runGroup)

	stop() // the file is written on shutdown, well before the interval
	gw, _ = runPushgateway(t, addr, "--persistence.file="+file, "--persistence.interval=1m")
	f := scrape(t, gw)
	if got := value(t, f, "marketplace_etl_last_success_timestamp_seconds", runGroup); got != success {
		t.Errorf("after a restart the last success is %v, want %v", got, success)
	}
	if got := value(t, f, "marketplace_etl_newest_loaded_date_timestamp_seconds", runGroup); got != float64(day("2023-01-02").Unix()) {
		t.Errorf("after a restart the newest loaded day is %v", got)
	}
}

// scrape reads the gateway's /metrics as Prometheus would.
func scrape(t *testing.T, gw string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(gw + "/metrics")
	if err != nil {
		t.Fatalf("scraping the pushgateway: %v", err)
	}
	defer resp.Body.Close()
	return families(t, resp.Body, resp.Header)
}

type etlBinary struct {
	t       *testing.T
	dsn, gw string
	api     string
	db      *sql.DB
}

func (e *etlBinary) run(extraEnv []string, args ...string) (int, string) {
	e.t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "DATABASE_URL=" + e.dsn, "MARKETPLACE_API_URL=" + e.api,
		"LOG_FORMAT=json", "ETL_HTTP_RETRIES=0", "ETL_HTTP_RETRY_BACKOFF=10ms", "ETL_HTTP_RETRY_MAX_BACKOFF=50ms",
		"PUSHGATEWAY_URL=" + e.gw, "PUSHGATEWAY_GROUPING_LABELS=env=test", "PUSHGATEWAY_TIMEOUT=2s"}, extraEnv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), stderr.String()
	} else if err != nil {
		e.t.Fatal(err)
	}
	return 0, stderr.String()
}

func (e *etlBinary) count(q string, args ...any) float64 {
	e.t.Helper()
	var n int64
	if err := e.db.QueryRow(q, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	return float64(n)
}

func TestPushgateway(t *testing.T) {
	gw := startPushgateway(t)
	dsn := pgtest.NewDatabase(t)
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// 2023-01-06 fails persistently; 1 % of lines are all-null and rejected.
	sim := httptest.NewServer(marketplace.NewSimulator(marketplace.SimConfig{RowsPerDay: 400, NullRate: 0.01,
		FailDates: map[string]bool{"2023-01-06": true}}))
	defer sim.Close()
	e := &etlBinary{t: t, dsn: dsn, gw: gw, api: sim.URL + "/data", db: db}
	runGroup := map[string]string{"job": "marketplace_etl", "mode": "run", "env": "test"}

	// 1. A good daily run.
	before := float64(time.Now().Unix())
	if code, stderr := e.run(nil, "run", "--date", "2023-01-05"); code != 0 {
		t.Fatalf("run --date 2023-01-05: exit %d\n%s", code, stderr)
	}
	f := scrape(t, gw)
	loaded := e.count(`SELECT count(*) FROM marketplace.purchases`)
	if loaded == 0 {
		t.Fatal("nothing loaded")
	}
	if got := value(t, f, "marketplace_etl_last_run_rows_loaded", runGroup); got != loaded {
		t.Errorf("rows loaded %v, want count(*) of marketplace.purchases %v", got, loaded)
	}
	rejected := e.count(`SELECT count(*) FROM marketplace.rejected_purchases`)
	if got := value(t, f, "marketplace_etl_last_run_rows_rejected", runGroup); got != rejected || rejected == 0 {
		t.Errorf("rows rejected %v, want count(*) of marketplace.rejected_purchases %v (> 0)", got, rejected)
	}
	allNull := e.count(`SELECT count(*) FROM marketplace.rejected_purchases WHERE reason = 'all_null'`)
	if got := value(t, f, "marketplace_etl_last_run_rows_rejected_by_reason", with(runGroup, "reason", "all_null")); got != allNull {
		t.Errorf("rows rejected for all_null %v, want %v", got, allNull)
	}
	if got := value(t, f, "marketplace_etl_last_run_rows_fetched", runGroup); got != loaded+rejected {
		t.Errorf("rows fetched %v, want loaded + rejected %v", got, loaded+rejected)
	}
	success := value(t, f, "marketplace_etl_last_success_timestamp_seconds", runGroup)
	if success < before || success > float64(time.Now().Unix()+1) {
		t.Errorf("success timestamp %v, want the end of the run (after %v)", success, before)
	}
	for name, want := range map[string]float64{
		"marketplace_etl_last_run_success":                     1,
		"marketplace_etl_last_run_exit_code":                   0,
		"marketplace_etl_newest_loaded_date_timestamp_seconds": float64(time.Date(2023, 1, 5, 0, 0, 0, 0, time.UTC).Unix()),
	} {
		if got := value(t, f, name, runGroup); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := value(t, f, "marketplace_etl_last_run_dates", with(runGroup, "outcome", "loaded")); got != 1 {
		t.Errorf("dates loaded %v, want 1", got)
	}
	if got := value(t, f, "marketplace_etl_last_run_api_requests", with(runGroup, "class", "2xx")); got < 1 {
		t.Errorf("2xx API requests %v, want at least 1", got)
	}
	if m, ok := sample(f, "marketplace_etl_last_run_api_request_duration_seconds", runGroup); !ok || m.Histogram.GetSampleCount() < 1 {
		t.Errorf("no API latency observed")
	}
	// What the gateway serves for the ETL passes the Prometheus linter.
	promtoolCheckMetrics(t, text(t, f, "marketplace_etl_"))

	// 2. A failing daily run keeps the success timestamp and records the failure.
	time.Sleep(10 * time.Millisecond)
	code, stderr := e.run(nil, "run", "--date", "2023-01-06")
	if code != 1 {
		t.Fatalf("run --date 2023-01-06 against a failing API: exit %d, want 1\n%s", code, stderr)
	}
	f = scrape(t, gw)
	if got := value(t, f, "marketplace_etl_last_success_timestamp_seconds", runGroup); got != success {
		t.Errorf("success timestamp %v after a failure, want the previous %v", got, success)
	}
	for name, want := range map[string]float64{
		"marketplace_etl_last_run_success":     0,
		"marketplace_etl_last_run_exit_code":   1,
		"marketplace_etl_last_run_rows_loaded": 0,
	} {
		if got := value(t, f, name, runGroup); got != want {
			t.Errorf("after a failure %s = %v, want %v", name, got, want)
		}
	}
	if got := value(t, f, "marketplace_etl_last_run_dates", with(runGroup, "outcome", "failed")); got != 1 {
		t.Errorf("dates failed %v, want 1", got)
	}
	if got := value(t, f, "marketplace_etl_last_run_api_requests", with(runGroup, "class", "5xx")); got < 1 {
		t.Errorf("5xx API requests %v, want at least 1", got)
	}
	if end := value(t, f, "marketplace_etl_last_run_end_timestamp_seconds", runGroup); end <= success {
		t.Errorf("end timestamp %v, want after the last success %v", end, success)
	}

	// 3. A backfill shard whose API fails pushes its failure to its own group and leaves the
	// daily run's alone.
	code, stderr = e.run([]string{"MARKETPLACE_API_URL=" + sim.URL + "/missing"}, "backfill", "--from", "2023-01-01", "--to", "2023-01-04",
		"--shard-index", "3", "--shard-count", "4")
	if code == 0 {
		t.Fatalf("backfill shard 3/4 against a missing API path: exit 0, want a failure\n%s", stderr)
	}
	f = scrape(t, gw)
	shard3 := map[string]string{"job": "marketplace_etl", "mode": "backfill", "shard": "3", "env": "test"}
	if got := value(t, f, "marketplace_etl_last_run_exit_code", shard3); got != float64(code) {
		t.Errorf("backfill shard 3 exit code %v, want %d", got, code)
	}
	if got := value(t, f, "marketplace_etl_last_run_exit_code", runGroup); got != 1 {
		t.Errorf("the backfill changed the daily run's exit code to %v", got)
	}
	// Another release on the same gateway, with the same shard index.
	other := exec.Command(binary, "backfill", "--from", "2023-01-01", "--to", "2023-01-04", "--shard-index", "3", "--shard-count", "4")
	other.Env = []string{"PATH=" + os.Getenv("PATH"), "DATABASE_URL=" + dsn, "MARKETPLACE_API_URL=" + sim.URL + "/missing",
		"ETL_HTTP_RETRIES=0", "PUSHGATEWAY_URL=" + gw, "PUSHGATEWAY_GROUPING_LABELS=env=other"}
	if out, err := other.CombinedOutput(); err == nil {
		t.Fatalf("the other release's backfill against a missing API path succeeded:\n%s", out)
	}
	if got := groupsOf(scrape(t, gw)); len(got) != 3 {
		t.Fatalf("groups on the gateway: %v, want the daily run and two shard 3 groups", got)
	}

	// 4. A new backfill with two shards: shard 0 drops the superseded shard 3 of its own
	// grouping labels at its start, and each shard that succeeds deletes its own group.
	for _, shard := range []string{"1", "0"} {
		if code, stderr := e.run(nil, "backfill", "--from", "2023-01-01", "--to", "2023-01-04", "--shard-index", shard, "--shard-count", "2"); code != 0 {
			t.Fatalf("backfill shard %s/2: exit %d\n%s", shard, code, stderr)
		}
	}
	if n := e.count(`SELECT count(*) FROM marketplace.purchases WHERE purchase_date < '2023-01-05'`); n == 0 {
		t.Error("the backfill loaded nothing")
	}
	// Never a date or a pod name in a group: exactly the daily run's group and the other
	// release's are left.
	groups := groupsOf(scrape(t, gw))
	if len(groups) != 2 || !groups["env=test,job=marketplace_etl,mode=run"] || !groups["env=other,job=marketplace_etl,mode=backfill,shard=3"] {
		t.Errorf("groups on the gateway: %v, want the daily run and the other release's shard 3", groups)
	}
}

// groupsOf lists the groups that have a start timestamp, as "k=v,..." of their non-empty labels.
func groupsOf(f map[string]*dto.MetricFamily) map[string]bool {
	groups := map[string]bool{}
	for _, m := range f["marketplace_etl_last_run_start_timestamp_seconds"].GetMetric() {
		var kv []string
		for _, lp := range m.Label {
			if lp.GetValue() != "" {
				kv = append(kv, lp.GetName()+"="+lp.GetValue())
			}
		}
		groups[strings.Join(kv, ",")] = true
	}
	return groups
}

// A pass whose gateway does not answer still succeeds, with a warning.
func TestPushgatewayDownKeepsExitCode(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sim := httptest.NewServer(marketplace.NewSimulator(marketplace.SimConfig{RowsPerDay: 50}))
	defer sim.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there any more: connection refused
	e := &etlBinary{t: t, dsn: dsn, gw: closed, api: sim.URL + "/data", db: db}
	code, stderr := e.run([]string{"PUSHGATEWAY_USERNAME=etl", "PUSHGATEWAY_PASSWORD=hunter2"}, "run", "--date", "2023-01-05")
	if code != 0 {
		t.Fatalf("exit %d with the pushgateway down, want 0\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "could not push the run metrics") || !strings.Contains(stderr, `"level":"WARN"`) {
		t.Errorf("want a warning about the push:\n%s", stderr)
	}
	if strings.Contains(stderr, "hunter2") {
		t.Errorf("the log shows the password:\n%s", stderr)
	}
	if n := e.count(`SELECT count(*) FROM marketplace.purchases`); n == 0 {
		t.Error("nothing loaded")
	}
}

func with(m map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for a, b := range m {
		out[a] = b
	}
	return out
}
