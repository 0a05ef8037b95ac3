package pipeline

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"
)

// prefetched is the next day's response, requested as soon as the current
// day's body has been received, while the current day is still validated,
// copied and committed. Requests never overlap: the API was reported to mix
// dates up under parallel requests.
type prefetched struct {
	date  time.Time
	abort chan struct{}
	done  chan struct{}
	day   DayLines
	err   error
}

// prefetchAfter requests next once cur's body is in.
func (p *Pipeline) prefetchAfter(ctx context.Context, cur DayLines, next time.Time) {
	p.dropPrefetch()
	if next.IsZero() {
		return
	}
	pf := &prefetched{date: next, abort: make(chan struct{}), done: make(chan struct{})}
	p.pending = pf
	go func() {
		defer close(pf.done)
		defer func() {
			// Go's exit code for a crash in a goroutine, 2, means a
			// configuration error: fail the day instead.
			if r := recover(); r != nil {
				pf.day, pf.err = nil, fmt.Errorf("panic while requesting %s: %v\n%s", next.Format(time.DateOnly), r, debug.Stack())
			}
		}()
		select {
		case <-cur.Received():
		case <-pf.abort:
			return
		case <-ctx.Done():
			return
		}
		pf.day, pf.err = p.API.Open(ctx, next)
	}()
}

// open returns day's response: the prefetched one when there is one.
func (p *Pipeline) open(ctx context.Context, day time.Time) (DayLines, error) {
	if pf := p.pending; pf != nil && pf.date.Equal(day) {
		p.pending = nil
		<-pf.done
		if pf.day != nil || pf.err != nil {
			return pf.day, pf.err
		}
	}
	p.dropPrefetch()
	return p.API.Open(ctx, day)
}

// dropPrefetch abandons a pending prefetch, waiting for its request so that
// no two requests are in flight at once.
func (p *Pipeline) dropPrefetch() {
	pf := p.pending
	if pf == nil {
		return
	}
	p.pending = nil
	close(pf.abort)
	<-pf.done
	if pf.day != nil {
		pf.day.Close()
	}
}
