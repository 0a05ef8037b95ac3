// Package metrics pushes the metrics of one ETL pass to a Prometheus
// Pushgateway.
//
// A CronJob pod lives for one pass, so nothing could scrape it: the pass
// pushes instead, following the Prometheus guidance for batch jobs. The
// grouping key is constant per kind of invocation (job, mode, the shard of a
// backfill, and the operator's extra labels), never a date or a pod name,
// which would leave a new group behind every night. Every push uses Add
// (HTTP POST), which replaces only the metric names it carries: a failed
// pass leaves marketplace_etl_last_success_timestamp_seconds out of its push,
// so the last success stays visible.
//
// A pass pushes three times:
//   - at the start: the start and progress timestamps, so that a pass that
//     never ends (killed, hung) shows as started after its last end;
//   - while it runs, at most every ProgressInterval: the progress timestamp;
//   - at the end: everything else.
//
// A backfill shard that succeeds deletes its group instead of its end push,
// and shard 0 deletes the groups of shard indexes its backfill does not
// have (cleanup.go): nothing of a finished backfill keeps an alert firing.
//
// Pushing never fails the pass: a push that fails is logged as a warning.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"

	"github.com/marketplace-etl/marketplace-etl/internal/etl"
	"github.com/marketplace-etl/marketplace-etl/internal/purchases"
	"github.com/marketplace-etl/marketplace-etl/internal/redact"
)

// Status classes as label values of marketplace_etl_last_run_api_requests.
// "error" is a request that got no response at all.
var statusClasses = []string{"2xx", "4xx", "5xx", "error"}

// APILatencyBuckets fit a request that streams a whole business day: from a
// quick error answer to minutes for a large day on a slow API.
var APILatencyBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// DayLoadBuckets fit one day's fetch, validation and load, retries included.
var DayLoadBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800}

// Options configure a Recorder.
type Options struct {
	URL      string // Pushgateway base URL
	Job      string
	Username string // basic auth, when not empty
	Password string
	Timeout  time.Duration     // bound of one push
	Grouping map[string]string // extra grouping labels, e.g. env=prod

	Run     etl.Run
	Version string
	// ExitCode maps the pass's error to the process exit code (nil is 0).
	ExitCode func(error) int
	Log      *slog.Logger
	// Shutdown, when done, cuts every request to the Pushgateway short,
	// in flight or later: the budget left after SIGTERM
	// (ETL_SHUTDOWN_GRACE), which PUSHGATEWAY_TIMEOUT must not outlast.
	Shutdown context.Context
	// ProgressInterval is the least time between two progress pushes
	// (default one minute); negative disables them.
	ProgressInterval time.Duration
}

// Recorder collects the metrics of one pass and pushes them. It implements
// the CLI's recorder: DayFinished, MartsRefreshed, ObserveRequest and Finish.
type Recorder struct {
	opts     Options
	grouping map[string]string
	client   *http.Client
	log      *slog.Logger

	start, end, progress, success, duration prometheus.Gauge
	runSuccess, exitCode                    prometheus.Gauge
	fetched, loaded, rejected               prometheus.Gauge
	rejectedBy                              *prometheus.GaugeVec
	days                                    *prometheus.GaugeVec
	skipped                                 prometheus.Gauge
	requests                                *prometheus.GaugeVec
	latency                                 prometheus.Histogram
	dayLoad                                 prometheus.Histogram
	dbLoad                                  prometheus.Histogram
	newest                                  prometheus.Gauge
	marts, martsRefreshed                   prometheus.Gauge
	buildInfo                               *prometheus.GaugeVec

	mu           sync.Mutex
	lastProgress time.Time
	progressOff  bool // a push failed: do not slow the pass down further
	martsRan     bool
	martsOK      bool
}

// GroupingKey is the grouping key of a run's metrics besides the job: the
// mode, the shard of a backfill (so parallel pods do not overwrite each
// other), and the extra labels.
func GroupingKey(run etl.Run, extra map[string]string) (map[string]string, error) {
	g := map[string]string{"mode": run.Mode}
	if run.Mode == "backfill" {
		g["shard"] = strconv.Itoa(run.ShardIndex)
	}
	for k, v := range extra {
		if k == "job" || k == "instance" || g[k] != "" || k == "shard" || k == "mode" {
			return nil, fmt.Errorf("grouping label %q is set by the ETL itself: expected other label names in PUSHGATEWAY_GROUPING_LABELS", k)
		}
		g[k] = v
	}
	return g, nil
}

// New makes the recorder and pushes the start of the pass.
func New(o Options) (*Recorder, error) {
	if o.URL == "" || o.Job == "" {
		return nil, fmt.Errorf("metrics: a Pushgateway URL and a job name are required")
	}
	g, err := GroupingKey(o.Run, o.Grouping)
	if err != nil {
		return nil, err
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.ProgressInterval == 0 {
		o.ProgressInterval = time.Minute
	}
	if o.ExitCode == nil {
		o.ExitCode = func(err error) int {
			if err != nil {
				return 1
			}
			return 0
		}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	r := &Recorder{
		opts: o, grouping: g, log: o.Log,
		client: &http.Client{Timeout: o.Timeout, Transport: budgetTransport{http.DefaultTransport, o.Shutdown}},

		start:    gauge("marketplace_etl_last_run_start_timestamp_seconds", "Unix time the last pass started."),
		end:      gauge("marketplace_etl_last_run_end_timestamp_seconds", "Unix time the last pass ended, successfully or not."),
		progress: gauge("marketplace_etl_last_run_progress_timestamp_seconds", "Unix time the last pass started, finished a day, or ended."),
		success:  gauge("marketplace_etl_last_success_timestamp_seconds", "Unix time the last successful pass ended (exit code 0)."),
		duration: gauge("marketplace_etl_last_run_duration_seconds", "Wall-clock duration of the last pass."),

		runSuccess: gauge("marketplace_etl_last_run_success", "1 if the last pass succeeded (exit code 0), else 0."),
		exitCode:   gauge("marketplace_etl_last_run_exit_code", "Exit code of the last pass: 0 ok, 1 retryable, 2 usage or configuration, 3 data contract."),

		fetched:  gauge("marketplace_etl_last_run_rows_fetched", "Purchase lines received from the API in the last pass, every day and attempt that got to validation."),
		loaded:   gauge("marketplace_etl_last_run_rows_loaded", "Purchase lines written to marketplace.purchases in the last pass."),
		rejected: gauge("marketplace_etl_last_run_rows_rejected", "Purchase lines of rows_fetched that failed validation in the last pass."),
		rejectedBy: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "marketplace_etl_last_run_rows_rejected_by_reason",
			Help: "Purchase lines that failed validation in the last pass, by reason code."}, []string{"reason"}),
		days: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "marketplace_etl_last_run_dates",
			Help: "Business days processed by the last pass, by outcome."}, []string{"outcome"}),
		skipped: gauge("marketplace_etl_last_run_dates_skipped", "Business days of the last pass's plan skipped because they were already loaded."),
		requests: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "marketplace_etl_last_run_api_requests",
			Help: "HTTP requests to the marketplace API in the last pass, by status class (error: no response)."}, []string{"class"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "marketplace_etl_last_run_api_request_duration_seconds",
			Help: "Duration of the last pass's API requests, body streamed to its end.", Buckets: APILatencyBuckets}),
		dayLoad: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "marketplace_etl_last_run_day_load_duration_seconds",
			Help: "Time to fetch, validate and load one business day into PostgreSQL in the last pass, retries included.", Buckets: DayLoadBuckets}),
		dbLoad: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "marketplace_etl_last_run_db_load_duration_seconds",
			Help: "Time one business day's load spent in PostgreSQL (COPY, replacing the day, bookkeeping, commit) in the last pass.", Buckets: DayLoadBuckets}),
		newest: gauge("marketplace_etl_newest_loaded_date_timestamp_seconds", "Unix time of the start (00:00 UTC) of the newest business day fully loaded."),
		marts:  gauge("marketplace_etl_last_run_marts_refresh_duration_seconds", "Duration of the last pass's refresh of the marts."),
		martsRefreshed: gauge("marketplace_etl_marts_refreshed_timestamp_seconds",
			"Unix time a pass last brought the marts up to date successfully."),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "marketplace_etl_build_info",
			Help: "Always 1; the version label is the version of the binary of the last pass."}, []string{"version"}),
	}
	// Every label value exists from the start, at 0, so that rules and
	// dashboards see a 0 rather than no series.
	for _, reason := range purchases.Reasons {
		r.rejectedBy.WithLabelValues(string(reason))
	}
	for _, outcome := range etl.Outcomes {
		r.days.WithLabelValues(outcome.String())
	}
	for _, c := range statusClasses {
		r.requests.WithLabelValues(c)
	}
	version := o.Version
	if version == "" {
		version = "unknown"
	}
	r.buildInfo.WithLabelValues(version).Set(1)

	now := time.Now()
	r.start.Set(float64(now.UnixNano()) / 1e9)
	r.progress.Set(float64(now.UnixNano()) / 1e9)
	r.lastProgress = now
	if err := r.push("start", r.start, r.progress); err != nil {
		r.progressOff = true
	}
	if o.Run.Mode == "backfill" && o.Run.ShardIndex == 0 && o.Run.ShardCount > 0 && !r.progressOff {
		_ = r.dropSupersededShards(o.Run.ShardCount)
	}
	return r, nil
}

func gauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
}

// ObserveRequest counts one API request and its duration; code is 0 when no
// response arrived.
func (r *Recorder) ObserveRequest(code int, d time.Duration) {
	r.requests.WithLabelValues(statusClass(code)).Inc()
	r.latency.Observe(d.Seconds())
}

func statusClass(code int) string {
	if code < 100 || code > 599 {
		return "error"
	}
	return strconv.Itoa(code/100) + "xx"
}

// DayFinished adds up one day and pushes the progress now and then.
func (r *Recorder) DayFinished(rep etl.DayReport) {
	r.fetched.Add(float64(rep.Summary.Fetched))
	r.rejected.Add(float64(rep.Summary.Rejected))
	for reason, n := range rep.Summary.ByReason {
		r.rejectedBy.WithLabelValues(string(reason)).Add(float64(n))
	}
	if rep.Outcome != etl.Skipped { // loaded meanwhile by another process: nothing was loaded
		r.dayLoad.Observe(rep.Duration.Seconds())
		if rep.Summary.DBTime > 0 {
			r.dbLoad.Observe(rep.Summary.DBTime.Seconds())
		}
	}

	r.mu.Lock()
	now := time.Now()
	due := !r.progressOff && r.opts.ProgressInterval > 0 && now.Sub(r.lastProgress) >= r.opts.ProgressInterval
	if due {
		r.lastProgress = now
	}
	r.mu.Unlock()
	r.progress.Set(float64(now.UnixNano()) / 1e9)
	if due {
		if err := r.push("progress", r.progress); err != nil {
			r.mu.Lock()
			r.progressOff = true
			r.mu.Unlock()
		}
	}
}

// MartsRefreshed records the refresh of the marts; err is the refresh's.
func (r *Recorder) MartsRefreshed(d time.Duration, err error) {
	r.mu.Lock()
	r.martsRan = true
	r.martsOK = err == nil
	r.mu.Unlock()
	r.marts.Set(d.Seconds())
	if err == nil {
		r.martsRefreshed.Set(float64(time.Now().UnixNano()) / 1e9)
	}
}

// Finish pushes the pass's metrics. err is the pass's error, nil on
// success. A failed push is logged and otherwise ignored.
func (r *Recorder) Finish(res etl.Result, err error, started time.Time) {
	now := time.Now()
	ts := float64(now.UnixNano()) / 1e9
	r.end.Set(ts)
	r.progress.Set(ts)
	r.duration.Set(now.Sub(started).Seconds())
	code := r.opts.ExitCode(err)
	if err == nil {
		code = 0
	}
	r.exitCode.Set(float64(code))
	ok := code == 0
	if ok {
		r.runSuccess.Set(1)
		r.success.Set(ts)
	} else {
		r.runSuccess.Set(0)
	}
	r.loaded.Set(float64(res.Totals.RowsLoaded))
	for _, o := range etl.Outcomes {
		r.days.WithLabelValues(o.String()).Set(float64(res.Totals.Days(o)))
	}
	r.skipped.Set(float64(res.Skipped))

	cs := []prometheus.Collector{r.start, r.end, r.progress, r.duration, r.runSuccess, r.exitCode,
		r.fetched, r.loaded, r.rejected, r.rejectedBy, r.days, r.skipped, r.requests, r.latency, r.dayLoad, r.dbLoad, r.buildInfo}
	if ok {
		// Only a success carries the success timestamp: Add replaces the
		// names it carries, so a failure keeps the previous success.
		cs = append(cs, r.success)
	}
	if !res.NewestLoaded.IsZero() {
		// Zero when the database could not be read: keep the last value.
		r.newest.Set(float64(res.NewestLoaded.Unix()))
		cs = append(cs, r.newest)
	}
	r.mu.Lock()
	if r.martsRan {
		cs = append(cs, r.marts)
	}
	if r.martsOK {
		cs = append(cs, r.martsRefreshed)
	}
	r.mu.Unlock()
	if ok && r.opts.Run.Mode == "backfill" {
		// Nothing of a finished shard needs watching: leaving the group
		// would keep its last failure or start on the gateway for ever.
		_ = r.deleteGroup()
		return
	}
	_ = r.push("end", cs...)
}

// Gatherer returns a registry holding cs, for a push or a test.
func Gatherer(cs ...prometheus.Collector) (prometheus.Gatherer, error) {
	reg := prometheus.NewPedanticRegistry()
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering a metric: %w", err)
		}
	}
	return reg, nil
}

// push adds cs to the run's group, bounded by the timeout; a failure is
// logged as a warning and returned.
func (r *Recorder) push(what string, cs ...prometheus.Collector) error {
	reg, err := Gatherer(cs...)
	if err != nil {
		r.log.Warn("could not push the run metrics", "push", what, "err", err)
		return err
	}
	p := push.New(r.opts.URL, r.opts.Job).Gatherer(reg).Client(r.client)
	for k, v := range r.grouping {
		p = p.Grouping(k, v)
	}
	if r.opts.Username != "" {
		p = p.BasicAuth(r.opts.Username, r.opts.Password)
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.Timeout)
	defer cancel()
	started := time.Now()
	if err := p.AddContext(ctx); err != nil {
		err = fmt.Errorf("pushing the %s metrics to the Pushgateway at %s: %w", what, r.opts.URL, err)
		// The URL may hold credentials: redact them in what is logged.
		r.log.Warn("could not push the run metrics; the pass's outcome is unchanged", "push", what,
			"pushgateway", redact.String(r.opts.URL), "err", redactErr(err, r.opts), "duration", time.Since(started).Round(time.Millisecond))
		return err
	}
	r.log.Debug("pushed the run metrics", "push", what, "pushgateway", redact.String(r.opts.URL), "grouping", r.grouping)
	return nil
}

// budgetTransport ends a request when the shutdown budget is spent.
type budgetTransport struct {
	base   http.RoundTripper
	budget context.Context // nil: no budget
}

func (t budgetTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.budget == nil {
		return t.base.RoundTrip(req)
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	// Not stopped when the round trip returns: the body is read after it.
	context.AfterFunc(t.budget, func() { cancel(errors.New("the shutdown budget (ETL_SHUTDOWN_GRACE) is spent")) })
	return t.base.RoundTrip(req.WithContext(ctx))
}
