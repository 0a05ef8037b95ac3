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

// Client fetches one day at a time.
type Client struct {
	base     *url.URL
	http     *http.Client
	timeout  time.Duration
	observer Observer
}

// NewClient makes a client of the API at rawURL (the /data endpoint).
// timeout bounds the wait for response headers and any stall while reading
// the body; a large day that keeps streaming is never cut off.
func NewClient(rawURL string, timeout time.Duration, observer Observer) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parsing API URL: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = timeout
	tr.MaxIdleConnsPerHost = 2
	return &Client{base: u, http: &http.Client{Transport: tr}, timeout: timeout, observer: observer}, nil
}

// Day is the response for one date, read element by element.
type Day struct {
	body   io.ReadCloser
	elems  *elements
	ahead  *readAhead
	stall  *time.Timer // until the body starts arriving
	cancel context.CancelFunc
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
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("building API request for %s: %w", date, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "marketplace-etl")
	op := "fetching " + date + " from the API"
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		cancel()
		c.observe(0, start)
		if parent.Err() != nil {
			return nil, fmt.Errorf("%s: %w", op, parent.Err())
		}
		return nil, &TransientError{Op: op, Err: err}
	}
	stall := time.AfterFunc(c.timeout, cancel)
	d := &Day{body: resp.Body, stall: stall, cancel: cancel, date: date}
	d.obs = func() { c.observe(resp.StatusCode, start) }
	if resp.StatusCode != http.StatusOK {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		d.Close()
		terr := &TransientError{Op: op, Status: resp.StatusCode, Err: fmt.Errorf("%s", oneLine(snippet))}
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
			terr.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"))
			return nil, terr
		}
		return nil, fmt.Errorf("%s: unexpected HTTP %d: %s", op, resp.StatusCode, oneLine(snippet))
	}
	stall.Stop() // from here the read-ahead watches for stalls
	d.ahead = newReadAhead(resp.Body, readAheadWindow, c.timeout, cancel)
	br := bufio.NewReaderSize(d.ahead, 64<<10)
	first, err := firstByte(br)
	if err != nil {
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
	d.elems = newElements(br)
	return d, nil
}

// Next returns the next element of the array, verbatim; the bytes are valid
// until the next call. io.EOF ends a complete array; a body cut short or
// malformed between elements gives a *TransientError.
func (d *Day) Next() ([]byte, error) {
	elem, err := d.elems.next()
	switch {
	case err == nil:
		return elem, nil
	case errors.Is(err, io.EOF):
		d.once.Do(d.obs)
		return nil, io.EOF
	}
	return nil, &TransientError{Op: "reading " + d.date + " from the API", Status: 200, Err: fmt.Errorf("body cut off or malformed: %w", err)}
}

// Received is closed once the whole body has arrived (or failed): the
// connection is then free for the next request while this day is still
// being processed.
func (d *Day) Received() <-chan struct{} { return d.ahead.Received() }

// Close releases the connection.
func (d *Day) Close() {
	d.stall.Stop()
	if d.ahead != nil {
		d.ahead.Stop()
	}
	d.once.Do(d.obs)
	// Cancel before closing: a body not read to its end may be stalled, and
	// the connection is not worth keeping then.
	d.cancel()
	d.body.Close()
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

func oneLine(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		s = "(empty body)"
	}
	return s
}
