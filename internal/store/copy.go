package store

import (
	"context"
	"database/sql/driver"
	"fmt"
	"time"
)

// copyData is lib/pq's raw COPY entry point on its COPY statement.
type copyData interface {
	CopyData(ctx context.Context, line string) (driver.Result, error)
}

// copyStream is one COPY ... FROM STDIN on a driver connection, fed with
// lines already encoded in COPY's text format and sent in large chunks.
// It opens lazily, so it can be closed and reopened to let another COPY
// run on the connection in between.
type copyStream struct {
	ctx   context.Context
	dc    any
	query string
	stmt  driver.Stmt
	cd    copyData
	buf   []byte
	spent *time.Duration // time spent in the database, accumulated
}

// copyChunk is how much encoded text is handed to the driver at a time:
// the size of lib/pq's own COPY buffer. The server works on a chunk while
// the next one is encoded, and when a day's last line is encoded it still
// has the last chunk to do: with 256 KiB chunks that was up to half of a
// 5,500-line day (0.6 MB of COPY text) done after the client had finished,
// a serial wait in every day.
const copyChunk = 64 << 10

func newCopyStream(ctx context.Context, dc any, query string, spent *time.Duration) *copyStream {
	// Room for a chunk and the line that completes it, so that the buffer
	// does not grow line by line from nothing on every day.
	return &copyStream{ctx: ctx, dc: dc, query: query, spent: spent, buf: make([]byte, 0, copyChunk+4<<10)}
}

func (c *copyStream) open() error {
	prep, ok := c.dc.(driver.ConnPrepareContext)
	if !ok {
		return fmt.Errorf("driver connection %T cannot prepare COPY", c.dc)
	}
	st, err := prep.PrepareContext(c.ctx, c.query)
	if err != nil {
		return fmt.Errorf("starting COPY: %w", err)
	}
	cd, ok := st.(copyData)
	if !ok {
		st.Close()
		return fmt.Errorf("driver statement %T has no CopyData", st)
	}
	c.stmt, c.cd = st, cd
	return nil
}

// buffer adds a line without sending anything.
func (c *copyStream) buffer(line []byte) {
	if len(c.buf) > 0 {
		c.buf = append(c.buf, '\n')
	}
	c.buf = append(c.buf, line...)
}

// copyFirstChunk starts a COPY: the server idles from the start of a day
// until its first chunk arrives, so that one is small.
const copyFirstChunk = 8 << 10

// write adds a line and sends the buffer once it is large.
func (c *copyStream) write(line []byte) error {
	c.buffer(line)
	if len(c.buf) < copyChunk && (c.stmt != nil || len(c.buf) < copyFirstChunk) {
		return nil
	}
	return c.send()
}

func (c *copyStream) send() error {
	if len(c.buf) == 0 {
		return nil
	}
	defer c.timed(time.Now())
	if c.stmt == nil {
		if err := c.open(); err != nil {
			return err
		}
	}
	// CopyData appends its own newline after the chunk.
	_, err := c.cd.CopyData(c.ctx, string(c.buf))
	c.buf = c.buf[:0]
	return err
}

// close sends what is buffered and ends the COPY, reporting any error the
// server found in the data.
func (c *copyStream) close() error {
	if err := c.send(); err != nil {
		return err
	}
	if c.stmt == nil {
		return nil
	}
	defer c.timed(time.Now())
	st := c.stmt
	c.stmt, c.cd = nil, nil
	//lint:ignore SA1019 lib/pq's COPY ends with an Exec without arguments.
	if _, err := st.Exec(nil); err != nil { //nolint:staticcheck
		st.Close()
		return err
	}
	return st.Close()
}

func (c *copyStream) timed(start time.Time) { *c.spent += time.Since(start) }

// abort drops the stream after a failure; the transaction is rolled back.
func (c *copyStream) abort() {
	c.buf = c.buf[:0]
	if c.stmt != nil {
		c.stmt.Close()
		c.stmt, c.cd = nil, nil
	}
}

// appendCopyText appends s escaped for COPY's text format.
func appendCopyText(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, c)
		}
	}
	return b
}
