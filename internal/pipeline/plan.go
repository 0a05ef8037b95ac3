// Package pipeline runs one ETL pass: it decides which business days to
// load, fetches each from the API, validates its lines, loads it in one
// transaction, and reports what happened.
package pipeline

import (
	"fmt"
	"time"
)

// Yesterday is the last business day that has ended at now in loc, as a
// date at UTC midnight (dates are calendar days, zone-free from here on).
func Yesterday(now time.Time, loc *time.Location) time.Time {
	y, m, d := now.In(loc).Date()
	return time.Date(y, m, d-1, 0, 0, 0, 0, time.UTC)
}

// CheckEnded refuses a day that has not ended yet in loc: the API would
// answer with generated data for it.
func CheckEnded(day, now time.Time, loc *time.Location) error {
	last := Yesterday(now, loc)
	if day.After(last) {
		return &DateNotEndedError{Day: day, Last: last, Zone: loc.String()}
	}
	return nil
}

// DateNotEndedError is a usage error: the day has not ended yet.
type DateNotEndedError struct {
	Day, Last time.Time
	Zone      string
}

func (e *DateNotEndedError) Error() string {
	return fmt.Sprintf("%s has not ended yet in %s: expected a date up to %s",
		e.Day.Format(time.DateOnly), e.Zone, e.Last.Format(time.DateOnly))
}

// Days lists the dates from..to inclusive.
func Days(from, to time.Time) []time.Time {
	var out []time.Time
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		out = append(out, d)
	}
	return out
}

// Shard keeps the days of shard index out of count: day i of the range goes
// to shard i mod count, so every shard gets old and new days alike and
// parallel pods finish together.
func Shard(days []time.Time, index, count int) []time.Time {
	if count <= 1 {
		return days
	}
	var out []time.Time
	for i, d := range days {
		if i%count == index {
			out = append(out, d)
		}
	}
	return out
}

// ParseDate parses a YYYY-MM-DD date strictly.
func ParseDate(s string) (time.Time, error) {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil || d.Format(time.DateOnly) != s {
		return time.Time{}, fmt.Errorf("%q is not a date: expected YYYY-MM-DD", s)
	}
	return d, nil
}
