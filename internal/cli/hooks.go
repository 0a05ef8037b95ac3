package cli

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/marketplace-etl/marketplace-etl/internal/config"
	"github.com/marketplace-etl/marketplace-etl/internal/etl"
	"github.com/marketplace-etl/marketplace-etl/internal/marts"
	"github.com/marketplace-etl/marketplace-etl/internal/metrics"
	"github.com/marketplace-etl/marketplace-etl/internal/pipeline"
	"github.com/marketplace-etl/marketplace-etl/internal/store"
)

// recorder observes a pass: API requests, days, marts, and the end.
type recorder interface {
	pipeline.Recorder
	ObserveRequest(code int, d time.Duration)
	Finish(res etl.Result, err error, started time.Time)
}

type nopRecorder struct{}

func (nopRecorder) DayFinished(etl.DayReport)           {}
func (nopRecorder) MartsRefreshed(time.Duration, error) {}
func (nopRecorder) ObserveRequest(int, time.Duration)   {}
func (nopRecorder) Finish(etl.Result, error, time.Time) {}

// newRecorder pushes the pass's metrics to the Pushgateway when
// PUSHGATEWAY_URL is set.
func newRecorder(cfg *config.Config, run etl.Run, log *slog.Logger, shutdown context.Context) (recorder, error) {
	if cfg.PushgatewayURL == "" {
		return nopRecorder{}, nil
	}
	grouping, err := cfg.GroupingLabels()
	if err != nil {
		return nil, err
	}
	rec, err := metrics.New(metrics.Options{
		URL: cfg.PushgatewayURL, Job: cfg.PushgatewayJob, Username: cfg.PushgatewayUsername, Password: cfg.PushgatewayPassword,
		Timeout: cfg.PushgatewayTimeout, Grouping: grouping, Run: run, Version: version, ExitCode: exitCode, Log: log, Shutdown: shutdown,
	})
	if err != nil {
		return nil, &exitError{ExitUsage, err}
	}
	return rec, nil
}

// martsRefresher brings the marts up to date at the end of a pass.
func martsRefresher(st *store.Store, cfg *config.Config, log *slog.Logger) pipeline.Refresher {
	u := &marts.Updater{DB: st.DB(), Log: log, LockTimeout: cfg.MartsLockTimeout}
	return func(ctx context.Context) (time.Duration, error) {
		res, err := u.Update(ctx)
		return res.Duration, err
	}
}

// martsFollower drains the marts queue behind a pass's loads when no other
// process is updating the marts (ETL_MARTS_FOLLOW).
func martsFollower(st *store.Store, cfg *config.Config, log *slog.Logger) pipeline.Follower {
	if !cfg.MartsFollow {
		return nil
	}
	u := &marts.Updater{DB: st.DB(), Log: log, LockTimeout: cfg.MartsLockTimeout}
	return func(ctx context.Context) error {
		_, err := u.TryUpdate(ctx)
		if errors.Is(err, marts.ErrBusy) {
			return nil
		}
		return err
	}
}
