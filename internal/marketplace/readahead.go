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
	chunks   chan chunk
	cur      []byte
	curBuf   *[]byte // the chunk cur is the rest of
	err      error   // valid once chunks is closed
	received chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
}

// chunk is n received bytes at the start of a buffer from chunkPool.
type chunk struct {
	buf *[]byte
	n   int
}

// chunkPool keeps the receive buffers from one day to the next: a body is
// received well ahead of its processing, so nearly every chunk of a day
// used to be a new allocation, a fixed cost of every day (about 1.3 MB at
// the real API's 5,500 lines a day).
var chunkPool = sync.Pool{New: func() any {
	b := make([]byte, readAheadChunk)
	return &b
}}

// readAheadChunk is the unit of receiving; the window is a number of them.
const readAheadChunk = 64 << 10

// newReadAhead starts receiving body. onStall runs when a single read of
// the body waits longer than timeout: a stalled server. Time spent waiting
// for the reader to catch up does not count.
func newReadAhead(body io.Reader, window int, timeout time.Duration, onStall func()) *readAhead {
	n := max(window/readAheadChunk, 1)
	ra := &readAhead{
		chunks:   make(chan chunk, n),
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
		buf := chunkPool.Get().(*[]byte)
		stall.Reset(timeout)
		n, err := body.Read(*buf)
		stall.Stop()
		if n == 0 {
			chunkPool.Put(buf)
		} else {
			select {
			case ra.chunks <- chunk{buf, n}:
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
			// Read copies out: nothing refers to the chunk any more.
			chunkPool.Put(ra.curBuf)
			ra.curBuf = nil
		}
		c, ok := <-ra.chunks
		if !ok {
			return 0, ra.err
		}
		ra.cur, ra.curBuf = (*c.buf)[:c.n], c.buf
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// Received is closed once the whole body (or an error) has been received.
func (ra *readAhead) Received() <-chan struct{} { return ra.received }

// Stop ends receiving; the caller then closes the body.
func (ra *readAhead) Stop() { ra.stopOnce.Do(func() { close(ra.stop) }) }
