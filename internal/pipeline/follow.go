package pipeline

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"
)

// follower keeps the marts close behind a pass of many days: while the
// days load, it drains the days committed so far in the background, each
// drain starting when another day has been loaded after the previous one
// has ended and a pause after it (so the drains batch themselves: the
// longer one takes, the more days the next one takes). A pass mostly waits on the API and on its
// commits, so the drains use capacity of the database that would
// otherwise idle, and the pass's final update is left with the last few
// days instead of all of them.
type follower struct {
	loaded  chan struct{}
	done    chan struct{} // closed by halt
	stopped chan struct{}
	once    sync.Once
}

// follow starts the follower; nil when the pass has no Follow function or
// too few days to be worth it.
func (p *Pipeline) follow(ctx context.Context, days int) *follower {
	if p.Follow == nil || days < 2 {
		return nil
	}
	f := &follower{loaded: make(chan struct{}, 1), done: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(f.stopped)
		for {
			select {
			case <-f.done:
				return
			case <-ctx.Done():
				return
			case <-f.loaded:
			}
			select {
			case <-f.done: // halted while a day was due
				return
			default:
			}
			t0 := time.Now()
			if err := p.followOnce(ctx); err != nil && ctx.Err() == nil {
				// Not the pass's failure: its final update drains the same
				// days and reports what goes wrong.
				p.Log.Warn("updating the marts behind the loads failed; the pass's final update will retry", "err", err)
			}
			// A pause of a few times the drain's length: when the loads
			// keep both the pass and the database busy (a fast API), the
			// drains take a tenth of the time at most, and each covers
			// more days; when the pass waits on the API, they still keep
			// up.
			select {
			case <-f.done:
				return
			case <-ctx.Done():
				return
			case <-time.After(min(followPause*time.Since(t0), 30*time.Second)):
			}
		}
	}()
	return f
}

// followPause is the pause after a drain behind the loads, in lengths of
// that drain.
const followPause = 9

func (p *Pipeline) followOnce(ctx context.Context) (err error) {
	defer func() {
		// Go's exit code for a crash in a goroutine, 2, means a
		// configuration error; the final update runs the same code and
		// reports it properly.
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return p.Follow(ctx)
}

// dayLoaded tells the follower that a day was committed.
func (f *follower) dayLoaded() {
	if f == nil {
		return
	}
	select {
	case f.loaded <- struct{}{}:
	default: // a drain is already due
	}
}

// halt keeps the follower from starting another drain, without waiting
// for the one in progress: the pass's final update need not wait for it
// either (the marts' locks let its client half start at once, and its day
// half wait for the drain).
func (f *follower) halt() {
	if f == nil {
		return
	}
	f.once.Do(func() { close(f.done) })
}

// stop halts the follower and waits for the drain in progress, if any.
func (f *follower) stop() {
	if f == nil {
		return
	}
	f.halt()
	<-f.stopped
}
