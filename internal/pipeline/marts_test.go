package pipeline

import (
	"context"
	"errors"
	"sync"
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

// A pass of several days drains the marts behind its loads: the follower
// runs while days are still loading, starts no drain once the final update
// has begun, and its failures are not the pass's (the final update
// reports).
func TestFollowerDrainsWhileDaysLoad(t *testing.T) {
	f := newFixture(t)
	for _, d := range Days(date(t, "2023-01-01"), date(t, "2023-01-20")) {
		f.api.set(d.Format(time.DateOnly), answer{lines: lines(d.Format(time.DateOnly), 10)})
	}
	var mu sync.Mutex
	follows, final, late, duringLoads := 0, 0, false, 0
	finalDone := false
	f.p.Follow = func(context.Context) error {
		mu.Lock()
		follows++
		if finalDone {
			late = true
		}
		mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		return errors.New("deadlock detected")
	}
	f.p.Refresh = func(context.Context) (time.Duration, error) {
		mu.Lock()
		final++
		mu.Unlock()
		// Room for a drain that was wrongly started to show up.
		time.Sleep(100 * time.Millisecond)
		mu.Lock()
		finalDone = true
		mu.Unlock()
		return time.Millisecond, nil
	}
	// Day 10 commits only once a drain has run: the drains go on while
	// days load.
	f.db.beforeCommit = func(date string) {
		if date != "2023-01-10" {
			return
		}
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			mu.Lock()
			n := follows
			mu.Unlock()
			if n > 0 {
				duringLoads = n
				return
			}
		}
	}
	res, err := f.run(t, Plan{Days: days(t, "2023-01-01", "2023-01-20")})
	if err != nil || res.MartsErr != nil || res.Totals.DaysLoaded != 20 {
		t.Fatalf("pass: %v, MartsErr %v, %d days loaded; want 20 days and no error", err, res.MartsErr, res.Totals.DaysLoaded)
	}
	mu.Lock()
	defer mu.Unlock()
	if follows == 0 || duringLoads == 0 || final != 1 || late {
		t.Fatalf("%d background drains (%d while days were loading), %d final updates, a drain after the final update %v; want drains during the loads, then one final update",
			follows, duringLoads, final, late)
	}
	// A single day is its own final update: no follower.
	follows = 0
	mu.Unlock()
	f.api.set("2023-01-21", answer{lines: lines("2023-01-21", 10)})
	_, err = f.run(t, Plan{Days: days(t, "2023-01-21", "2023-01-21")})
	mu.Lock()
	if err != nil || follows != 0 {
		t.Fatalf("one-day pass: %v, %d background drains; want none", err, follows)
	}
}

// The final update does not wait for a drain in progress when the loads
// end: the marts' locks let it start at once (see package marts).
func TestFinalUpdateDoesNotWaitForTheDrain(t *testing.T) {
	f := newFixture(t)
	for _, d := range Days(date(t, "2023-01-01"), date(t, "2023-01-05")) {
		f.api.set(d.Format(time.DateOnly), answer{lines: lines(d.Format(time.DateOnly), 10)})
	}
	finalStarted := make(chan struct{})
	var once sync.Once
	waited := make(chan bool, 10)
	f.p.Follow = func(context.Context) error {
		// The first drain lasts until the final update starts.
		select {
		case <-finalStarted:
			waited <- false
		case <-time.After(10 * time.Second):
			waited <- true
		}
		return nil
	}
	f.p.Refresh = func(context.Context) (time.Duration, error) {
		once.Do(func() { close(finalStarted) })
		return time.Millisecond, nil
	}
	res, err := f.run(t, Plan{Days: days(t, "2023-01-01", "2023-01-05")})
	if err != nil || res.MartsErr != nil || res.Totals.DaysLoaded != 5 {
		t.Fatalf("pass: %v, MartsErr %v, %d days loaded; want 5 days and no error", err, res.MartsErr, res.Totals.DaysLoaded)
	}
	select {
	case w := <-waited:
		if w {
			t.Fatal("the final update waited for the drain in progress to end")
		}
	default:
		t.Fatal("no drain ran behind the loads")
	}
}
