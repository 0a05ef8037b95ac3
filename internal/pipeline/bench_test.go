package pipeline

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/marketplace-etl/marketplace-etl/internal/etl"
	"github.com/marketplace-etl/marketplace-etl/internal/marketplace"
	"github.com/marketplace-etl/marketplace-etl/internal/pgtest"
	"github.com/marketplace-etl/marketplace-etl/internal/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

type nopRecorder struct{}

func (nopRecorder) DayFinished(etl.DayReport)           {}
func (nopRecorder) MartsRefreshed(time.Duration, error) {}

// newTestPipeline wires a pipeline to a fresh database and a simulator.
func newTestPipeline(tb testing.TB, sim marketplace.SimConfig) *Pipeline {
	tb.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, pgtest.NewDatabase(tb), store.Options{StatementTimeout: time.Hour, LockTimeout: time.Minute, Location: time.UTC}, log)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(marketplace.NewSimulator(sim))
	tb.Cleanup(srv.Close)
	api, err := marketplace.NewClient(srv.URL+"/data", marketplace.Limits{Timeout: time.Minute}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return &Pipeline{Store: DBStore(st), API: APISource(api), Log: log, Recorder: nopRecorder{}, Progress: Progress{Log: log},
		Settings: Settings{MaxRejectRatio: 0.1, Retries: 2, Backoff: time.Millisecond, MaxBackoff: time.Millisecond}}
}

// BenchmarkBackfill measures the end-to-end pass (HTTP, decode, validate,
// COPY, bookkeeping) in lines per second, one day per iteration, at the
// real API's day size and at a large one: the gap between the two is the
// fixed cost of a day. The simulator runs in-process, so its CPU is part of
// the figures (cpu-ns/line is this process's CPU time, PostgreSQL's not
// included, and moves less with the machine's other load than the wall
// time); `make bench` measures the binary.
func BenchmarkBackfill(b *testing.B) {
	for _, rows := range []int{5_500, 50_000} {
		b.Run(fmt.Sprintf("lines=%d", rows), func(b *testing.B) {
			p := newTestPipeline(b, marketplace.SimConfig{RowsPerDay: rows})
			start := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
			days := make([]time.Time, b.N)
			for i := range days {
				days[i] = start.AddDate(0, 0, i)
			}
			b.ResetTimer()
			cpu0 := processCPU(b)
			// One pass over every day, as a backfill runs: the next day is
			// prefetched while the current one loads.
			res, err := p.Execute(context.Background(), 1, Plan{Days: days})
			if err != nil {
				b.Fatal(err)
			}
			if len(res.Failed) > 0 {
				b.Fatalf("%d days failed: %v", len(res.Failed), res.Failed[0].Err)
			}
			b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "lines/s")
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(rows*b.N), "cpu-ns/line")
		})
	}
}

// processCPU is the CPU time this process has used, all threads, in ns.
func processCPU(tb testing.TB) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
