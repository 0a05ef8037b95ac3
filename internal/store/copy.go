package store

import (
	"context"
	"database/sql/driver"
	"fmt"
	"slices"
	"time"
	"unsafe"

	"github.com/marketplace-etl/marketplace-etl/internal/purchases"
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
	c.buf = append(c.begin(), line...)
}

// begin returns the buffer to append the next line to; end takes it back.
func (c *copyStream) begin() []byte {
	if len(c.buf) > 0 {
		return append(c.buf, '\n')
	}
	return c.buf
}

// copyFirstChunk starts a COPY: the server idles from the start of a day
// until its first chunk arrives, so that one is small.
const copyFirstChunk = 8 << 10

// end keeps buf, the buffer with a line appended since begin, and sends
// it once it is large.
func (c *copyStream) end(buf []byte) error {
	c.buf = buf
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
	// CopyData appends its own newline after the chunk. It copies the
	// chunk into lib/pq's own buffer before it returns (lib/pq v1.12's
	// copyin.CopyData), and the chunk is not touched meanwhile, so it is
	// lent as a string rather than copied into a new one: a 64 KiB
	// allocation per chunk was most of a day's garbage.
	_, err := c.cd.CopyData(c.ctx, unsafe.String(unsafe.SliceData(c.buf), len(c.buf)))
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

// appendInt appends n in decimal, as strconv.AppendInt(b, n, 10) does.
func appendInt(b []byte, n int64) []byte {
	if n < 0 {
		// -n overflows for math.MinInt64, and its uint64 is then right.
		return appendUint(append(b, '-'), uint64(-n))
	}
	return appendUint(b, uint64(n))
}

// appendUint appends u in decimal, as strconv.AppendUint(b, u, 10) does,
// in place at the end of b: strconv formats into a buffer of its own and
// copies, which cost more than the digits themselves for a line's ids.
func appendUint(b []byte, u uint64) []byte {
	n := 1
	for p := uint64(10); n < 20 && u >= p; p *= 10 {
		n++
	}
	i := len(b) + n
	b = slices.Grow(b, n)[:i]
	d := b[i-n : i : i]
	for j := n - 1; j > 0; j-- {
		q := u / 10
		d[j] = byte('0' + u - q*10)
		u = q
	}
	d[0] = byte('0' + u)
	return b
}

// appendCents appends c as purchases.Cents.Append does.
func appendCents(b []byte, c purchases.Cents) []byte {
	if c < 0 {
		return c.Append(b)
	}
	b = appendUint(b, uint64(c/100))
	f := c % 100
	return append(b, '.', byte('0'+f/10), byte('0'+f%10))
}
