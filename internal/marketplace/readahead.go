package marketplace

import (
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync"
	"time"
)

// readAhead receives a response body in its own goroutine, up to a bounded
// number of bytes ahead of the reader, so that the network transfer of a day
// overlaps its validation and COPY, and the connection is free for the next
// day's request as soon as the body is in. Memory stays bounded: when the
// reader falls behind, receiving pauses.
type readAhead struct {
	chunks   chan []byte
	free     chan []byte
	cur      []byte
	curBuf   []byte
	err      error // valid once chunks is closed
	received chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
}

// readAheadChunk is the unit of receiving; the window is a number of them.
const readAheadChunk = 64 << 10

// newReadAhead starts receiving body. onStall runs when a single read of
// the body waits longer than timeout: a stalled server. Time spent waiting
// for the reader to catch up does not count.
func newReadAhead(body io.Reader, window int, timeout time.Duration, onStall func()) *readAhead {
	n := max(window/readAheadChunk, 1)
	ra := &readAhead{
		chunks:   make(chan []byte, n),
		free:     make(chan []byte, n+1),
		received: make(chan struct{}),
		stop:     make(chan struct{}),
	}
	go ra.run(body, timeout, onStall)
	return ra
}

func (ra *readAhead) run(body io.Reader, timeout time.Duration, onStall func()) {
	defer close(ra.received)
	defer func() {
		// A crash here would end the process with Go's exit code 2, which
		// means a configuration error: fail the body instead.
		if p := recover(); p != nil {
			ra.err = fmt.Errorf("panic while receiving the body: %v\n%s", p, debug.Stack())
			close(ra.chunks)
		}
	}()
	stall := time.AfterFunc(timeout, onStall)
	defer stall.Stop()
	for {
		var buf []byte
		select {
		case buf = <-ra.free:
		default:
			buf = make([]byte, readAheadChunk)
		}
		stall.Reset(timeout)
		n, err := body.Read(buf[:cap(buf)])
		stall.Stop()
		if n > 0 {
			select {
			case ra.chunks <- buf[:n]:
			case <-ra.stop:
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.EOF
			}
			ra.err = err
			close(ra.chunks)
			return
		}
	}
}

// Read implements io.Reader.
func (ra *readAhead) Read(p []byte) (int, error) {
	if len(ra.cur) == 0 {
		if ra.curBuf != nil {
			select {
			case ra.free <- ra.curBuf:
			default:
			}
			ra.curBuf = nil
		}
		c, ok := <-ra.chunks
		if !ok {
			return 0, ra.err
		}
		ra.cur, ra.curBuf = c, c
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// Received is closed once the whole body (or an error) has been received.
func (ra *readAhead) Received() <-chan struct{} { return ra.received }

// Stop ends receiving; the caller then closes the body.
func (ra *readAhead) Stop() { ra.stopOnce.Do(func() { close(ra.stop) }) }
