package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/marketplace-etl/marketplace-etl/internal/marketplace"
	"github.com/marketplace-etl/marketplace-etl/internal/purchases"
	"github.com/marketplace-etl/marketplace-etl/internal/store"
)

// Recorder receives the pass's events, e.g. to push metrics.
type Recorder interface {
	DayFinished(DayReport)
	MartsRefreshed(d time.Duration, err error)
}

// DayReport is the outcome of one day.
type DayReport struct {
	Date     time.Time
	Outcome  store.Outcome
	Summary  store.Summary
	Duration time.Duration // fetch + validate + load, retries included
	Attempts int
	Err      error
}

// Refresher refreshes the marts after data changed.
type Refresher func(ctx context.Context) (time.Duration, error)

// Settings tune a pass.
type Settings struct {
	MaxRejectRatio float64
	Retries        int
	Backoff        time.Duration
	MaxBackoff     time.Duration
}

// Pipeline runs passes against one database and one API.
type Pipeline struct {
	Store    *store.Store
	API      *marketplace.Client
	Log      *slog.Logger
	Recorder Recorder
	Refresh  Refresher
	Settings Settings
	Progress Progress

	pending *prefetched
}

// Plan is the list of days one pass considers.
type Plan struct {
	Days []time.Time
	// Always lists the days fetched even when already loaded (so that an
	// upstream change is noticed); the others are skipped once done.
	Always map[time.Time]bool
	Force  bool // fetch every day of the plan
}

// Result sums a pass up.
type Result struct {
	Totals        store.RunTotals
	Skipped       int
	Failed        []DayReport
	RejectFailure bool // a day was refused for its reject ratio
	MartsErr      error
	NewestLoaded  time.Time
}

// RejectRatioError marks a day refused for too many rejected lines: a
// data-contract failure that retrying will not fix.
type RejectRatioError struct {
	Date              time.Time
	Rejected, Fetched int
	Max               float64
}

func (e *RejectRatioError) Error() string {
	return fmt.Sprintf("%s: %d of %d lines rejected (%.1f %%), above ETL_MAX_REJECT_RATIO %.1f %%; the day was not loaded, its rejects are in marketplace.rejected_purchases",
		e.Date.Format(time.DateOnly), e.Rejected, e.Fetched, 100*float64(e.Rejected)/float64(e.Fetched), 100*e.Max)
}

// errEmptyDay: the API answered [] for a day it has data for. Real days
// have thousands of lines, so this is a fault worth retrying, not a day
// without sales.
var errEmptyDay = errors.New("the API returned no lines for a day that has data")

// Execute runs one pass over plan under run id runID.
func (p *Pipeline) Execute(ctx context.Context, runID int64, plan Plan) (Result, error) {
	var res Result
	states := map[string]store.DayState{}
	if len(plan.Days) > 0 {
		var err error
		if states, err = p.Store.DayStates(ctx, plan.Days[0], plan.Days[len(plan.Days)-1]); err != nil {
			return res, err
		}
	}
	var todo []time.Time
	for _, d := range plan.Days {
		if st, ok := states[d.Format(time.DateOnly)]; ok && st.Done() && !plan.Force && !plan.Always[d] {
			res.Skipped++
			continue
		}
		todo = append(todo, d)
	}
	if res.Skipped > 0 {
		p.Log.Info("skipping days already loaded", "days", res.Skipped, "hint", "use --force to re-fetch them")
	}
	p.Progress.Start(len(todo))
	defer p.Progress.Done()
	defer p.dropPrefetch()
	var fatal error
	for i, d := range todo {
		if ctx.Err() != nil {
			fatal = fmt.Errorf("interrupted before %s: %w", d.Format(time.DateOnly), context.Cause(ctx))
			break
		}
		skipDone := !plan.Force && !plan.Always[d]
		var next time.Time
		if i+1 < len(todo) {
			next = todo[i+1]
		}
		rep := p.loadDay(ctx, runID, d, next, skipDone)
		p.Recorder.DayFinished(rep)
		p.Progress.Day(i+1, rep)
		switch rep.Outcome {
		case store.OutcomeLoaded:
			res.Totals.DaysLoaded++
			res.Totals.RowsLoaded += int64(rep.Summary.Loaded)
			res.Totals.RowsRejected += int64(rep.Summary.Rejected)
		case store.OutcomeUnchanged:
			res.Totals.DaysUnchanged++
		case store.OutcomeNoData:
			res.Totals.DaysNoData++
		case "":
			res.Skipped++ // loaded by a concurrent process meanwhile
		default:
			res.Totals.DaysFailed++
			res.Totals.RowsRejected += int64(rep.Summary.Rejected)
			res.Failed = append(res.Failed, rep)
			var rr *RejectRatioError
			if errors.As(rep.Err, &rr) {
				res.RejectFailure = true
			}
			if ctx.Err() != nil || dbLost(rep.Err) {
				// The database (or the pod) is going away: the next days
				// would fail the same way. Stop and let the retry heal it.
				fatal = rep.Err
			}
		}
		if fatal != nil {
			break
		}
	}
	if res.Totals.DaysLoaded > 0 && p.Refresh != nil && fatal == nil {
		d, err := p.Refresh(ctx)
		p.Recorder.MartsRefreshed(d, err)
		if err != nil {
			res.MartsErr = err
			p.Log.Error("refreshing the marts failed; the loaded data is kept", "err", err)
		} else {
			p.Log.Info("marts refreshed", "duration", d.Round(time.Millisecond))
		}
	}
	return res, fatal
}

// loadDay loads one day, retrying transient faults with backoff; on a
// persistent fault the day is marked failed and the pass goes on.
func (p *Pipeline) loadDay(ctx context.Context, runID int64, day, next time.Time, skipDone bool) DayReport {
	start := time.Now()
	rep := DayReport{Date: day}
	log := p.Log.With("date", day.Format(time.DateOnly))
	for attempt := 1; ; attempt++ {
		rep.Attempts = attempt
		outcome, sum, err := p.loadOnce(ctx, runID, day, next, skipDone)
		rep.Outcome, rep.Summary, rep.Err = outcome, sum, err
		if err == nil {
			break
		}
		if !retryable(err) || attempt > p.Settings.Retries || ctx.Err() != nil {
			break
		}
		p.dropPrefetch() // the retry's request must not overlap a prefetch
		wait := p.backoff(attempt, marketplace.RetryAfter(err))
		log.Warn("transient failure, retrying", "attempt", attempt, "of", p.Settings.Retries+1, "wait", wait.Round(time.Millisecond), "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
	rep.Duration = time.Since(start)
	if rep.Err != nil {
		rep.Outcome = store.OutcomeFailed
		var rr *RejectRatioError
		if !errors.As(rep.Err, &rr) && ctx.Err() == nil && !dbLost(rep.Err) {
			if _, err := p.Store.MarkDay(ctx, day, runID, store.StatusFailed, rep.Err.Error()); err != nil {
				log.Error("could not record the failure", "err", err)
			}
		}
	}
	return rep
}

// dbLost tells a database that went away from an API that did: both can be
// network errors, but only API errors are wrapped as transient.
func dbLost(err error) bool {
	return !marketplace.IsTransient(err) && store.IsUnavailable(err)
}

func retryable(err error) bool {
	return marketplace.IsTransient(err) || store.IsUnavailable(err) || errors.Is(err, errEmptyDay)
}

// backoff is exponential with jitter (between half and all of the step),
// and at least what the server asked for, up to the maximum.
func (p *Pipeline) backoff(attempt int, retryAfter time.Duration) time.Duration {
	d := p.Settings.Backoff << (attempt - 1)
	if d > p.Settings.MaxBackoff || d <= 0 {
		d = p.Settings.MaxBackoff
	}
	d = d/2 + rand.N(d/2+1)
	if retryAfter > d {
		d = min(retryAfter, p.Settings.MaxBackoff)
	}
	return d
}

// loadOnce is one attempt: one HTTP response streamed into one transaction.
func (p *Pipeline) loadOnce(ctx context.Context, runID int64, day, next time.Time, skipDone bool) (store.Outcome, store.Summary, error) {
	var sum store.Summary
	date := day.Format(time.DateOnly)
	tx, err := p.Store.BeginDay(ctx, day, runID)
	if err != nil {
		return "", sum, err
	}
	defer tx.Rollback()
	if st := tx.Stored(); skipDone && st != nil && st.Done() {
		return "", sum, nil
	}
	resp, err := p.open(ctx, day)
	if errors.Is(err, marketplace.ErrNoData) {
		tx.Rollback()
		status, err := p.Store.MarkDay(ctx, day, runID, store.StatusNoData, "")
		if err != nil {
			return "", sum, err
		}
		if status == store.StatusLoaded {
			p.Log.Warn("the API has no data for a day that has lines; the loaded lines are kept", "date", date)
			return store.OutcomeUnchanged, sum, nil
		}
		return store.OutcomeNoData, sum, nil
	}
	if err != nil {
		return "", sum, err
	}
	defer resp.Close()
	p.prefetchAfter(ctx, resp, next)
	if err := tx.Start(ctx); err != nil {
		return "", sum, err
	}
	var ck purchases.Checksum
	sum.ByReason = map[purchases.Reason]int{}
	err = tx.Stream(ctx, func(w *store.DayWriter) error {
		for {
			raw, err := resp.Next()
			var long *marketplace.LongElement
			switch {
			case errors.Is(err, io.EOF):
				return nil
			case errors.As(err, &long):
				// raw is the element's start: that is all that is checksummed and kept.
			case err != nil:
				return err
			}
			ck.Add(raw)
			sum.Fetched++
			var rec purchases.Record
			var rej *purchases.Rejection
			if long != nil {
				rej = &purchases.Rejection{Reason: purchases.TooLong, Detail: long.Error()}
			} else {
				rec, rej = purchases.Parse(raw, date)
			}
			if rej != nil {
				sum.Rejected++
				sum.ByReason[rej.Reason]++
				err = w.Reject(raw, rej)
			} else {
				sum.Loaded++
				err = w.Add(&rec)
			}
			if err != nil {
				return err
			}
		}
	})
	if err != nil {
		return "", sum, err
	}
	if sum.Fetched == 0 {
		return "", sum, errEmptyDay
	}
	sum.Checksum = ck.String()
	var refuse *RejectRatioError
	if float64(sum.Rejected) > p.Settings.MaxRejectRatio*float64(sum.Fetched) {
		refuse = &RejectRatioError{Date: day, Rejected: sum.Rejected, Fetched: sum.Fetched, Max: p.Settings.MaxRejectRatio}
	}
	reason := ""
	if refuse != nil {
		reason = refuse.Error()
	}
	outcome, err := tx.Finish(ctx, sum, refuse == nil, reason)
	sum.DBTime = tx.DBTime()
	if err != nil {
		return "", sum, err
	}
	if st := tx.Stored(); outcome == store.OutcomeLoaded && st != nil && st.Checksum.Valid && st.Checksum.String != sum.Checksum {
		p.Log.Warn("day content changed upstream; replaced", "date", date,
			"old_checksum", st.Checksum.String, "new_checksum", sum.Checksum, "old_rows", st.Rows, "new_rows", sum.Loaded)
	}
	if refuse != nil {
		return outcome, sum, refuse
	}
	return outcome, sum, nil
}
