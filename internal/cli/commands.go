package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/marketplace-etl/marketplace-etl/internal/config"
	"github.com/marketplace-etl/marketplace-etl/internal/marketplace"
	"github.com/marketplace-etl/marketplace-etl/internal/metabase"
	"github.com/marketplace-etl/marketplace-etl/internal/pipeline"
	"github.com/marketplace-etl/marketplace-etl/internal/redact"
)

func migrateCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	action := "up"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		action, args = args[0], args[1:]
	}
	fs := newFlagSet("migrate", "migrate [up|status]", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if action != "up" && action != "status" {
		return usagef("unknown migrate action %q: expected up or status", action)
	}
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()
	if action == "up" {
		if err := st.Migrate(ctx); err != nil {
			return err
		}
	}
	states, err := st.MigrationStatus(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTATE\tAPPLIED AT\tFILE")
	for _, m := range states {
		state, at := "pending", ""
		if m.Applied {
			state, at = "applied", m.AppliedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", m.Version, state, at, m.File)
	}
	return tw.Flush()
}

// checkCommand verifies everything a pass needs, reporting each check.
func checkCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check", "check", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ok   configuration (timezone %s, API %s)\n", cfg.TimezoneName, redact.String(cfg.APIURL))
	log := newLogger(io.Discard, cfg.LogLevel, cfg.LogFormat)
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Fprintln(stdout, "ok   database connection")
	cur, latest, err := st.SchemaVersions(ctx)
	if err != nil {
		return fmt.Errorf("reading the schema version: %w", err)
	}
	if cur != latest {
		return fmt.Errorf("database schema is at version %d, this binary needs %d: run 'marketplace-etl migrate up'", cur, latest)
	}
	fmt.Fprintf(stdout, "ok   schema version %d\n", cur)
	if err := st.CheckWritable(ctx); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "ok   database accepts writes")
	api, err := marketplace.NewClient(cfg.APIURL, apiLimits(cfg), nil)
	if err != nil {
		return err
	}
	probe := pipeline.Yesterday(time.Now(), cfg.Location).Format(time.DateOnly)
	day, err := api.Open(ctx, probe)
	if err != nil && !errors.Is(err, marketplace.ErrNoData) {
		return fmt.Errorf("API not usable: %w", err)
	}
	if day != nil {
		day.Close()
	}
	fmt.Fprintf(stdout, "ok   API answers for %s\n", probe)
	return nil
}

func mockapiCommand(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("mockapi", "mockapi [--listen :8080] [flags]", stderr)
	listen := fs.String("listen", ":8080", "address to serve on")
	var sc marketplace.SimConfig
	fs.Uint64Var(&sc.Seed, "seed", 0, "content seed: a different seed changes every day's content (an upstream correction)")
	fs.IntVar(&sc.RowsPerDay, "rows-per-day", 0, "fixed number of lines per day (default: 1,000..10,000 varying by date)")
	fs.Float64Var(&sc.ErrorRate, "error-rate", 0, "share of requests answered with HTTP 500..503")
	fs.Float64Var(&sc.RateLimitRate, "rate-limit-rate", 0, "share of requests answered 429 with Retry-After: 1")
	fs.Float64Var(&sc.ResetRate, "reset-rate", 0, "share of connections reset without an answer")
	fs.Float64Var(&sc.TruncateRate, "truncate-rate", 0, "share of bodies cut off mid-JSON")
	fs.Float64Var(&sc.HTMLErrorRate, "html-error-rate", 0, "share of requests answered 200 with a non-JSON error page")
	fs.Float64Var(&sc.EmptyRate, "empty-rate", 0, "share of requests answered [] for a day with data")
	fs.Float64Var(&sc.MixedDateRate, "mixed-date-rate", 0, "share of lines carrying another date")
	fs.Float64Var(&sc.NullRate, "null-rate", 0, "share of lines whose fields are all null")
	fs.DurationVar(&sc.Latency, "latency", 0, "added latency before every answer")
	fs.DurationVar(&sc.StallAfter, "stall", 0, "on truncated bodies, hang this long before cutting")
	fs.IntVar(&sc.FailFirst, "fail-first", 0, "the first N requests of each date fail with 503")
	fs.BoolVar(&sc.ParallelMix, "parallel-mix", false, "overlapping requests get lines of other dates, as reported of the real API")
	fs.IntVar(&sc.LongLineBytes, "long-line-bytes", 0, "hostile: an extra first element of this many bytes")
	fs.DurationVar(&sc.TrickleEvery, "trickle", 0, "hostile: send bodies one byte per this interval")
	fs.Int64Var(&sc.GzipBombBytes, "gzip-bomb-bytes", 0, "hostile: answer a gzip body expanding to this many bytes")
	fs.StringVar(&sc.TrailingData, "trailing-data", "", "hostile: text written after the closing bracket of the array")
	fs.StringVar(&sc.ErrorBody, "error-body", "", "hostile: the body of 5xx answers")
	failDates := fs.String("fail-dates", "", "comma-separated dates that always fail with 500")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	for name, v := range map[string]float64{"error-rate": sc.ErrorRate, "rate-limit-rate": sc.RateLimitRate, "reset-rate": sc.ResetRate,
		"truncate-rate": sc.TruncateRate, "html-error-rate": sc.HTMLErrorRate, "empty-rate": sc.EmptyRate,
		"mixed-date-rate": sc.MixedDateRate, "null-rate": sc.NullRate} {
		if v < 0 || v > 1 {
			return usagef("--%s=%v: expected a share from 0 to 1", name, v)
		}
	}
	if sc.RowsPerDay < 0 {
		return usagef("--rows-per-day=%d: expected 0 (varying) or a positive number", sc.RowsPerDay)
	}
	sc.FailDates = map[string]bool{}
	for _, d := range strings.Split(*failDates, ",") {
		if d = strings.TrimSpace(d); d != "" {
			if _, err := pipeline.ParseDate(d); err != nil {
				return usagef("--fail-dates: %v", err)
			}
			sc.FailDates[d] = true
		}
	}
	cfg, err := config.Load()
	level, format := "info", "auto"
	if err == nil {
		level, format = cfg.LogLevel, cfg.LogFormat
	}
	log := newLogger(stderr, level, format)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return usagef("--listen=%q: %v", *listen, err)
	}
	srv := &http.Server{Handler: marketplace.NewSimulator(sc), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	log.Info("Marketplace API simulator serving", "addr", ln.Addr().String(), "endpoint", "/data?date=YYYY-MM-DD")
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving the simulator: %w", err)
	}
	return nil
}

func metabaseCommand(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("metabase-setup", "metabase-setup", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	environ := config.Environ()
	level, format := environ["LOG_LEVEL"], environ["LOG_FORMAT"]
	if format == "" {
		format = "auto"
	}
	log := newLogger(stderr, level, format)
	cfg, err := metabase.LoadConfig(environ)
	if err != nil {
		return &exitError{ExitUsage, err}
	}
	if err := metabase.Setup(ctx, cfg, log); err != nil {
		if metabase.IsUsageError(err) {
			return &exitError{ExitUsage, err}
		}
		return err
	}
	return nil
}
