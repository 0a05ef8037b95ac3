package pipeline

import (
	"testing"
	"time"
)

func TestYesterdayIsInTheBusinessTimeZone(t *testing.T) {
	msk, _ := time.LoadLocation("Europe/Moscow")
	cases := []struct {
		now  string // UTC
		want string
	}{
		{"2026-11-25T20:59:59Z", "2026-11-24"}, // 23:59:59 in Moscow
		{"2026-11-25T21:00:00Z", "2026-11-25"}, // 00:00 in Moscow: the 25th has ended
		{"2026-01-01T04:00:00Z", "2025-12-31"},
		{"2024-03-01T00:00:00Z", "2024-02-29"},
	}
	for _, c := range cases {
		now, _ := time.Parse(time.RFC3339, c.now)
		if got := Yesterday(now, msk).Format(time.DateOnly); got != c.want {
			t.Errorf("Yesterday(%s) = %s, want %s", c.now, got, c.want)
		}
	}
}

func TestCheckEndedRefusesToday(t *testing.T) {
	msk, _ := time.LoadLocation("Europe/Moscow")
	now, _ := time.Parse(time.RFC3339, "2026-11-25T12:00:00Z")
	for date, ok := range map[string]bool{"2026-11-24": true, "2026-11-25": false, "2027-01-01": false, "2021-06-01": true} {
		d, _ := ParseDate(date)
		err := CheckEnded(d, now, msk)
		if (err == nil) != ok {
			t.Errorf("CheckEnded(%s) = %v, want ok=%v", date, err, ok)
		}
	}
}

func TestShardsPartitionTheRange(t *testing.T) {
	from, _ := ParseDate("2023-01-01")
	to, _ := ParseDate("2023-03-31")
	days := Days(from, to)
	if len(days) != 90 {
		t.Fatalf("%d days, want 90", len(days))
	}
	for _, n := range []int{1, 2, 3, 7, 100} {
		seen := map[time.Time]int{}
		for i := 0; i < n; i++ {
			shard := Shard(days, i, n)
			if n <= len(days) && (len(shard) < len(days)/n || len(shard) > len(days)/n+1) {
				t.Errorf("shard %d/%d has %d days: unbalanced", i, n, len(shard))
			}
			for _, d := range shard {
				seen[d]++
			}
		}
		if len(seen) != len(days) {
			t.Errorf("%d shards cover %d of %d days", n, len(seen), len(days))
		}
		for d, c := range seen {
			if c != 1 {
				t.Errorf("%d shards: %s in %d shards", n, d.Format(time.DateOnly), c)
			}
		}
	}
}

func TestParseDateIsStrict(t *testing.T) {
	for _, s := range []string{"2023-1-5", "2023-02-30", "05.01.2023", "2023-01-05T00:00:00", " 2023-01-05", ""} {
		if _, err := ParseDate(s); err == nil {
			t.Errorf("ParseDate(%q) accepted", s)
		}
	}
	if d, err := ParseDate("2024-02-29"); err != nil || d.Format(time.DateOnly) != "2024-02-29" {
		t.Errorf("ParseDate(2024-02-29) = %v, %v", d, err)
	}
}

func TestBackoffGrowsAndHonoursRetryAfter(t *testing.T) {
	p := &Pipeline{Settings: Settings{Backoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second}}
	for attempt := 1; attempt <= 10; attempt++ {
		d := p.backoff(attempt, 0)
		ceil := min(100*time.Millisecond<<(attempt-1), 2*time.Second)
		if d < ceil/2 || d > ceil {
			t.Errorf("attempt %d: backoff %s outside [%s, %s]", attempt, d, ceil/2, ceil)
		}
	}
	if d := p.backoff(1, 1500*time.Millisecond); d != 1500*time.Millisecond {
		t.Errorf("Retry-After 1.5s gave %s", d)
	}
	if d := p.backoff(1, time.Hour); d != 2*time.Second {
		t.Errorf("Retry-After 1h gave %s, want the 2s cap", d)
	}
}
