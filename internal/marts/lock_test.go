package marts

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A Refresh that finds another one running waits for it, and gives up when
// its context ends.
func TestRefreshWaitsForTheRunningOne(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	holder, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, lockKey); err != nil {
		t.Fatal(err)
	}

	short, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	if _, err := Refresh(short, db, quiet()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Refresh while another holds the lock: %v, want a deadline error", err)
	}

	done := make(chan error, 1)
	go func() {
		_, err := Refresh(ctx, db, quiet())
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Refresh did not wait for the lock holder: %v", err)
	case <-time.After(1500 * time.Millisecond):
	}
	if _, err := holder.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, lockKey); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Refresh did not finish after the lock was released")
	}
	expectRows(t, db, []string{"succeeded|11"}, `SELECT min(status), count(*) FROM marts.refresh_state`)
}

// A waiting Refresh skips its rebuild when a refresh that started after it
// was called has succeeded meanwhile: that one saw all the caller's data.
func TestRefreshSkipsWhenALaterRefreshCoveredIt(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	holder, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, lockKey); err != nil {
		t.Fatal(err)
	}
	type result struct {
		took time.Duration
		err  error
	}
	done := make(chan result, 1)
	go func() {
		took, err := Refresh(ctx, db, quiet())
		done <- result{took, err}
	}()
	time.Sleep(1500 * time.Millisecond)
	// The holder plays a refresh that started after the call and succeeded.
	if _, err := holder.ExecContext(ctx, `INSERT INTO marts.refresh_state (mart, status, started_at, finished_at)
		VALUES ('all', 'succeeded', clock_timestamp(), clock_timestamp())`); err != nil {
		t.Fatal(err)
	}
	if _, err := holder.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, lockKey); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.took != 0 {
		t.Fatalf("Refresh = %v, %v; want a skip (0, nil)", r.took, r.err)
	}
	expectRows(t, db, []string{"false"}, `SELECT ispopulated::text FROM pg_matviews WHERE matviewname = 'daily_sales'`)

	// A call after that refresh does rebuild.
	if took := refresh(t, db); took <= 0 {
		t.Fatal("a later call skipped the refresh")
	}
	expectRows(t, db, []string{"true"}, `SELECT ispopulated::text FROM pg_matviews WHERE matviewname = 'daily_sales'`)
}
