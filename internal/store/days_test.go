package store

import (
	"context"
	"testing"
	"time"

	"github.com/marketplace-etl/marketplace-etl/internal/etl"
	"github.com/marketplace-etl/marketplace-etl/internal/purchases"
)

// The fast formatting of purchased_at must equal time.Format, also on days
// whose UTC offset changes (a DST switch) and in zones with odd offsets.
func TestAppendPurchasedAtMatchesTimeFormat(t *testing.T) {
	for _, c := range []struct{ zone, date string }{
		{"Europe/Moscow", "2023-01-05"},
		{"Europe/Moscow", "2011-03-27"}, // Moscow's last switch to summer time
		{"Europe/Berlin", "2024-10-27"}, // a 25-hour day
		{"Asia/Kolkata", "2024-06-01"},  // +05:30
		{"UTC", "2024-02-29"},
	} {
		loc, err := time.LoadLocation(c.zone)
		if err != nil {
			t.Fatal(err)
		}
		day, _ := time.ParseInLocation(time.DateOnly, c.date, loc)
		w := &DayWriter{d: &DayTx{date: c.date, dayStart: day}}
		for _, sec := range []int64{0, 1, 3599, 3600, 7199, 7200, 10799, 43210, 86399} {
			r := purchases.Record{Seconds: sec}
			got := string(w.appendPurchasedAt(nil, &r))
			want := r.PurchasedAt(day).Format("2006-01-02 15:04:05Z07:00")
			if c.zone == "UTC" {
				want = r.PurchasedAt(day).Format("2006-01-02 15:04:05-07:00")
			}
			gotT, err1 := time.Parse("2006-01-02 15:04:05Z07:00", got)
			wantT, err2 := time.Parse("2006-01-02 15:04:05Z07:00", want)
			if err1 != nil || err2 != nil || !gotT.Equal(wantT) {
				t.Errorf("%s %s +%ds: got %s, want %s (%v %v)", c.zone, c.date, sec, got, want, err1, err2)
			}
		}
	}
}

// TestSecondLoaderOfADayReadsTheFirstOnesResult: a loader that waits for
// the day's lock reads the day's state as the first loader committed it,
// not as it was when the wait began (the lock and the read share one round
// trip, but not one snapshot).
func TestSecondLoaderOfADayReadsTheFirstOnesResult(t *testing.T) {
	ctx := context.Background()
	s := migratedStore(t)
	day := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	first, err := s.BeginDay(ctx, day, 0)
	if err != nil {
		t.Fatal(err)
	}
	if first.Stored() != nil {
		t.Fatalf("a day never attempted has state %+v", *first.Stored())
	}
	type begun struct {
		tx  *DayTx
		err error
	}
	second := make(chan begun, 1)
	go func() {
		tx, err := s.BeginDay(ctx, day, 0)
		second <- begun{tx, err}
	}()
	// Commit only once the second loader waits for the lock.
	for waiting := 0; waiting == 0; {
		if err := s.DB().QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		select {
		case b := <-second:
			t.Fatalf("the second loader did not wait for the first: %+v", b)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := first.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rec := purchases.Record{ClientID: 1, Gender: 'F', Date: "2024-03-01", Seconds: 60, ProductID: 2, Quantity: 1, Price: 100, Total: 100}
	if err := first.Stream(ctx, func(w *DayWriter) error { return w.Add(&rec) }); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Accept(ctx, etl.Summary{Fetched: 1, Loaded: 1, Checksum: "v1:1:test"}); err != nil {
		t.Fatal(err)
	}
	b := <-second
	if b.err != nil {
		t.Fatal(b.err)
	}
	defer b.tx.Rollback()
	if st := b.tx.Stored(); st == nil || st.Status != StatusLoaded || st.Checksum.String != "v1:1:test" || st.Rows != 1 {
		t.Fatalf("the second loader read %+v, want the first one's loaded day", st)
	}
}
