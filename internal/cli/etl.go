package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/marketplace-etl/marketplace-etl/internal/config"
	"github.com/marketplace-etl/marketplace-etl/internal/etl"
	"github.com/marketplace-etl/marketplace-etl/internal/marketplace"
	"github.com/marketplace-etl/marketplace-etl/internal/pipeline"
	"github.com/marketplace-etl/marketplace-etl/internal/redact"
	"github.com/marketplace-etl/marketplace-etl/internal/store"
)

// passFlags binds the flags run and backfill share to the configuration
// the environment filled, so that a flag overrides its variable.
type passFlags struct {
	cfg    *config.Config
	envErr error // reported once --help had its chance
}

func bindPassFlags(fs *flag.FlagSet) *passFlags {
	cfg, err := config.FromEnv(config.Environ())
	pf := &passFlags{cfg: cfg, envErr: err}
	fs.Var(urlFlag{&cfg.APIURL}, "api-url", "Marketplace API `URL` of the /data endpoint (overrides MARKETPLACE_API_URL)")
	fs.Var(notFlag{&cfg.AutoMigrate}, "no-migrate", "do not apply pending migrations first (overrides ETL_AUTO_MIGRATE)")
	return pf
}

// config checks the configuration, flags applied.
func (pf *passFlags) config() (*config.Config, error) {
	if pf.envErr != nil {
		return nil, pf.envErr
	}
	return pf.cfg, pf.cfg.Validate()
}

func runCommand(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("run", "run [--date YYYY-MM-DD] [flags]", stderr)
	var date dateFlag
	fs.Var(&date, "date", "load exactly this business day (default: yesterday in ETL_TIMEZONE plus catch-up)")
	pf := bindPassFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := pf.config()
	if err != nil {
		return err
	}
	now := time.Now()
	plan := pipeline.Plan{Always: map[time.Time]bool{}}
	var from, to time.Time
	if date.set {
		d := date.t
		if err := pipeline.CheckEnded(d, now, cfg.Location); err != nil {
			return usagef("--date: %v", err)
		}
		plan.Days, plan.Always[d] = []time.Time{d}, true
		from, to = d, d
	} else {
		to = pipeline.Yesterday(now, cfg.Location)
		from = to.AddDate(0, 0, -cfg.CatchupDays)
		plan.Days, plan.Always[to] = pipeline.Days(from, to), true
	}
	return pass(ctx, cfg, etl.Run{Mode: "run", From: from, To: to, ShardCount: 1, Version: version}, plan, stderr)
}

func backfillCommand(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("backfill", "backfill --from YYYY-MM-DD [--to YYYY-MM-DD] [--force] [--shard-index i --shard-count n] [flags]", stderr)
	var fromF, toF dateFlag
	fs.Var(&fromF, "from", "first business day to load (required)")
	fs.Var(&toF, "to", "last business day to load (default: yesterday in ETL_TIMEZONE)")
	force := fs.Bool("force", false, "re-fetch days already loaded (unchanged content is still left untouched)")
	pf := bindPassFlags(fs)
	fs.Var(intFlag{&pf.cfg.ShardIndex, 0}, "shard-index", "this pod's shard `i`, 0-based (overrides JOB_COMPLETION_INDEX)")
	fs.Var(intFlag{&pf.cfg.ShardCount, 1}, "shard-count", "number of shards `n` the range is split into (overrides BACKFILL_SHARD_COUNT)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if !fromF.set {
		return usagef("--from is required: expected the first day to load as YYYY-MM-DD")
	}
	cfg, err := pf.config()
	if err != nil {
		return err
	}
	now := time.Now()
	from, to := fromF.t, pipeline.Yesterday(now, cfg.Location)
	if toF.set {
		to = toF.t
		if err := pipeline.CheckEnded(to, now, cfg.Location); err != nil {
			return usagef("--to: %v", err)
		}
	}
	if from.After(to) {
		return usagef("--from %s is after --to %s: expected from <= to", from.Format(time.DateOnly), to.Format(time.DateOnly))
	}
	idx, cnt := cfg.ShardIndex, cfg.ShardCount
	if idx >= cnt {
		return usagef("shard index %d is not below shard count %d: expected 0 <= --shard-index < --shard-count", idx, cnt)
	}
	plan := pipeline.Plan{Days: pipeline.Shard(pipeline.Days(from, to), idx, cnt), Force: *force}
	return pass(ctx, cfg, etl.Run{Mode: "backfill", From: from, To: to, ShardIndex: idx, ShardCount: cnt, Version: version}, plan, stderr)
}

// pass runs one ETL pass and maps its outcome to an exit code.
func pass(ctx context.Context, cfg *config.Config, run etl.Run, plan pipeline.Plan, stderr io.Writer) error {
	// On a terminal with text logs, one renderer owns stderr: the progress
	// bar stays below the log lines instead of sharing a line with them.
	var term *terminal
	if isTerminal(stderr) && logFormat(stderr, cfg.LogFormat) == "text" {
		term = &terminal{w: stderr}
		stderr = term
	}
	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat).With("mode", run.Mode)
	started := time.Now()
	final, stopFinal := afterCancel(ctx, cfg.ShutdownGrace)
	defer stopFinal()
	defer exitAfterGrace(ctx, cfg.ShutdownGrace, log)()
	rec, err := newRecorder(cfg, run, log, final)
	if err != nil {
		return err
	}
	log.Info("pass starting", "version", version, "from", run.From.Format(time.DateOnly), "to", run.To.Format(time.DateOnly),
		"days", len(plan.Days), "shard", fmt.Sprintf("%d/%d", run.ShardIndex, run.ShardCount), "api", redact.String(cfg.APIURL),
		"database", redact.String(cfg.DatabaseURL))
	res, err := execute(ctx, final, cfg, run, plan, rec, log, term)
	code := ExitOK
	switch {
	case err != nil:
		code = exitCode(err)
	case res.RejectFailure:
		code, err = ExitData, &exitError{ExitData, fmt.Errorf("%d day(s) refused by the data contract: %v", len(res.Failed), res.Failed[0].Err)}
	case len(res.Failed) > 0:
		code, err = ExitRetryable, fmt.Errorf("%d day(s) failed, first %s: %v", len(res.Failed), res.Failed[0].Date.Format(time.DateOnly), res.Failed[0].Err)
	case res.MartsErr != nil:
		code, err = ExitRetryable, fmt.Errorf("the marts are not up to date (the next pass retries them): %w", res.MartsErr)
	}
	rec.Finish(res, err, started)
	if err != nil {
		log.Error("pass failed", "exit_code", code, "duration", time.Since(started).Round(time.Millisecond), "err", err,
			"days_loaded", res.Totals.DaysLoaded, "days_failed", res.Totals.DaysFailed)
		if code == ExitRetryable {
			return loggedError{err}
		}
		return loggedError{&exitError{code, err}}
	}
	log.Info("pass succeeded", "duration", time.Since(started).Round(time.Millisecond),
		"days_loaded", res.Totals.DaysLoaded, "days_unchanged", res.Totals.DaysUnchanged, "days_no_data", res.Totals.DaysNoData,
		"days_skipped", res.Skipped, "rows_loaded", res.Totals.RowsLoaded, "rows_rejected", res.Totals.RowsRejected)
	return nil
}

// execute runs the pass; final is the context of the bookkeeping that
// must still happen once ctx is cancelled (see afterCancel).
func execute(ctx, final context.Context, cfg *config.Config, run etl.Run, plan pipeline.Plan, rec recorder, log *slog.Logger, term *terminal) (res etl.Result, err error) {
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return res, err
	}
	defer st.Close()
	if err := prepareSchema(ctx, cfg, st); err != nil {
		return res, err
	}
	api, err := marketplace.NewClient(cfg.APIURL, apiLimits(cfg), rec)
	if err != nil {
		return res, &exitError{ExitUsage, err}
	}
	runID, err := st.StartRun(ctx, run)
	if err != nil {
		return res, err
	}
	defer func() {
		// A crash must not leave the run "running" either.
		if p := recover(); p != nil {
			pe := newPanicError(p)
			finishCtx, cancel := context.WithTimeout(final, 10*time.Second)
			defer cancel()
			if err := st.FinishRun(finishCtx, runID, res.Totals, pe); err != nil {
				log.Warn("could not record the end of the run", "err", err)
			}
			panic(pe)
		}
	}()
	p := &pipeline.Pipeline{
		Store: pipeline.DBStore(st), API: pipeline.APISource(api), Log: log.With("run_id", runID), Recorder: rec, Refresh: martsRefresher(st, cfg, log),
		Follow:   martsFollower(st, cfg, log),
		Settings: pipeline.Settings{MaxRejectRatio: cfg.MaxRejectRatio, Retries: cfg.HTTPRetries, Backoff: cfg.HTTPBackoff, MaxBackoff: cfg.HTTPMaxBackoff},
		Progress: pipeline.Progress{Log: log},
	}
	if term != nil {
		p.Progress.Bar = term
	}
	res, runErr := p.Execute(ctx, runID, plan)
	if newest, err := st.LatestLoadedDay(final); err == nil {
		res.NewestLoaded = newest
	}
	outcome := runErr
	if outcome == nil && len(res.Failed) > 0 {
		outcome = res.Failed[0].Err
	}
	if outcome == nil && res.MartsErr != nil {
		// The pass exits 1: its run must not read succeeded.
		outcome = fmt.Errorf("updating the marts: %w", res.MartsErr)
	}
	// Record the end even when interrupted: the run's row must not stay "running".
	finishCtx, cancel := context.WithTimeout(final, 10*time.Second)
	defer cancel()
	if err := st.FinishRun(finishCtx, runID, res.Totals, outcome); err != nil {
		log.Warn("could not record the end of the run", "err", err)
	}
	return res, runErr
}

func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (*store.Store, error) {
	return store.Open(ctx, cfg.DatabaseURL, store.Options{StatementTimeout: cfg.StatementTimeout, LockTimeout: cfg.LockTimeout,
		// A day's transaction waits on the API's body at most that long.
		IdleInTransactionTimeout: cfg.HTTPBodyTimeout + time.Minute, Location: cfg.Location}, log)
}

func apiLimits(cfg *config.Config) marketplace.Limits {
	return marketplace.Limits{Timeout: cfg.HTTPTimeout, BodyTimeout: cfg.HTTPBodyTimeout, MaxLineBytes: cfg.MaxLineBytes, MaxBodyBytes: cfg.MaxBodyBytes}
}

// afterCancel is the context of what still runs once ctx is cancelled by
// SIGTERM (recording the run's end, the metrics push): it outlives ctx by
// grace (ETL_SHUTDOWN_GRACE), shared by all those steps, so that together
// they end before Kubernetes kills the pod.
func afterCancel(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	final, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(grace, cancel) })
	return final, func() { stop(); cancel() }
}

// exitAfterGrace ends the process once ctx has been cancelled for grace
// and the pass has not returned: a step stuck where no context reaches
// (a frozen database answers within twice its statement timeout, which
// may be longer than the pod's grace period). It returns the function
// that disarms it.
func exitAfterGrace(ctx context.Context, grace time.Duration, log *slog.Logger) func() {
	var timer atomic.Pointer[time.Timer]
	stop := context.AfterFunc(ctx, func() {
		timer.Store(time.AfterFunc(grace+time.Second, func() {
			log.Error("the shutdown budget is spent; exiting without waiting for the pass", "grace", grace, "exit_code", ExitRetryable)
			os.Exit(ExitRetryable)
		}))
	})
	return func() {
		stop()
		if t := timer.Load(); t != nil {
			t.Stop()
		}
	}
}

// prepareSchema migrates, or checks the schema is current when migrations
// are left to a separate step.
func prepareSchema(ctx context.Context, cfg *config.Config, st *store.Store) error {
	if cfg.AutoMigrate {
		return st.Migrate(ctx)
	}
	cur, latest, err := st.SchemaVersions(ctx)
	if err != nil {
		return err
	}
	if cur != latest {
		return fmt.Errorf("database schema is at version %d, this binary needs %d: run 'marketplace-etl migrate up' or set ETL_AUTO_MIGRATE=true", cur, latest)
	}
	return nil
}
