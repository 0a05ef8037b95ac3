package pipeline

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
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
// COPY, bookkeeping) in lines per second. The simulator runs in-process,
// so its CPU is part of the figure; `make bench` measures the binary.
func BenchmarkBackfill(b *testing.B) {
	const rows = 50_000
	p := newTestPipeline(b, marketplace.SimConfig{RowsPerDay: rows})
	start := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		day := start.AddDate(0, 0, i)
		runID := int64(i + 1)
		if _, err := p.Execute(context.Background(), runID, Plan{Days: []time.Time{day}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "lines/s")
}
