package store

import (
	"testing"
	"time"

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
