package pipeline

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/marketplace-etl/marketplace-etl/internal/etl"
	"github.com/marketplace-etl/marketplace-etl/internal/marketplace"
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
