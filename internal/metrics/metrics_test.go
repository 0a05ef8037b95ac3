package metrics

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/marketplace-etl/marketplace-etl/internal/etl"
	"github.com/marketplace-etl/marketplace-etl/internal/purchases"
)

// received is one push a fake gateway received.
type received struct {
	method, path, auth string
	fams               map[string]*dto.MetricFamily
}

// fakeGateway records pushes and answers 200.
func fakeGateway(t *testing.T) (*httptest.Server, func() []received) {
	var mu sync.Mutex
	var got []received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := received{method: r.Method, path: r.URL.Path, auth: r.Header.Get("Authorization"), fams: families(t, r.Body, r.Header)}
		mu.Lock()
		got = append(got, p)
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv, func() []received {
		mu.Lock()
		defer mu.Unlock()
		return append([]received(nil), got...)
	}
}

func exitCode(err error) int {
	if err != nil {
		return 3
	}
	return 0
}

func day(s string) time.Time {
	d, _ := time.Parse(time.DateOnly, s)
	return d
}

// aPass feeds a recorder a small pass: two days loaded, one without data, a
// failed request and three good ones.
func aPass(r *Recorder) etl.Result {
	r.ObserveRequest(200, 300*time.Millisecond)
	r.ObserveRequest(200, 2*time.Second)
	r.ObserveRequest(503, 40*time.Millisecond)
	r.ObserveRequest(0, time.Second)
	r.ObserveRequest(404, 10*time.Millisecond)
	r.DayFinished(etl.DayReport{Date: day("2023-01-01"), Outcome: etl.Loaded, Duration: 3 * time.Second, Attempts: 2,
		Summary: etl.Summary{Fetched: 100, Loaded: 97, Rejected: 3, ByReason: map[purchases.Reason]int{purchases.AllNull: 2, purchases.DateMismatch: 1}}})
	r.DayFinished(etl.DayReport{Date: day("2023-01-02"), Outcome: etl.Loaded, Duration: time.Second, Attempts: 1,
		Summary: etl.Summary{Fetched: 50, Loaded: 49, Rejected: 1, ByReason: map[purchases.Reason]int{purchases.AllNull: 1}}})
	r.DayFinished(etl.DayReport{Date: day("2023-01-03"), Outcome: etl.NoData, Duration: time.Millisecond, Attempts: 1})
	r.MartsRefreshed(1500*time.Millisecond, nil)
	return etl.Result{Totals: etl.RunTotals{DaysLoaded: 2, DaysNoData: 1, RowsLoaded: 146, RowsRejected: 4},
		Skipped: 4, NewestLoaded: day("2023-01-02")}
}

func TestPushes(t *testing.T) {
	srv, pushes := fakeGateway(t)
	run := etl.Run{Mode: "run", ShardCount: 1}
	r, err := New(Options{URL: srv.URL, Job: "marketplace_etl", Username: "etl", Password: "s3cret", Timeout: time.Second,
		Grouping: map[string]string{"env": "prod"}, Run: run, Version: "v1.2.3", ExitCode: exitCode, ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now().Add(-5 * time.Second)
	res := aPass(r)
	r.Finish(res, nil, started)

	ps := pushes()
	if len(ps) != 2 {
		t.Fatalf("%d pushes, want the start and the end", len(ps))
	}
	for _, p := range ps {
		// Add semantics: POST. The grouping key: job, mode, extra labels; no date.
		if g := groupOf(p.path); p.method != http.MethodPost || g != "env=prod job=marketplace_etl mode=run" {
			t.Errorf("push %s %s (%s), want POST to job=marketplace_etl, env=prod, mode=run", p.method, p.path, g)
		}
		if p.auth != "Basic ZXRsOnMzY3JldA==" {
			t.Errorf("Authorization %q, want basic auth etl:s3cret", p.auth)
		}
	}
	if got := names(ps[0].fams); got != "marketplace_etl_last_run_progress_timestamp_seconds marketplace_etl_last_run_start_timestamp_seconds" {
		t.Errorf("start push has %s, want only the start and progress timestamps", got)
	}

	f := ps[1].fams
	none := map[string]string{}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"marketplace_etl_last_run_success", none, 1},
		{"marketplace_etl_last_run_exit_code", none, 0},
		{"marketplace_etl_last_run_rows_fetched", none, 150},
		{"marketplace_etl_last_run_rows_loaded", none, 146},
		{"marketplace_etl_last_run_rows_rejected", none, 4},
		{"marketplace_etl_last_run_rows_rejected_by_reason", map[string]string{"reason": "all_null"}, 3},
		{"marketplace_etl_last_run_rows_rejected_by_reason", map[string]string{"reason": "date_mismatch"}, 1},
		{"marketplace_etl_last_run_rows_rejected_by_reason", map[string]string{"reason": "zero_quantity"}, 0},
		{"marketplace_etl_last_run_dates", map[string]string{"outcome": "loaded"}, 2},
		{"marketplace_etl_last_run_dates", map[string]string{"outcome": "unchanged"}, 0},
		{"marketplace_etl_last_run_dates", map[string]string{"outcome": "no_data"}, 1},
		{"marketplace_etl_last_run_dates", map[string]string{"outcome": "failed"}, 0},
		{"marketplace_etl_last_run_dates_skipped", none, 4},
		{"marketplace_etl_last_run_api_requests", map[string]string{"class": "2xx"}, 2},
		{"marketplace_etl_last_run_api_requests", map[string]string{"class": "4xx"}, 1},
		{"marketplace_etl_last_run_api_requests", map[string]string{"class": "5xx"}, 1},
		{"marketplace_etl_last_run_api_requests", map[string]string{"class": "error"}, 1},
		{"marketplace_etl_newest_loaded_date_timestamp_seconds", none, float64(day("2023-01-02").Unix())},
		{"marketplace_etl_last_run_marts_refresh_duration_seconds", none, 1.5},
		{"marketplace_etl_build_info", map[string]string{"version": "v1.2.3"}, 1},
	}
	for _, c := range checks {
		if got := value(t, f, c.name, c.labels); got != c.want {
			t.Errorf("%s%s = %v, want %v", c.name, fmtLabels(c.labels), got, c.want)
		}
	}
	if len(f["marketplace_etl_last_run_rows_rejected_by_reason"].Metric) != len(purchases.Reasons) {
		t.Errorf("rows_rejected_by_reason has %d series, want one per reason code", len(f["marketplace_etl_last_run_rows_rejected_by_reason"].Metric))
	}
	end := value(t, f, "marketplace_etl_last_run_end_timestamp_seconds", none)
	if succ := value(t, f, "marketplace_etl_last_success_timestamp_seconds", none); succ != end || end < float64(started.Unix()) {
		t.Errorf("success %v, end %v: want both the end of the pass", succ, end)
	}
	if m := value(t, f, "marketplace_etl_marts_refreshed_timestamp_seconds", none); m < float64(started.Unix()) || m > end {
		t.Errorf("marts refreshed at %v, want during the pass (%v to %v)", m, started.Unix(), end)
	}
	if d := value(t, f, "marketplace_etl_last_run_duration_seconds", none); d < 5 || d > 60 {
		t.Errorf("duration %v s, want about 5 s", d)
	}
	h := f["marketplace_etl_last_run_api_request_duration_seconds"].Metric[0].Histogram
	if h.GetSampleCount() != 5 || h.GetSampleSum() < 3.3 || h.GetSampleSum() > 3.4 {
		t.Errorf("API latency histogram: %d requests, %v s, want 5 and 3.35 s", h.GetSampleCount(), h.GetSampleSum())
	}
	h = f["marketplace_etl_last_run_day_load_duration_seconds"].Metric[0].Histogram
	if h.GetSampleCount() != 3 {
		t.Errorf("day load histogram: %d days, want 3", h.GetSampleCount())
	}
	// The pushed exposition passes the Prometheus linter.
	promtoolCheckMetrics(t, text(t, f, ""))
}

// A failed pass must leave the success timestamp out of its push: Add then
// keeps the previous one on the gateway.
func TestFailureOmitsSuccessTimestamp(t *testing.T) {
	srv, pushes := fakeGateway(t)
	r, err := New(Options{URL: srv.URL, Job: "j", Run: etl.Run{Mode: "run"}, ExitCode: exitCode, ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	// NewestLoaded zero: the database could not be read, keep the last value.
	r.Finish(etl.Result{Totals: etl.RunTotals{DaysFailed: 1}}, errors.New("data contract"), time.Now())
	ps := pushes()
	f := ps[len(ps)-1].fams
	if g := groupOf(ps[len(ps)-1].path); g != "job=j mode=run" {
		t.Errorf("group %s, want job=j mode=run: no shard for the daily run", g)
	}
	for _, n := range []string{"marketplace_etl_last_success_timestamp_seconds", "marketplace_etl_newest_loaded_date_timestamp_seconds",
		"marketplace_etl_last_run_marts_refresh_duration_seconds", "marketplace_etl_marts_refreshed_timestamp_seconds"} {
		if f[n] != nil {
			t.Errorf("a failed pass pushed %s", n)
		}
	}
	if v := value(t, f, "marketplace_etl_last_run_success", nil); v != 0 {
		t.Errorf("last_run_success %v, want 0", v)
	}
	if v := value(t, f, "marketplace_etl_last_run_exit_code", nil); v != 3 {
		t.Errorf("last_run_exit_code %v, want 3", v)
	}
	if v := value(t, f, "marketplace_etl_last_run_dates", map[string]string{"outcome": "failed"}); v != 1 {
		t.Errorf("days failed %v, want 1", v)
	}
}

// A marts refresh that failed pushes its duration but not a new refresh time:
// the marts are as stale as before.
func TestFailedMartsRefreshKeepsRefreshTime(t *testing.T) {
	srv, pushes := fakeGateway(t)
	r, err := New(Options{URL: srv.URL, Job: "j", Run: etl.Run{Mode: "run"}, ExitCode: exitCode, ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	r.MartsRefreshed(2*time.Second, errors.New("lock timeout"))
	r.Finish(etl.Result{}, errors.New("marts failed"), time.Now())
	ps := pushes()
	f := ps[len(ps)-1].fams
	if f["marketplace_etl_marts_refreshed_timestamp_seconds"] != nil {
		t.Error("a failed marts refresh pushed a new refresh time")
	}
	if v := value(t, f, "marketplace_etl_last_run_marts_refresh_duration_seconds", nil); v != 2 {
		t.Errorf("marts refresh duration %v, want 2", v)
	}
}

// A backfill shard that succeeds deletes its group instead of pushing its
// end: nothing is left to keep an alert firing. One that fails pushes its
// end and stays.
func TestBackfillShardGroup(t *testing.T) {
	for _, c := range []struct {
		name    string
		err     error
		methods string
	}{
		{"success deletes the group", nil, "POST DELETE"},
		{"failure keeps the group", errors.New("failed"), "POST POST"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, pushes := fakeGateway(t)
			r, err := New(Options{URL: srv.URL, Job: "j", Grouping: map[string]string{"release": "mp"},
				Run: etl.Run{Mode: "backfill", ShardIndex: 1, ShardCount: 3}, ExitCode: exitCode, ProgressInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			r.Finish(aPass(r), c.err, time.Now())
			var methods []string
			for _, p := range pushes() {
				methods = append(methods, p.method)
				if g := groupOf(p.path); g != "job=j mode=backfill release=mp shard=1" {
					t.Errorf("%s %s, want the group of shard 1", p.method, g)
				}
			}
			if got := strings.Join(methods, " "); got != c.methods {
				t.Errorf("requests %s, want %s", got, c.methods)
			}
		})
	}
}

func TestProgressPushes(t *testing.T) {
	srv, pushes := fakeGateway(t)
	r, err := New(Options{URL: srv.URL, Job: "j", Run: etl.Run{Mode: "backfill"}, ProgressInterval: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	r.DayFinished(etl.DayReport{Outcome: etl.Loaded})
	ps := pushes()
	if len(ps) != 2 || names(ps[1].fams) != "marketplace_etl_last_run_progress_timestamp_seconds" {
		t.Fatalf("%d pushes, want the start and one progress push of the progress timestamp alone", len(ps))
	}
}

// A gateway that accepts connections and never answers: every push must
// give up within the timeout, warn, and leave the pass alone.
func TestUnreachableGateway(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	start := time.Now()
	r, err := New(Options{URL: "http://etl:pw-in-url%2F%40%25x@" + ln.Addr().String() /* percent-encoded: issue 13 */, Job: "j", Password: "hunter2", Username: "etl",
		Timeout: 200 * time.Millisecond, Run: etl.Run{Mode: "run"}, Log: log, ProgressInterval: time.Nanosecond})
	if err != nil {
		t.Fatalf("New must not fail for an unreachable gateway: %v", err)
	}
	// After the failed start push, progress pushes are off: days do not wait.
	for range 20 {
		r.DayFinished(etl.DayReport{Outcome: etl.Loaded})
	}
	r.Finish(aPass(r), nil, start)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the pass waited %v for the gateway, want two pushes of 200 ms", d)
	}
	out := logs.String()
	if n := strings.Count(out, "could not push the run metrics"); n != 2 {
		t.Errorf("%d warnings, want 2 (start and end):\n%s", n, out)
	}
	if !strings.Contains(out, "level=WARN") {
		t.Errorf("want warnings:\n%s", out)
	}
	for _, secret := range []string{"hunter2", "pw-in-url"} {
		if strings.Contains(out, secret) {
			t.Errorf("the log shows the password %q:\n%s", secret, out)
		}
	}
}

func TestGroupingKey(t *testing.T) {
	g, err := GroupingKey(etl.Run{Mode: "backfill", ShardIndex: 2, ShardCount: 4}, map[string]string{"env": "prod"})
	if err != nil || len(g) != 3 || g["mode"] != "backfill" || g["shard"] != "2" || g["env"] != "prod" {
		t.Errorf("GroupingKey = %v, %v", g, err)
	}
	for _, reserved := range []string{"job", "mode", "shard", "instance"} {
		if _, err := GroupingKey(etl.Run{Mode: "run"}, map[string]string{reserved: "x"}); err == nil {
			t.Errorf("extra grouping label %q accepted", reserved)
		}
	}
}

// groupOf turns a push path, /metrics/job/J/k/v..., into "job=J k=v ..."
// sorted (the client writes the labels in map order).
func groupOf(path string) string {
	parts := strings.Split(strings.TrimPrefix(path, "/metrics/"), "/")
	var kv []string
	for i := 0; i+1 < len(parts); i += 2 {
		kv = append(kv, parts[i]+"="+parts[i+1])
	}
	sort.Strings(kv)
	return strings.Join(kv, " ")
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
