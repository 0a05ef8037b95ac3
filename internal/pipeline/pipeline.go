package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/marketplace-etl/marketplace-etl/internal/etl"
	"github.com/marketplace-etl/marketplace-etl/internal/marketplace"
	"github.com/marketplace-etl/marketplace-etl/internal/purchases"
	"github.com/marketplace-etl/marketplace-etl/internal/store"
)

// Recorder receives the pass's events, e.g. to push metrics.
type Recorder interface {
	DayFinished(etl.DayReport)
	MartsRefreshed(d time.Duration, err error)
}

// Refresher brings the marts up to date with every committed load.
type Refresher func(ctx context.Context) (time.Duration, error)

// Follower brings the marts up to date with the loads committed so far if
// no other process is doing so, and returns nil at once if one is.
type Follower func(ctx context.Context) error

// Settings tune a pass.
type Settings struct {
	MaxRejectRatio float64
	Retries        int
	Backoff        time.Duration
	MaxBackoff     time.Duration
}

// Pipeline runs passes against one database and one API.
type Pipeline struct {
	Store    DayStore
	API      DaySource
	Log      *slog.Logger
	Recorder Recorder
	Refresh  Refresher
	// Follow, when set, drains the marts queue in the background while a
	// pass of several days loads (see follower).
	Follow   Follower
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
func (p *Pipeline) Execute(ctx context.Context, runID int64, plan Plan) (etl.Result, error) {
	var res etl.Result
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
	f := p.follow(ctx, len(todo))
	defer f.stop()
	var fatal error
	// Two days are in flight at a time: once a day's lines are all read,
	// the next day begins while the server finishes the first one's COPY
	// and commits it. Days are still reported, and retried, in order.
	finish := func(r *dayRun) {
		if fatal != nil {
			// The pass is stopping. A day already in flight is reported
			// if it loaded; if it failed, it failed for the same reason,
			// and retrying it would only delay the stop.
			if r.wait(); r.err != nil {
				p.Log.Warn("day abandoned: the pass is stopping", "date", r.day.Format(time.DateOnly), "err", r.err)
				return
			}
		}
		rep := p.loadDay(ctx, runID, r)
		if rep.Outcome != etl.Unchanged && rep.Outcome != etl.Skipped {
			f.dayLoaded()
		}
		p.Recorder.DayFinished(rep)
		p.Progress.Day(r.index, rep)
		res.Add(rep)
		if rep.Outcome == etl.Failed {
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
	}
	var prev *dayRun
	for i, d := range todo {
		if ctx.Err() != nil {
			fatal = fmt.Errorf("interrupted before %s: %w", d.Format(time.DateOnly), context.Cause(ctx))
			break
		}
		var next time.Time
		if i+1 < len(todo) {
			next = todo[i+1]
		}
		cur := p.startDay(ctx, runID, i+1, d, next, !plan.Force && !plan.Always[d])
		if prev != nil {
			finish(prev)
		}
		prev = cur
		if cur.ended() {
			// Nothing to overlap (skipped, no data, or failed before its
			// lines): report it now, so that a failure that stops the pass
			// stops it before the next day.
			finish(cur)
			prev = nil
		}
		if fatal != nil {
			break
		}
	}
	if prev != nil {
		finish(prev)
	}
	// No drain starts after this one; one in progress goes on alongside
	// the final update, which takes over from it.
	f.halt()
	// Every pass brings the marts up to date, even one that loaded nothing:
	// days an earlier pass changed but could not carry into the marts
	// (killed, marts failure) are still queued, and this heals them.
	if p.Refresh != nil && fatal == nil {
		d, err := p.Refresh(ctx)
		p.Recorder.MartsRefreshed(d, err)
		if err != nil {
			res.MartsErr = err
			p.Log.Error("updating the marts failed; the loaded data is kept and the changed days stay queued for the next pass", "err", err)
		}
	}
	return res, fatal
}

// loadDay waits for r's first attempt and retries the day on transient
// faults with backoff; on a persistent fault the day is marked failed and
// the pass goes on. Retries run here, in order: the next day's first
// attempt may still be committing, but no other request is in flight.
func (p *Pipeline) loadDay(ctx context.Context, runID int64, r *dayRun) etl.DayReport {
	r.wait()
	rep := etl.DayReport{Date: r.day}
	log := p.Log.With("date", r.day.Format(time.DateOnly))
	outcome, sum, err := r.outcome, r.sum, r.err
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			outcome, sum, err = p.loadOnce(ctx, runID, r.day, time.Time{}, r.skipDone, nil)
		}
		rep.Attempts = attempt
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
	rep.Duration = time.Since(r.start)
	if rep.Err != nil {
		rep.Outcome = etl.Failed
		var rr *RejectRatioError
		if !errors.As(rep.Err, &rr) && ctx.Err() == nil && !dbLost(rep.Err) {
			if err := p.Store.MarkFailed(ctx, r.day, runID, rep.Err.Error()); err != nil {
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

// loadOnce is one attempt: one HTTP response streamed into one
// transaction. read, if not nil, is called once every line is read and
// validated, when only the database's part of the attempt is left.
func (p *Pipeline) loadOnce(ctx context.Context, runID int64, day, next time.Time, skipDone bool, read func()) (etl.Outcome, etl.Summary, error) {
	var sum etl.Summary
	date := day.Format(time.DateOnly)
	tx, err := p.Store.BeginDay(ctx, day, runID)
	if err != nil {
		return etl.Failed, sum, err
	}
	defer tx.Rollback()
	if st := tx.Stored(); skipDone && st != nil && st.Done() {
		return etl.Skipped, sum, nil
	}
	resp, err := p.open(ctx, day)
	if errors.Is(err, marketplace.ErrNoData) {
		tx.Rollback()
		kept, err := p.Store.MarkNoData(ctx, day, runID)
		if err != nil {
			return etl.Failed, sum, err
		}
		if kept {
			p.Log.Warn("the API has no data for a day that has lines; the loaded lines are kept", "date", date)
			return etl.Unchanged, sum, nil
		}
		return etl.NoData, sum, nil
	}
	if err != nil {
		return etl.Failed, sum, err
	}
	defer resp.Close()
	p.prefetchAfter(ctx, resp, next)
	if err := tx.Start(ctx); err != nil {
		return etl.Failed, sum, err
	}
	var ck purchases.Checksum
	sum.ByReason = map[purchases.Reason]int{}
	err = tx.Stream(ctx, func(w LineWriter) error {
		// Declared once per day, not per line: they escape to the heap
		// through the LineWriter interface and the closure, and an
		// allocation per line was a measurable share of the client's CPU.
		var rec purchases.Record
		var rej *purchases.Rejection
		// The parser finds where a line ends as it validates it: reading
		// the body's bytes once, not twice, saves a fifth of the client's
		// CPU per line.
		scan := func(b []byte) int {
			var n int
			n, rec, rej = purchases.ParseFirst(b, date)
			return n
		}
		for {
			raw, scanned, err := resp.NextScanned(scan)
			long, isLong := errors.AsType[*marketplace.LongElement](err)
			switch {
			case errors.Is(err, io.EOF):
				if read != nil {
					read()
				}
				return nil
			case isLong:
				// raw is the element's start: that is all that is checksummed and kept.
			case err != nil:
				return err
			}
			ck.Add(raw)
			sum.Fetched++
			switch {
			case isLong:
				rej = &purchases.Rejection{Reason: purchases.TooLong, Detail: long.Error()}
			case !scanned:
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
		return etl.Failed, sum, err
	}
	if sum.Fetched == 0 {
		return etl.Failed, sum, errEmptyDay
	}
	sum.Checksum = ck.String()
	if float64(sum.Rejected) > p.Settings.MaxRejectRatio*float64(sum.Fetched) {
		refuse := &RejectRatioError{Date: day, Rejected: sum.Rejected, Fetched: sum.Fetched, Max: p.Settings.MaxRejectRatio}
		err := tx.Refuse(ctx, sum, refuse.Error())
		sum.DBTime = tx.DBTime()
		if err != nil {
			return etl.Failed, sum, err
		}
		return etl.Failed, sum, refuse
	}
	outcome, err := tx.Accept(ctx, sum)
	sum.DBTime = tx.DBTime()
	if err != nil {
		return etl.Failed, sum, err
	}
	if st := tx.Stored(); outcome == etl.Loaded && st != nil && st.Checksum.Valid && st.Checksum.String != sum.Checksum {
		p.Log.Warn("day content changed upstream; replaced", "date", date,
			"old_checksum", st.Checksum.String, "new_checksum", sum.Checksum, "old_rows", st.Rows, "new_rows", sum.Loaded)
	}
	return outcome, sum, nil
}
