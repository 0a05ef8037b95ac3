package pipeline

import (
	"strings"
	"testing"
	"time"
)

// FuzzParseDate: any string is either refused, or a date whose canonical
// form is exactly the input (no lenient parsing of 2023-02-30, +2023-…,
// surrounding spaces).
func FuzzParseDate(f *testing.F) {
	for _, s := range []string{"2023-01-31", "2023-02-30", "2024-02-29", "2023-2-1", " 2023-01-01", "2023-01-01T00:00:00Z",
		"0000-01-01", "9999-12-31", "", "yesterday", "2023-01-01\x00", "２０２３-01-01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDate(s)
		if err != nil {
			if !strings.Contains(err.Error(), "expected YYYY-MM-DD") {
				t.Fatalf("error %q does not say what was expected", err)
			}
			return
		}
		if d.Format(time.DateOnly) != s || d.Location() != time.UTC || d.Hour()+d.Minute()+d.Second()+d.Nanosecond() != 0 {
			t.Fatalf("ParseDate(%q) = %v", s, d)
		}
	})
}

// FuzzRangeAndShards: for any range and shard count, Days lists each date
// once in order, the shards split it without overlap or gap, and CheckEnded
// refuses exactly the days after yesterday.
func FuzzRangeAndShards(f *testing.F) {
	f.Add(int64(19358), uint16(30), uint8(3), int64(1700000000), "Europe/Moscow")
	f.Add(int64(0), uint16(0), uint8(1), int64(0), "UTC")
	f.Add(int64(19000), uint16(400), uint8(17), int64(1711846800), "Pacific/Kiritimati")
	f.Add(int64(19000), uint16(5), uint8(9), int64(1711846800), "America/Adak")
	f.Fuzz(func(t *testing.T, fromDay int64, span uint16, count uint8, now int64, zone string) {
		if fromDay < -100000 || fromDay > 100000 || span > 2000 || now < -1e10 || now > 1e11 {
			return
		}
		loc, err := time.LoadLocation(zone)
		if err != nil {
			return
		}
		from := time.Unix(fromDay*86400, 0).UTC()
		to := from.AddDate(0, 0, int(span))
		days := Days(from, to)
		if len(days) != int(span)+1 {
			t.Fatalf("Days(%s, %s): %d days, want %d", from, to, len(days), span+1)
		}
		for i, d := range days {
			if d.Unix() != (fromDay+int64(i))*86400 {
				t.Fatalf("day %d is %s", i, d)
			}
		}
		n := int(count)
		if n == 0 {
			n = 1
		}
		seen := map[time.Time]int{}
		for i := 0; i < n; i++ {
			for _, d := range Shard(days, i, n) {
				seen[d]++
			}
		}
		if len(seen) != len(days) {
			t.Fatalf("%d shards cover %d of %d days", n, len(seen), len(days))
		}
		for d, c := range seen {
			if c != 1 {
				t.Fatalf("%s is in %d shards", d, c)
			}
		}
		at := time.Unix(now, 0)
		last := Yesterday(at, loc)
		y, m, dd := at.In(loc).Date()
		if today := time.Date(y, m, dd, 0, 0, 0, 0, time.UTC); !last.Equal(today.AddDate(0, 0, -1)) {
			t.Fatalf("Yesterday(%s in %s) = %s", at, loc, last)
		}
		for _, d := range []time.Time{from, to, last, last.AddDate(0, 0, 1)} {
			err := CheckEnded(d, at, loc)
			if (err != nil) != d.After(last) {
				t.Fatalf("CheckEnded(%s, %s in %s) = %v", d.Format(time.DateOnly), at, loc, err)
			}
		}
	})
}
