package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Every pass brings the marts up to date, a pass that loads nothing too
// (an earlier pass may have been killed before its marts work), and a
// marts failure is the pass's MartsErr; a pass that lost its database does
// not try.
func TestEveryPassUpdatesTheMarts(t *testing.T) {
	f := newFixture(t)
	f.api.set("2023-01-01", answer{lines: lines("2023-01-01", 10)})
	calls := 0
	var fail error
	f.p.Refresh = func(context.Context) (time.Duration, error) {
		calls++
		return time.Millisecond, fail
	}
	plan := Plan{Days: days(t, "2023-01-01", "2023-01-01")}
	if res, err := f.run(t, plan); err != nil || calls != 1 || res.MartsErr != nil {
		t.Fatalf("first pass: %v, %d marts updates, MartsErr %v; want one update", err, calls, res.MartsErr)
	}
	res, err := f.run(t, plan) // the day is done: nothing to load
	if err != nil || res.Skipped != 1 || calls != 2 {
		t.Fatalf("pass loading nothing: %v, skipped %d, %d marts updates; want the marts updated", err, res.Skipped, calls)
	}
	fail = errors.New("lock timeout")
	if res, err := f.run(t, plan); err != nil || !errors.Is(res.MartsErr, fail) {
		t.Fatalf("failing marts: %v, MartsErr %v; want the marts error in the result", err, res.MartsErr)
	}
	f.db.down.Store(true)
	f.api.set("2023-01-02", answer{lines: lines("2023-01-02", 10)})
	if _, err := f.run(t, Plan{Days: days(t, "2023-01-02", "2023-01-02")}); err == nil || calls != 3 {
		t.Fatalf("database down: %v, %d marts updates; want a fatal error and no marts update", err, calls)
	}
}
