package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marketplace-etl/marketplace-etl/internal/etl"
	"github.com/marketplace-etl/marketplace-etl/internal/marketplace"
	"github.com/marketplace-etl/marketplace-etl/internal/purchases"
	"github.com/marketplace-etl/marketplace-etl/internal/store"
)

// reports collects what the pipeline reported, day by day.
type reports struct {
	mu   sync.Mutex
	days []etl.DayReport
}

func (r *reports) DayFinished(rep etl.DayReport) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.days = append(r.days, rep)
}
func (r *reports) MartsRefreshed(time.Duration, error) {}

func (r *reports) of(date string) etl.DayReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.days {
		if d.Date.Format(time.DateOnly) == date {
			return d
		}
	}
	return etl.DayReport{}
}

type fixture struct {
	p   *Pipeline
	api *fakeSource
	db  *fakeStore
	j   *journal
	rep *reports
}

// newFixture is a pipeline on the in-memory API and store, retrying twice
// with millisecond backoff.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	j := &journal{}
	f := &fixture{api: newFakeSource(j), db: newFakeStore(j), j: j, rep: &reports{}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.p = &Pipeline{Store: f.db, API: f.api, Log: log, Recorder: f.rep, Progress: Progress{Log: log},
		Settings: Settings{MaxRejectRatio: 0.05, Retries: 2, Backoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}}
	return f
}

func (f *fixture) run(t *testing.T, plan Plan) (etl.Result, error) {
	t.Helper()
	return f.p.Execute(context.Background(), 1, plan)
}

func date(t *testing.T, s string) time.Time {
	t.Helper()
	d, err := ParseDate(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func days(t *testing.T, from, to string) []time.Time { return Days(date(t, from), date(t, to)) }

func transient(status int, retryAfter time.Duration) error {
	return &marketplace.TransientError{Op: "GET /data", Status: status, RetryAfter: retryAfter, Err: errors.New("server busy")}
}

func TestLoadsEachDayOnceAndSkipsDoneDays(t *testing.T) {
	f := newFixture(t)
	for _, d := range []string{"2023-01-01", "2023-01-02", "2023-01-03"} {
		f.api.set(d, answer{lines: lines(d, 10)})
	}
	if _, err := f.run(t, Plan{Days: days(t, "2023-01-01", "2023-01-02")}); err != nil {
		t.Fatal(err)
	}
	res, err := f.run(t, Plan{Days: days(t, "2023-01-01", "2023-01-03")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Skipped != 2 || res.Totals != (etl.RunTotals{DaysLoaded: 1, RowsLoaded: 10}) {
		t.Fatalf("second pass: skipped %d, totals %+v; want 2 skipped, 1 day of 10 rows loaded", res.Skipped, res.Totals)
	}
	for _, d := range []string{"2023-01-01", "2023-01-02", "2023-01-03"} {
		if n := f.api.requests(d); n != 1 {
			t.Errorf("%s requested %d times, want once", d, n)
		}
		if got := f.db.day(d); got.state.Status != store.StatusLoaded || got.lines != 10 {
			t.Errorf("%s stored as %+v, want loaded with 10 lines", d, got)
		}
	}
}

func TestRetriesTransientFaults(t *testing.T) {
	f := newFixture(t)
	f.api.set("2023-01-01", answer{err: transient(503, 0)}, answer{err: transient(429, 0)}, answer{lines: lines("2023-01-01", 5)})
	res, err := f.run(t, Plan{Days: days(t, "2023-01-01", "2023-01-01")})
	if err != nil {
		t.Fatal(err)
	}
	rep := f.rep.of("2023-01-01")
	if rep.Outcome != etl.Loaded || rep.Attempts != 3 || rep.Err != nil || res.Totals.DaysLoaded != 1 {
		t.Fatalf("report %+v, totals %+v; want loaded on the third attempt", rep, res.Totals)
	}
}

func TestGivesUpAfterTheRetriesAndGoesOn(t *testing.T) {
	f := newFixture(t)
	f.api.set("2023-01-01", answer{err: transient(502, 0)})
	f.api.set("2023-01-02", answer{lines: lines("2023-01-02", 3)})
	res, err := f.run(t, Plan{Days: days(t, "2023-01-01", "2023-01-02")})
	if err != nil {
		t.Fatalf("a failed day must not stop the pass: %v", err)
	}
	if n := f.api.requests("2023-01-01"); n != 3 {
		t.Errorf("2023-01-01 requested %d times, want 1 + 2 retries", n)
	}
	if len(res.Failed) != 1 || res.Failed[0].Outcome != etl.Failed || !marketplace.IsTransient(res.Failed[0].Err) || res.RejectFailure {
		t.Fatalf("failed days %+v, reject failure %v; want 2023-01-01 failed on the API", res.Failed, res.RejectFailure)
	}
	if d := f.db.day("2023-01-01"); d.state.Status != store.StatusFailed || !strings.Contains(d.lastErr, "HTTP 502") {
		t.Errorf("2023-01-01 stored as %+v, want failed with the API's error", d)
	}
	if res.Totals.DaysLoaded != 1 || res.Totals.DaysFailed != 1 {
		t.Errorf("totals %+v, want 1 loaded and 1 failed", res.Totals)
	}
}

func TestPermanentAPIErrorIsNotRetried(t *testing.T) {
	f := newFixture(t)
	f.api.set("2023-01-01", answer{err: errors.New("GET /data: HTTP 404: not found")})
	res, _ := f.run(t, Plan{Days: days(t, "2023-01-01", "2023-01-01")})
	if n := f.api.requests("2023-01-01"); n != 1 || len(res.Failed) != 1 {
		t.Fatalf("requested %d times, failed %d; want one request and a failed day", n, len(res.Failed))
	}
}

func TestBackoffGrowsWithJitterAndHonoursRetryAfter(t *testing.T) {
	p := &Pipeline{Settings: Settings{Backoff: 100 * time.Millisecond, MaxBackoff: time.Second}}
	for i := 0; i < 200; i++ {
		for attempt, step := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 70: time.Second} {
			if d := p.backoff(attempt, 0); d < step/2 || d > step {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", attempt, d, step/2, step)
			}
		}
		if d := p.backoff(1, 700*time.Millisecond); d != 700*time.Millisecond {
			t.Fatalf("backoff with Retry-After 700ms = %v, want 700ms", d)
		}
		if d := p.backoff(1, time.Hour); d != time.Second {
			t.Fatalf("backoff with Retry-After 1h = %v, want the maximum 1s", d)
		}
		if d := p.backoff(4, time.Millisecond); d < 400*time.Millisecond {
			t.Fatalf("backoff(4) with a short Retry-After = %v, want the exponential step", d)
		}
	}
}

func TestRetryWaitsWhatTheServerAsked(t *testing.T) {
	f := newFixture(t)
	f.p.Settings.MaxBackoff = time.Minute
	f.api.set("2023-01-01", answer{err: transient(429, 50*time.Millisecond)}, answer{lines: lines("2023-01-01", 1)})
	start := time.Now()
	if _, err := f.run(t, Plan{Days: days(t, "2023-01-01", "2023-01-01")}); err != nil {
		t.Fatal(err)
	}
	// A lower bound only: the pass waited at least the Retry-After.
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Fatalf("retried after %v, before the 50ms the server asked for", waited)
	}
}

func TestPrefetchNeverOverlapsRequests(t *testing.T) {
	f := newFixture(t)
	for _, d := range days(t, "2023-01-01", "2023-01-06") {
		s := d.Format(time.DateOnly)
		f.api.set(s, answer{lines: lines(s, 20)})
	}
	// A retried day between prefetched ones: the retry drops the prefetch.
	f.api.set("2023-01-03", answer{err: transient(503, 0)}, answer{lines: lines("2023-01-03", 20)})
	f.api.set("2023-01-04", answer{lines: nil}, answer{lines: lines("2023-01-04", 20)})
	// The next day is requested once the current body is in, while the
	// current day is still being committed: that is the point of
	// prefetching. The commit of 2023-01-01 waits for it (bounded, so that
	// a pipeline that does not prefetch fails instead of hanging).
	prefetched := false
	f.db.beforeCommit = func(date string) {
		if date == "2023-01-01" {
			prefetched = f.api.waitOpened("2023-01-02", 10*time.Second)
		}
	}
	res, err := f.run(t, Plan{Days: days(t, "2023-01-01", "2023-01-06")})
	if err != nil || res.Totals.DaysLoaded != 6 {
		t.Fatalf("err %v, totals %+v; want 6 days loaded", err, res.Totals)
	}
	if f.api.maxInFlight != 1 {
		t.Fatalf("%d requests were in flight at once, want 1; journal %v", f.api.maxInFlight, f.j.list())
	}
	if !prefetched {
		t.Fatalf("2023-01-02 was not requested while 2023-01-01 was committed: %v", f.j.list())
	}
}

func TestRejectRatio(t *testing.T) {
	f := newFixture(t)
	ok := append(lines("2023-01-01", 99), rejected("2023-01-01")) // 1 % rejected
	bad := append(lines("2023-01-02", 9), rejected("2023-01-02")) // 10 % rejected
	f.api.set("2023-01-01", answer{lines: ok})
	f.api.set("2023-01-02", answer{lines: bad})
	res, err := f.run(t, Plan{Days: days(t, "2023-01-01", "2023-01-02")})
	if err != nil {
		t.Fatal(err)
	}
	if d := f.db.day("2023-01-01"); d.state.Status != store.StatusLoaded || d.lines != 99 || d.rejects != 1 {
		t.Errorf("2023-01-01 (1 %% rejected) stored as %+v, want loaded with 99 lines and 1 reject", d)
	}
	var rr *RejectRatioError
	if !res.RejectFailure || len(res.Failed) != 1 || !errors.As(res.Failed[0].Err, &rr) || rr.Rejected != 1 || rr.Fetched != 10 {
		t.Fatalf("failed %+v; want 2023-01-02 refused for its reject ratio", res.Failed)
	}
	if n := f.api.requests("2023-01-02"); n != 1 {
		t.Errorf("a refused day was requested %d times; retrying cannot fix the data", n)
	}
	if d := f.db.day("2023-01-02"); d.state.Status != store.StatusFailed || d.lines != 0 || d.rejects != 1 || !strings.Contains(d.lastErr, "ETL_MAX_REJECT_RATIO") {
		t.Errorf("2023-01-02 stored as %+v, want failed with its reject kept and no lines", d)
	}
	if res.Totals.RowsLoaded != 99 || res.Totals.RowsRejected != 2 {
		t.Errorf("totals %+v, want 99 rows loaded and 2 rejected", res.Totals)
	}
}

// TestOverLongLineIsRejectedAndTheDayLoads: an element the client could
// only keep the start of is rejected as too_long; the rest of the day loads.
func TestOverLongLineIsRejectedAndTheDayLoads(t *testing.T) {
	f := newFixture(t)
	f.api.set("2023-01-01", answer{lines: append(lines("2023-01-01", 59), longLine+`{"padding": "xxx`)})
	res, err := f.run(t, Plan{Days: days(t, "2023-01-01", "2023-01-01")})
	if err != nil || len(res.Failed) != 0 {
		t.Fatalf("err %v, failed %+v", err, res.Failed)
	}
	if d := f.db.day("2023-01-01"); d.state.Status != store.StatusLoaded || d.lines != 59 || d.rejects != 1 {
		t.Errorf("stored as %+v, want loaded with 59 lines and 1 reject", d)
	}
	if got := f.rep.of("2023-01-01").Summary.ByReason; got[purchases.TooLong] != 1 || len(got) != 1 {
		t.Errorf("rejected by reason %v, want one too_long", got)
	}
}

func TestRefusedReloadKeepsTheGoodLines(t *testing.T) {
	f := newFixture(t)
	f.api.set("2023-01-01", answer{lines: lines("2023-01-01", 10)})
	if _, err := f.run(t, Plan{Days: days(t, "2023-01-01", "2023-01-01")}); err != nil {
		t.Fatal(err)
	}
	f.api.set("2023-01-01", answer{lines: append(lines("2023-01-01", 5), rejected("2023-01-01"))})
	res, _ := f.run(t, Plan{Days: days(t, "2023-01-01", "2023-01-01"), Force: true})
	if !res.RejectFailure {
		t.Fatalf("result %+v, want a reject-ratio failure", res)
	}
	if d := f.db.day("2023-01-01"); d.lines != 10 {
		t.Errorf("the refused reload left %d lines, want the 10 good ones kept", d.lines)
	}
}

func TestEmptyDayIsRetriedThenFails(t *testing.T) {
	f := newFixture(t)
	f.api.set("2023-01-01", answer{lines: []string{}}, answer{lines: lines("2023-01-01", 4)})
	f.api.set("2023-01-02", answer{lines: []string{}})
	res, err := f.run(t, Plan{Days: days(t, "2023-01-01", "2023-01-02")})
	if err != nil {
		t.Fatal(err)
	}
	if rep := f.rep.of("2023-01-01"); rep.Outcome != etl.Loaded || rep.Attempts != 2 {
		t.Errorf("2023-01-01 (empty once) reported %+v, want loaded on the second attempt", rep)
	}
	if rep := f.rep.of("2023-01-02"); rep.Outcome != etl.Failed || !errors.Is(rep.Err, errEmptyDay) || rep.Attempts != 3 {
		t.Errorf("2023-01-02 (always empty) reported %+v, want failed as empty after 3 attempts", rep)
	}
	if len(res.Failed) != 1 || res.RejectFailure {
		t.Errorf("result %+v, want one failed day and no reject failure", res)
	}
}

func TestNoData(t *testing.T) {
	f := newFixture(t)
	res, err := f.run(t, Plan{Days: days(t, "2021-12-30", "2021-12-31")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Totals != (etl.RunTotals{DaysNoData: 2}) {
		t.Fatalf("totals %+v, want 2 days without data", res.Totals)
	}
	if d := f.db.day("2021-12-31"); d.state.Status != store.StatusNoData {
		t.Errorf("2021-12-31 stored as %+v, want no_data", d)
	}
}

func TestNoDataOnALoadedDayKeepsItsLines(t *testing.T) {
	f := newFixture(t)
	f.api.set("2023-01-01", answer{lines: lines("2023-01-01", 10)})
	if _, err := f.run(t, Plan{Days: days(t, "2023-01-01", "2023-01-01")}); err != nil {
		t.Fatal(err)
	}
	f.api.set("2023-01-01") // the API now answers with its no-data sentence
	d0 := date(t, "2023-01-01")
	res, err := f.run(t, Plan{Days: []time.Time{d0}, Always: map[time.Time]bool{d0: true}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Totals != (etl.RunTotals{DaysUnchanged: 1}) {
		t.Errorf("totals %+v, want the day unchanged", res.Totals)
	}
	if d := f.db.day("2023-01-01"); d.state.Status != store.StatusLoaded || d.lines != 10 {
		t.Errorf("stored as %+v, want still loaded with its 10 lines", d)
	}
}

func TestUnchangedContentIsLeftAlone(t *testing.T) {
	f := newFixture(t)
	f.api.set("2023-01-01", answer{lines: lines("2023-01-01", 10)})
	for _, force := range []bool{false, true} {
		if _, err := f.run(t, Plan{Days: days(t, "2023-01-01", "2023-01-01"), Force: force}); err != nil {
			t.Fatal(err)
		}
	}
	if rep := f.rep.of("2023-01-01"); len(f.rep.days) != 2 || f.rep.days[1].Outcome != etl.Unchanged {
		t.Fatalf("reports %+v (first %+v), want the forced re-fetch unchanged", f.rep.days, rep)
	}
}

func TestDayLoadedMeanwhileIsSkipped(t *testing.T) {
	f := newFixture(t)
	f.api.set("2023-01-01", answer{lines: lines("2023-01-01", 10)})
	if _, err := f.run(t, Plan{Days: days(t, "2023-01-01", "2023-01-01")}); err != nil {
		t.Fatal(err)
	}
	f.db.hideStates = true // planned as missing, loaded by the time its lock is held
	res, err := f.run(t, Plan{Days: days(t, "2023-01-01", "2023-01-01")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Skipped != 1 || res.Totals != (etl.RunTotals{}) || f.api.requests("2023-01-01") != 1 {
		t.Fatalf("skipped %d, totals %+v, %d requests; want skipped without a request", res.Skipped, res.Totals, f.api.requests("2023-01-01"))
	}
	if rep := f.rep.days[len(f.rep.days)-1]; rep.Outcome != etl.Skipped {
		t.Fatalf("reported %v, want skipped", rep.Outcome)
	}
}

func TestLostDatabaseStopsThePass(t *testing.T) {
	f := newFixture(t)
	for _, d := range days(t, "2023-01-01", "2023-01-04") {
		s := d.Format(time.DateOnly)
		f.api.set(s, answer{lines: lines(s, 3)})
	}
	f.db.downAfter = "2023-01-02"
	res, err := f.run(t, Plan{Days: days(t, "2023-01-01", "2023-01-04")})
	if !store.IsUnavailable(err) {
		t.Fatalf("pass error %v, want the lost database", err)
	}
	if res.Totals.DaysLoaded != 2 || res.Totals.DaysFailed != 1 {
		t.Errorf("totals %+v, want 2 loaded and 1 failed before stopping", res.Totals)
	}
	if rep := f.rep.of("2023-01-03"); rep.Attempts != 3 {
		t.Errorf("2023-01-03 attempted %d times, want the database retried like the API", rep.Attempts)
	}
	if n := f.api.requests("2023-01-04"); n > 1 {
		// At most the prefetch of 2023-01-04 may have gone out.
		t.Errorf("2023-01-04 requested %d times after the database was lost", n)
	}
	if rep := f.rep.of("2023-01-04"); rep.Outcome != 0 {
		t.Errorf("2023-01-04 reported %+v, want the pass stopped before it", rep)
	}
}

func TestInterruptedPassStops(t *testing.T) {
	f := newFixture(t)
	f.api.set("2023-01-01", answer{lines: lines("2023-01-01", 3)})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := f.p.Execute(ctx, 1, Plan{Days: days(t, "2023-01-01", "2023-01-02")})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "interrupted before 2023-01-01") {
		t.Fatalf("err %v, want interrupted before the first day", err)
	}
	if res.Totals != (etl.RunTotals{}) || f.api.requests("2023-01-01") != 0 {
		t.Fatalf("totals %+v; want nothing done", res.Totals)
	}
}

// holdCommitUntilBegun makes committing's commit wait until next's
// transaction has begun (failing the test after 5 s), then run then.
func (f *fixture) holdCommitUntilBegun(t *testing.T, committing, next string, then func()) {
	begun := make(chan struct{})
	f.db.onBegin = func(date string) {
		if date == next {
			close(begun)
		}
	}
	f.db.beforeCommit = func(date string) {
		if date != committing {
			return
		}
		select {
		case <-begun:
		case <-time.After(5 * time.Second):
			t.Errorf("%s did not begin while %s was committing", next, committing)
		}
		then()
	}
}

// TestNextDayStartsWhileADayCommits: once a day's lines are read, the next
// day begins while the first one still commits (two days in flight); both
// are loaded and reported in order.
func TestNextDayStartsWhileADayCommits(t *testing.T) {
	f := newFixture(t)
	for _, d := range []string{"2023-01-01", "2023-01-02"} {
		f.api.set(d, answer{lines: lines(d, 3)})
	}
	f.holdCommitUntilBegun(t, "2023-01-01", "2023-01-02", func() {})
	res, err := f.run(t, Plan{Days: days(t, "2023-01-01", "2023-01-02")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Totals.DaysLoaded != 2 {
		t.Fatalf("totals %+v, want 2 days loaded", res.Totals)
	}
	if len(f.rep.days) != 2 || f.rep.days[0].Date.Format(time.DateOnly) != "2023-01-01" || f.rep.days[1].Date.Format(time.DateOnly) != "2023-01-02" {
		t.Fatalf("reported %+v, want 2023-01-01 then 2023-01-02", f.rep.days)
	}
}

// TestCommitFailureRetriedWhileTheNextDayIsInFlight: a day whose commit
// fails after the next day has begun is retried, and reported before it.
func TestCommitFailureRetriedWhileTheNextDayIsInFlight(t *testing.T) {
	f := newFixture(t)
	for _, d := range []string{"2023-01-01", "2023-01-02", "2023-01-03"} {
		f.api.set(d, answer{lines: lines(d, 3)})
	}
	f.db.commitFails = map[string]int{"2023-01-01": 1, "2023-01-02": 1}
	res, err := f.run(t, Plan{Days: days(t, "2023-01-01", "2023-01-03")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Totals.DaysLoaded != 3 || res.Totals.DaysFailed != 0 {
		t.Fatalf("totals %+v, want 3 days loaded", res.Totals)
	}
	var order []string
	for _, rep := range f.rep.days {
		order = append(order, fmt.Sprintf("%s/%d", rep.Date.Format(time.DateOnly), rep.Attempts))
	}
	if got := strings.Join(order, " "); got != "2023-01-01/2 2023-01-02/2 2023-01-03/1" {
		t.Fatalf("reported %s, want every day once, in order, the first two after a retry", got)
	}
	if f.api.maxInFlight > 1 {
		t.Fatalf("%d requests were in flight at once, want 1", f.api.maxInFlight)
	}
	for _, d := range []string{"2023-01-01", "2023-01-02", "2023-01-03"} {
		if got := f.db.day(d); got.lines != 3 {
			t.Fatalf("%s holds %d lines, want 3", d, got.lines)
		}
	}
}

// TestDayInFlightWhenThePassStopsIsAbandoned: the database goes away while
// a day commits and the next one is already in flight; the pass stops
// after the first day's retries, and the day in flight, which failed the
// same way, is neither retried nor reported (the next pass loads it).
func TestDayInFlightWhenThePassStopsIsAbandoned(t *testing.T) {
	f := newFixture(t)
	for _, d := range []string{"2023-01-01", "2023-01-02", "2023-01-03"} {
		f.api.set(d, answer{lines: lines(d, 3)})
	}
	f.holdCommitUntilBegun(t, "2023-01-01", "2023-01-02", func() { f.db.down.Store(true) })
	f.db.commitFails = map[string]int{"2023-01-01": 1, "2023-01-02": 1}
	res, err := f.run(t, Plan{Days: days(t, "2023-01-01", "2023-01-03")})
	if !store.IsUnavailable(err) {
		t.Fatalf("pass error %v, want the lost database", err)
	}
	if len(f.rep.days) != 1 || f.rep.days[0].Date.Format(time.DateOnly) != "2023-01-01" || f.rep.days[0].Attempts != 3 {
		t.Fatalf("reported %+v, want only 2023-01-01, after its retries", f.rep.days)
	}
	if res.Totals.DaysFailed != 1 || res.Totals.DaysLoaded != 0 {
		t.Fatalf("totals %+v, want 1 failed", res.Totals)
	}
	if got := f.db.day("2023-01-02"); got.lines != 0 {
		t.Fatalf("2023-01-02 holds %d lines, want none", got.lines)
	}
	if n := f.api.requests("2023-01-03"); n > 1 {
		t.Fatalf("2023-01-03 requested %d times after the database was lost", n)
	}
}
