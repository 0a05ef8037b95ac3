// Package marketplace talks to the Marketplace API (Client) and imitates it
// (Simulator), quirks included: plain HTTP, one day per call, JSON whatever
// the Content-Type, a Russian sentence instead of data before 2022-01-01.
package marketplace

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// NoDataSentence is what the API answers, with status 200, for dates before
// its first day ("no information for earlier periods").
const NoDataSentence = "Информация за более ранние периоды отсутствует"

// FirstDay is the first date the API has data for.
var FirstDay = time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)

// ErrNoData means the API has no data for the date (its sentence answer).
var ErrNoData = errors.New("the API has no data for this date")

// TransientError is a failure worth retrying: a 5xx or 429 status, a
// connection error, a timeout, a truncated or non-JSON body.
type TransientError struct {
	Op         string
	Status     int           // HTTP status, 0 when none was received
	RetryAfter time.Duration // from a Retry-After header, 0 when absent
	Err        error
}

func (e *TransientError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("%s: HTTP %d: %v", e.Op, e.Status, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Op, e.Err)
}

func (e *TransientError) Unwrap() error { return e.Err }

// IsTransient tells whether err is worth retrying.
func IsTransient(err error) bool {
	var t *TransientError
	return errors.As(err, &t)
}

// RetryAfter returns the delay the server asked for, if any.
func RetryAfter(err error) time.Duration {
	var t *TransientError
	if errors.As(err, &t) {
		return t.RetryAfter
	}
	return 0
}

// Observer receives every request's outcome, e.g. for metrics. code is 0
// when no response arrived.
type Observer interface {
	ObserveRequest(code int, d time.Duration)
}

// readAheadWindow bounds how much of a body is received ahead of its
// processing: a normal day (0.3–2.5 MB of JSON) fits whole.
const readAheadWindow = 4 << 20

// Defaults of Limits; a normal day is 0.3–2.5 MB, its lines about 250 bytes.
const (
	DefaultBodyTimeout  = 5 * time.Minute
	DefaultMaxLineBytes = 1 << 20
	DefaultMaxBodyBytes = 256 << 20
)

// LongElementPrefix is how much of an over-long element is kept, for the
// record of the rejected line.
const LongElementPrefix = 1024

// Limits bound one attempt at a day in time and memory, whatever the
// server sends. Zero fields take the defaults.
type Limits struct {
	// Timeout bounds the wait for the response headers and any single
	// stall of the body (ETL_HTTP_TIMEOUT).
	Timeout time.Duration
	// BodyTimeout bounds the whole attempt, from the request to the last
	// byte of the body (ETL_HTTP_BODY_TIMEOUT): a server trickling bytes
	// never stalls long enough for Timeout.
	BodyTimeout time.Duration
	// MaxLineBytes is the longest array element kept whole
	// (ETL_MAX_LINE_BYTES); Next reports a longer one as a *LongElement.
	MaxLineBytes int
	// MaxBodyBytes bounds the body after decompression (ETL_MAX_BODY_BYTES).
	MaxBodyBytes int64
}

func (l Limits) withDefaults() Limits {
	if l.Timeout <= 0 {
		l.Timeout = 30 * time.Second
	}
	if l.BodyTimeout <= 0 {
		l.BodyTimeout = DefaultBodyTimeout
	}
	if l.MaxLineBytes <= 0 {
		l.MaxLineBytes = DefaultMaxLineBytes
	}
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return l
}

// Client fetches one day at a time.
type Client struct {
	base     *url.URL
	http     *http.Client
	limits   Limits
	observer Observer
}

// NewClient makes a client of the API at rawURL (the /data endpoint).
func NewClient(rawURL string, limits Limits, observer Observer) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parsing the API URL: %w", withoutURL(err))
	}
	limits = limits.withDefaults()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = limits.Timeout
	tr.MaxIdleConnsPerHost = 2
	return &Client{base: u, http: &http.Client{Transport: tr}, limits: limits, observer: observer}, nil
}

// Why an attempt was cut short: errStalled, a *bodyTimeoutError or a
// *bodyTooLargeError becomes the cause of the attempt's context, so that
// the read error says which bound was hit.
var errStalled = errors.New("no data received for longer than ETL_HTTP_TIMEOUT")

type bodyTimeoutError struct{ d time.Duration }

func (e *bodyTimeoutError) Error() string {
	return fmt.Sprintf("the body was not complete within %s (ETL_HTTP_BODY_TIMEOUT)", e.d)
}

// Day is the response for one date, read element by element.
type Day struct {
	ctx    context.Context // the attempt's; its cause says why it ended
	parent context.Context
	body   io.ReadCloser
	elems  *elements
	ahead  *readAhead
	cancel context.CancelCauseFunc
	stop   context.CancelFunc // the body deadline's timer
	date   string
	once   sync.Once
	obs    func()
}

// Open requests date (YYYY-MM-DD) and checks the start of the body. It returns
// ErrNoData for the API's no-data sentence and a *TransientError for anything
// worth retrying. The caller must Close the Day.
func (c *Client) Open(ctx context.Context, date string) (*Day, error) {
	u := *c.base
	q := u.Query()
	q.Set("date", date)
	u.RawQuery = q.Encode()
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	ctx, stop := context.WithTimeoutCause(ctx, c.limits.BodyTimeout, &bodyTimeoutError{c.limits.BodyTimeout})
	d := &Day{ctx: ctx, parent: parent, cancel: cancel, stop: stop, date: date, body: http.NoBody}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("building the API request for %s: %w", date, withoutURL(err))
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "marketplace-etl")
	op := "fetching " + date + " from the API"
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		err = d.cause(withoutURL(err))
		d.Close()
		c.observe(0, start)
		if parent.Err() != nil {
			return nil, fmt.Errorf("%s: %w", op, parent.Err())
		}
		return nil, &TransientError{Op: op, Err: err}
	}
	d.body = resp.Body
	d.obs = func() { c.observe(resp.StatusCode, start) }
	if resp.StatusCode != http.StatusOK {
		stall := time.AfterFunc(c.limits.Timeout, func() { cancel(errStalled) })
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		stall.Stop()
		d.Close()
		terr := &TransientError{Op: op, Status: resp.StatusCode, Err: errors.New(oneLine(snippet))}
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
			terr.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"))
			return nil, terr
		}
		return nil, fmt.Errorf("%s: unexpected HTTP %d: %s", op, resp.StatusCode, oneLine(snippet))
	}
	body := &limitedBody{r: resp.Body, max: c.limits.MaxBodyBytes, left: c.limits.MaxBodyBytes}
	d.ahead = newReadAhead(body, readAheadWindow, c.limits.Timeout, func() { cancel(errStalled) })
	br := bufio.NewReaderSize(d.ahead, 64<<10)
	first, err := firstByte(br)
	if err != nil {
		err = d.cause(err)
		d.Close()
		return nil, &TransientError{Op: op, Status: 200, Err: fmt.Errorf("reading the body: %w", err)}
	}
	if first != '[' {
		head, _ := io.ReadAll(io.LimitReader(br, 64<<10))
		d.Close()
		if isNoDataSentence(head) {
			return nil, ErrNoData
		}
		return nil, &TransientError{Op: op, Status: 200, Err: fmt.Errorf("body is not a JSON array: %s", oneLine(head))}
	}
	_, _ = br.ReadByte() // the '['
	d.elems = newElements(br, c.limits.MaxLineBytes)
	return d, nil
}

// withoutURL drops the URL a *url.Error quotes: it may hold credentials
// (user info, a token parameter), and these errors are logged and stored.
// The message that wraps it says what was being fetched.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// cause replaces the error of a read cut short by one of the attempt's
// bounds with the bound that cut it ("context canceled" says nothing).
func (d *Day) cause(err error) error {
	if d.parent.Err() == nil && d.ctx.Err() != nil {
		if c := context.Cause(d.ctx); c != nil {
			return c
		}
	}
	return err
}

// LongElement is the error of Next for an array element longer than
// Limits.MaxLineBytes: the element was skipped without being held in
// memory, and Next returned its first LongElementPrefix bytes. The rest
// of the day can still be read.
type LongElement struct {
	Size  int64 // bytes of the whole element
	Limit int
	Kept  int // bytes returned by Next
}

func (e *LongElement) Error() string {
	return fmt.Sprintf("the element is %d bytes, above the limit of %d (ETL_MAX_LINE_BYTES); only its first %d bytes are kept",
		e.Size, e.Limit, e.Kept)
}

// Next returns the next element of the array, verbatim; the bytes are valid
// until the next call. io.EOF ends a complete array followed by nothing but
// whitespace; a body cut short, malformed between elements, or with
// anything after the array gives a *TransientError. An element longer than
// the line limit gives its start and a *LongElement.
func (d *Day) Next() ([]byte, error) {
	elem, _, err := d.NextScanned(nil)
	return elem, err
}

// NextScanned is Next for a caller that validates the elements it expects
// (objects) anyway, so that the body's bytes are read once rather than
// twice (to split the array, then to validate each element): scan, when
// not nil, is shown the buffered bytes from the start of an element that
// starts with '{' (at most the line limit of them, possibly cut anywhere),
// and returns the length of the valid JSON object they start with, or -1
// when there is none (not valid, or not ending within the bytes shown).
// scanned tells whether scan measured the element returned; if not, the
// element was split the usual way, and any result of scan is not its.
func (d *Day) NextScanned(scan func(b []byte) int) (elem []byte, scanned bool, err error) {
	elem, scanned, err = d.elems.scanNext(scan)
	if err == nil {
		return elem, scanned, nil
	}
	// errors.AsType, not errors.As: a target variable for errors.As
	// escapes to the heap, an allocation for every line of every day.
	if _, long := errors.AsType[*LongElement](err); long {
		return elem, false, err
	}
	if errors.Is(err, io.EOF) {
		d.once.Do(d.obs)
		return nil, false, io.EOF
	}
	return nil, false, &TransientError{Op: "reading " + d.date + " from the API", Status: 200, Err: fmt.Errorf("body cut off or malformed: %w", d.cause(err))}
}

// Received is closed once the whole body has arrived (or failed): the
// connection is then free for the next request while this day is still
// being processed.
func (d *Day) Received() <-chan struct{} { return d.ahead.Received() }

// Close releases the connection.
func (d *Day) Close() {
	if d.ahead != nil {
		d.ahead.Stop()
	}
	if d.obs != nil {
		d.once.Do(d.obs)
	}
	// Cancel before closing: a body not read to its end may be stalled, and
	// the connection is not worth keeping then.
	d.cancel(context.Canceled)
	d.stop()
	d.body.Close()
}

type bodyTooLargeError struct{ max int64 }

func (e *bodyTooLargeError) Error() string {
	return fmt.Sprintf("the body is larger than %d bytes (ETL_MAX_BODY_BYTES)", e.max)
}

// limitedBody fails a body (decompressed, when it came gzipped) that goes
// past its maximum, so a compression bomb costs no more than a plain body.
type limitedBody struct {
	r    io.Reader
	max  int64
	left int64
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1] // one byte past the maximum tells "exactly the maximum" from "more"
	}
	n, err := l.r.Read(p)
	if int64(n) > l.left {
		n, err = int(l.left), &bodyTooLargeError{l.max}
	}
	l.left -= int64(n)
	return n, err
}

func (c *Client) observe(code int, start time.Time) {
	if c.observer != nil {
		c.observer.ObserveRequest(code, time.Since(start))
	}
}

func firstByte(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		case 0xEF: // UTF-8 byte order mark
			if p, _ := br.Peek(2); bytes.Equal(p, []byte{0xBB, 0xBF}) {
				_, _ = br.Discard(2)
				continue
			}
		}
		return b, br.UnreadByte()
	}
}

// isNoDataSentence recognises the API's answer for dates before its first
// day: the sentence as plain text, or as a JSON string (possibly with
// \uXXXX escapes, as Python's json.dumps writes it).
func isNoDataSentence(body []byte) bool {
	text := strings.TrimSpace(string(body))
	var s string
	if strings.HasPrefix(text, `"`) && json.Unmarshal([]byte(text), &s) == nil {
		text = s
	}
	return strings.Contains(text, NoDataSentence)
}

func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// oneLine makes a server's text fit an error message: valid UTF-8 (the
// message is stored in PostgreSQL, which refuses anything else), one line,
// at most 200 bytes cut between characters.
func oneLine(b []byte) string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "\uFFFD")), " ")
	if len(s) > 200 {
		cut := 200
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	if s == "" {
		s = "(empty body)"
	}
	return s
}
