package pipeline

import (
	"context"
	"time"

	"github.com/marketplace-etl/marketplace-etl/internal/etl"
	"github.com/marketplace-etl/marketplace-etl/internal/marketplace"
	"github.com/marketplace-etl/marketplace-etl/internal/purchases"
	"github.com/marketplace-etl/marketplace-etl/internal/store"
)

// DaySource fetches one business day's lines: the marketplace API.
type DaySource interface {
	// Open requests day. An answer without data is marketplace.ErrNoData;
	// a fault worth retrying is a *marketplace.TransientError.
	Open(ctx context.Context, day time.Time) (DayLines, error)
}

// DayLines is one day's response, read line by line.
type DayLines interface {
	// NextScanned returns the next raw line; io.EOF after the last. A
	// line over the line limit comes as its start with a
	// *marketplace.LongElement. scan may measure the line as it parses
	// it, and scanned says it did (see marketplace.Day.NextScanned).
	NextScanned(scan func(b []byte) int) (line []byte, scanned bool, err error)
	Received() <-chan struct{} // closed once the whole body is in
	Close()
}

// DayStore keeps the days: their state, and the one transaction in which a
// day is replaced. A lost database is a *store.UnavailableError.
type DayStore interface {
	DayStates(ctx context.Context, from, to time.Time) (map[string]store.DayState, error)
	BeginDay(ctx context.Context, day time.Time, runID int64) (DayTx, error)
	// MarkNoData records a day without data; keptLoaded: the day already
	// had lines, which are kept.
	MarkNoData(ctx context.Context, day time.Time, runID int64) (keptLoaded bool, err error)
	MarkFailed(ctx context.Context, day time.Time, runID int64, reason string) error
}

// DayTx is one day's load; see store.DayTx.
type DayTx interface {
	Stored() *store.DayState // nil when the day was never attempted
	Start(ctx context.Context) error
	Stream(ctx context.Context, fill func(LineWriter) error) error
	Accept(ctx context.Context, sum etl.Summary) (etl.Outcome, error)
	Refuse(ctx context.Context, sum etl.Summary, reason string) error
	DBTime() time.Duration
	Rollback() error
}

// LineWriter takes a day's lines inside DayTx.Stream.
type LineWriter interface {
	Add(r *purchases.Record) error
	Reject(raw []byte, rej *purchases.Rejection) error
}

// APISource is the marketplace client as a DaySource.
func APISource(c *marketplace.Client) DaySource { return apiSource{c} }

type apiSource struct{ c *marketplace.Client }

func (a apiSource) Open(ctx context.Context, day time.Time) (DayLines, error) {
	d, err := a.c.Open(ctx, day.Format(time.DateOnly))
	if err != nil {
		return nil, err
	}
	return d, nil
}

// DBStore is the PostgreSQL store as a DayStore.
func DBStore(s *store.Store) DayStore { return dbStore{s} }

type dbStore struct{ *store.Store }

func (s dbStore) BeginDay(ctx context.Context, day time.Time, runID int64) (DayTx, error) {
	tx, err := s.Store.BeginDay(ctx, day, runID)
	if err != nil {
		return nil, err
	}
	return dbDayTx{tx}, nil
}

type dbDayTx struct{ *store.DayTx }

func (t dbDayTx) Stream(ctx context.Context, fill func(LineWriter) error) error {
	return t.DayTx.Stream(ctx, func(w *store.DayWriter) error { return fill(w) })
}
