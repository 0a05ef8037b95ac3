package pipeline

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/marketplace-etl/marketplace-etl/internal/etl"
)

// StatusLine is a terminal's last line, kept below the log lines: whoever
// writes the log to that terminal redraws it after every line, so a bar and
// log lines never share a line.
type StatusLine interface {
	SetStatus(line string) // "" removes it
}

// Progress reports a pass day by day: one log line per day with its rows,
// rate and the ETA of the pass, and a bar on a terminal.
type Progress struct {
	Log *slog.Logger
	Bar StatusLine // the terminal the log goes to, or nil

	total int
	start time.Time
	rows  int64
}

// Start begins a pass of n days.
func (p *Progress) Start(n int) {
	p.total, p.start, p.rows = n, time.Now(), 0
}

// Day reports day i (1-based) of the pass.
func (p *Progress) Day(i int, r etl.DayReport) {
	p.rows += int64(r.Summary.Fetched)
	elapsed := time.Since(p.start)
	eta := time.Duration(0)
	if i > 0 {
		eta = elapsed / time.Duration(i) * time.Duration(p.total-i)
	}
	rate := 0.0
	if s := r.Duration.Seconds(); s > 0 {
		rate = float64(r.Summary.Fetched) / s
	}
	attrs := []any{"date", r.Date.Format(time.DateOnly), "outcome", r.Outcome.String(),
		"rows_loaded", r.Summary.Loaded, "rows_rejected", r.Summary.Rejected,
		"rows_per_second", int(rate), "duration", r.Duration.Round(time.Millisecond),
		"progress", fmt.Sprintf("%d/%d", i, p.total), "eta", eta.Round(time.Second)}
	if r.Outcome == etl.Failed {
		attrs = append(attrs, "err", r.Err)
		p.Log.Error("day done", attrs...)
	} else {
		p.Log.Info("day done", attrs...)
	}
	if p.Bar != nil && p.total > 0 {
		const width = 30
		filled := width * i / p.total
		p.Bar.SetStatus(fmt.Sprintf("[%s%s] %d/%d days  %d rows  ETA %s", strings.Repeat("=", filled),
			strings.Repeat(" ", width-filled), i, p.total, p.rows, eta.Round(time.Second)))
	}
}

// Done removes the bar: what follows is the pass's summary line.
func (p *Progress) Done() {
	if p.Bar != nil && p.total > 0 {
		p.Bar.SetStatus("")
	}
}
