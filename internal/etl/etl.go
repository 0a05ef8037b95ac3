// Package etl is the vocabulary of a pass, shared by the pipeline that runs
// it, the store that records it and the metrics that report it: what a day
// ended as, what its load found, and what a run did in total.
package etl

import (
	"fmt"
	"time"

	"github.com/marketplace-etl/marketplace-etl/internal/purchases"
)

// Outcome is what one day of a pass ended as. The zero value is not an
// outcome, so a report that was never filled in cannot pass for one.
type Outcome int

const (
	// Loaded: the day's lines were committed (new or changed content).
	Loaded Outcome = iota + 1
	// Unchanged: the API sent the content already loaded; nothing written.
	Unchanged
	// NoData: the API has no data for the day.
	NoData
	// Failed: the day could not be loaded (or was refused) in this pass.
	Failed
	// Skipped: another process loaded the day meanwhile; nothing was done.
	Skipped
)

// Outcomes are the outcomes counted as the days of a run (a skipped day is
// counted apart), in the order they are reported.
var Outcomes = []Outcome{Loaded, Unchanged, NoData, Failed}

// String is the outcome's name, also its metric label value.
func (o Outcome) String() string {
	switch o {
	case Loaded:
		return "loaded"
	case Unchanged:
		return "unchanged"
	case NoData:
		return "no_data"
	case Failed:
		return "failed"
	case Skipped:
		return "skipped"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Summary is what a day's load found.
type Summary struct {
	Fetched  int
	Loaded   int
	Rejected int
	ByReason map[purchases.Reason]int
	Checksum string
	DBTime   time.Duration // time spent waiting on the database
}

// DayReport is the outcome of one day.
type DayReport struct {
	Date     time.Time
	Outcome  Outcome
	Summary  Summary
	Duration time.Duration // fetch + validate + load, retries included
	Attempts int
	Err      error
}

// Run describes one invocation, as recorded in marketplace.etl_runs.
type Run struct {
	Mode       string // run or backfill
	From, To   time.Time
	ShardIndex int
	ShardCount int
	Version    string
}

// RunTotals is what a run did.
type RunTotals struct {
	DaysLoaded, DaysUnchanged, DaysNoData, DaysFailed int
	RowsLoaded, RowsRejected                          int64
}

// Days is the number of days counted with outcome o.
func (t RunTotals) Days(o Outcome) int {
	switch o {
	case Loaded:
		return t.DaysLoaded
	case Unchanged:
		return t.DaysUnchanged
	case NoData:
		return t.DaysNoData
	case Failed:
		return t.DaysFailed
	}
	return 0
}

// Result sums a pass up.
type Result struct {
	Totals        RunTotals
	Skipped       int
	Failed        []DayReport
	RejectFailure bool // a day was refused for its reject ratio
	MartsErr      error
	NewestLoaded  time.Time
}

// Add counts one finished day.
func (r *Result) Add(rep DayReport) {
	switch rep.Outcome {
	case Loaded:
		r.Totals.DaysLoaded++
		r.Totals.RowsLoaded += int64(rep.Summary.Loaded)
		r.Totals.RowsRejected += int64(rep.Summary.Rejected)
	case Unchanged:
		r.Totals.DaysUnchanged++
	case NoData:
		r.Totals.DaysNoData++
	case Skipped:
		r.Skipped++
	default:
		r.Totals.DaysFailed++
		r.Totals.RowsRejected += int64(rep.Summary.Rejected)
		r.Failed = append(r.Failed, rep)
	}
}
