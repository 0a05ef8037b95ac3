package pipeline

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/marketplace-etl/marketplace-etl/internal/etl"
	"github.com/marketplace-etl/marketplace-etl/internal/marketplace"
	"github.com/marketplace-etl/marketplace-etl/internal/purchases"
	"github.com/marketplace-etl/marketplace-etl/internal/store"
)

// journal records what the fakes saw, in order, for tests that check the
// interleaving of requests and commits.
type journal struct {
	mu     sync.Mutex
	events []string
}

func (j *journal) add(format string, args ...any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, fmt.Sprintf(format, args...))
}

func (j *journal) list() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.events...)
}

// answer is one response of the fake API: lines, or an error.
type answer struct {
	lines []string
	err   error
}

// fakeSource is an in-memory API. Each date answers its queued answers in
// order, then repeats the last one; a date without answers has no data.
type fakeSource struct {
	j       *journal
	mu      sync.Mutex
	answers map[string][]answer
	opened  map[string]int
	// inFlight counts requests whose body is not fully received yet.
	inFlight, maxInFlight int
}

func newFakeSource(j *journal) *fakeSource {
	return &fakeSource{j: j, answers: map[string][]answer{}, opened: map[string]int{}}
}

func (s *fakeSource) set(date string, as ...answer) { s.answers[date] = as }

func (s *fakeSource) Open(ctx context.Context, day time.Time) (DayLines, error) {
	date := day.Format(time.DateOnly)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.j.add("open %s", date)
	n := s.opened[date]
	s.opened[date]++
	as := s.answers[date]
	if len(as) == 0 {
		return nil, marketplace.ErrNoData
	}
	a := as[min(n, len(as)-1)]
	if a.err != nil {
		return nil, a.err
	}
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
	return &fakeLines{src: s, date: date, lines: a.lines, received: make(chan struct{})}, nil
}

func (s *fakeSource) requests(date string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opened[date]
}

// waitOpened waits until date has been requested, up to timeout.
func (s *fakeSource) waitOpened(date string, timeout time.Duration) bool {
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if s.requests(date) > 0 {
			return true
		}
	}
	return false
}

// fakeLines is received in full once its last line has been read (or it is
// closed), like a streamed HTTP body.
type fakeLines struct {
	src      *fakeSource
	date     string
	lines    []string
	next     int
	once     sync.Once
	received chan struct{}
}

// NextScanned lets scan measure every line that is one object, as the
// client does with the objects that are all in its buffer.
func (l *fakeLines) NextScanned(scan func([]byte) int) ([]byte, bool, error) {
	if l.next == len(l.lines) {
		l.done()
		return nil, false, io.EOF
	}
	l.next++
	ln := l.lines[l.next-1]
	if start, ok := strings.CutPrefix(ln, longLine); ok { // the client's report of an over-long element
		return []byte(start), false, &marketplace.LongElement{Size: 100 << 20, Limit: 1 << 20, Kept: len(start)}
	}
	if scan([]byte(ln)) == len(ln) {
		return []byte(ln), true, nil
	}
	return []byte(ln), false, nil
}

// longLine starts a fake line that stands for an element over the line
// limit, of which the client kept the rest of the line.
const longLine = "LONG:"

func (l *fakeLines) done() {
	l.once.Do(func() {
		l.src.mu.Lock()
		l.src.inFlight--
		l.src.mu.Unlock()
		l.src.j.add("received %s", l.date)
		close(l.received)
	})
}

func (l *fakeLines) Received() <-chan struct{} { return l.received }
func (l *fakeLines) Close()                    { l.done() }

// fakeDay is what the fake store holds for one date.
type fakeDay struct {
	state   store.DayState
	lines   int
	rejects int
	lastErr string
}

// fakeStore is an in-memory DayStore with the store's rules: a day is
// replaced whole or not at all, unchanged content is left alone, and a
// loaded day is never downgraded by a failure or a no-data answer.
type fakeStore struct {
	j    *journal
	mu   sync.Mutex
	days map[string]*fakeDay
	// down makes every call fail as a lost database does.
	down atomic.Bool
	// downAfter takes the database down once this date is committed.
	downAfter string
	// beforeCommit, when set, runs as a day commits.
	beforeCommit func(date string)
	// onBegin, when set, runs as a day's transaction begins.
	onBegin func(date string)
	// commitFails makes a date's next commits fail as a lost connection.
	commitFails map[string]int
	// hideStates makes DayStates miss every day, as when another process
	// loads them between the plan and the load.
	hideStates bool
}

func newFakeStore(j *journal) *fakeStore { return &fakeStore{j: j, days: map[string]*fakeDay{}} }

var errDBDown = &store.UnavailableError{Err: fmt.Errorf("dial tcp 127.0.0.1:5432: connect: connection refused")}

func (s *fakeStore) day(date string) fakeDay {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.days[date]; d != nil {
		return *d
	}
	return fakeDay{}
}

func (s *fakeStore) DayStates(ctx context.Context, from, to time.Time) (map[string]store.DayState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down.Load() {
		return nil, errDBDown
	}
	out := map[string]store.DayState{}
	if s.hideStates {
		return out, nil
	}
	for date, d := range s.days {
		if date >= from.Format(time.DateOnly) && date <= to.Format(time.DateOnly) {
			out[date] = d.state
		}
	}
	return out, nil
}

func (s *fakeStore) BeginDay(ctx context.Context, day time.Time, runID int64) (DayTx, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down.Load() {
		return nil, errDBDown
	}
	tx := &fakeTx{s: s, date: day.Format(time.DateOnly), runID: runID}
	if s.onBegin != nil {
		s.onBegin(tx.date)
	}
	if d := s.days[tx.date]; d != nil {
		st := d.state
		tx.stored = &st
	}
	return tx, nil
}

// update applies f to date's day under the lock, creating it if needed.
func (s *fakeStore) update(date string, f func(d *fakeDay)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.days[date]
	if d == nil {
		d = &fakeDay{}
		s.days[date] = d
	}
	f(d)
	d.state.Attempts++
}

func (s *fakeStore) MarkNoData(ctx context.Context, day time.Time, runID int64) (bool, error) {
	if s.down.Load() {
		return false, errDBDown
	}
	kept := false
	s.update(day.Format(time.DateOnly), func(d *fakeDay) {
		if d.state.Status == store.StatusLoaded {
			kept = true
			return
		}
		*d = fakeDay{state: store.DayState{Status: store.StatusNoData, Attempts: d.state.Attempts}}
	})
	return kept, nil
}

func (s *fakeStore) MarkFailed(ctx context.Context, day time.Time, runID int64, reason string) error {
	if s.down.Load() {
		return errDBDown
	}
	s.update(day.Format(time.DateOnly), func(d *fakeDay) {
		if d.state.Status != store.StatusLoaded {
			d.state.Status = store.StatusFailed
		}
		d.lastErr = reason
	})
	return nil
}

// fakeTx buffers a day's lines until Accept or Refuse.
type fakeTx struct {
	s       *fakeStore
	date    string
	runID   int64
	stored  *store.DayState
	lines   int
	rejects int
	ended   bool
}

func (t *fakeTx) Stored() *store.DayState { return t.stored }

func (t *fakeTx) Start(ctx context.Context) error { return nil }

func (t *fakeTx) Stream(ctx context.Context, fill func(LineWriter) error) error {
	return fill(t)
}

func (t *fakeTx) Add(r *purchases.Record) error {
	t.lines++
	return nil
}

func (t *fakeTx) Reject(raw []byte, rej *purchases.Rejection) error {
	t.rejects++
	return nil
}

func (t *fakeTx) Accept(ctx context.Context, sum etl.Summary) (etl.Outcome, error) {
	t.ended = true
	if t.s.down.Load() {
		return 0, errDBDown
	}
	if t.s.beforeCommit != nil {
		t.s.beforeCommit(t.date)
	}
	t.s.mu.Lock()
	fail := t.s.commitFails[t.date] > 0
	if fail {
		t.s.commitFails[t.date]--
	}
	t.s.mu.Unlock()
	if fail {
		return 0, errDBDown
	}
	if t.stored != nil && t.stored.Status == store.StatusLoaded && t.stored.Checksum.String == sum.Checksum {
		t.s.j.add("unchanged %s", t.date)
		return etl.Unchanged, nil
	}
	t.s.update(t.date, func(d *fakeDay) {
		d.state.Status, d.state.Checksum, d.state.Rows = store.StatusLoaded, sql.NullString{String: sum.Checksum, Valid: true}, t.lines
		d.lines, d.rejects, d.lastErr = t.lines, t.rejects, ""
	})
	t.s.j.add("commit %s", t.date)
	if t.date == t.s.downAfter {
		t.s.down.Store(true)
	}
	return etl.Loaded, nil
}

func (t *fakeTx) Refuse(ctx context.Context, sum etl.Summary, reason string) error {
	t.ended = true
	if t.s.down.Load() {
		return errDBDown
	}
	t.s.update(t.date, func(d *fakeDay) {
		if d.state.Status != store.StatusLoaded {
			d.lines = 0
		}
		d.state.Status, d.rejects, d.lastErr = store.StatusFailed, t.rejects, reason
	})
	t.s.j.add("refuse %s", t.date)
	return nil
}

func (t *fakeTx) DBTime() time.Duration { return 0 }
func (t *fakeTx) Rollback() error       { t.ended = true; return nil }

// line is a valid purchase line of date; n varies its content.
func line(date string, n int) string {
	return fmt.Sprintf(`{"client_id": %d, "gender": "F", "purchase_datetime": "%s", "purchase_time_as_seconds_from_midnight": %d, `+
		`"product_id": 7, "quantity": 2, "price_per_item": 500, "discount_per_item": 100, "total_price": 800}`, n+1, date, n%86400)
}

// rejected is a line refused for a zero quantity.
func rejected(date string) string {
	return strings.Replace(strings.Replace(line(date, 0), `"quantity": 2`, `"quantity": 0`, 1), `"total_price": 800`, `"total_price": 0`, 1)
}

// lines is n valid lines of date.
func lines(date string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = line(date, i)
	}
	return out
}
