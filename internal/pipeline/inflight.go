package pipeline

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/marketplace-etl/marketplace-etl/internal/etl"
)

// dayRun is the first attempt at a day, in a goroutine of its own so that
// its last part (the server finishing the COPY, the bookkeeping, the
// commit: at the real API's 5,500 lines a day, a third of a day's time)
// overlaps the next day's start, download and validation.
type dayRun struct {
	index    int // 1-based, in the pass
	day      time.Time
	skipDone bool
	start    time.Time
	read     chan struct{} // closed once the lines are read, or the attempt ended
	done     chan struct{}
	outcome  etl.Outcome
	sum      etl.Summary
	err      error
	panicked any // re-raised by wait, where the pass can record the crash
}

// startDay begins the first attempt at day and returns once its lines are
// all read: the attempt goes on with the database alone, and the API and
// the prefetch are free for the next day.
func (p *Pipeline) startDay(ctx context.Context, runID int64, index int, day, next time.Time, skipDone bool) *dayRun {
	r := &dayRun{index: index, day: day, skipDone: skipDone, start: time.Now(), read: make(chan struct{}), done: make(chan struct{})}
	var once sync.Once
	read := func() { once.Do(func() { close(r.read) }) }
	go func() {
		defer close(r.done)
		defer read()
		defer func() {
			if v := recover(); v != nil {
				r.panicked = fmt.Sprintf("%v (while loading %s)\n%s", v, day.Format(time.DateOnly), debug.Stack())
			}
		}()
		r.outcome, r.sum, r.err = p.loadOnce(ctx, runID, day, next, skipDone, read)
	}()
	<-r.read
	return r
}

// ended tells whether the attempt is over already.
func (r *dayRun) ended() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// wait waits for the attempt to end. A crash in it crashes the caller, as
// it did when days ran one after the other: Go's own exit code for a crash
// in another goroutine, 2, means a configuration error.
func (r *dayRun) wait() {
	<-r.done
	if r.panicked != nil {
		panic(r.panicked)
	}
}
