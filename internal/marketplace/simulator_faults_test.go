package marketplace

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestFaultFirstAndFaultDates: the knobs that make faults deterministic
// bursts (the first N requests of a date) or persistent on some dates only.
func TestFaultFirstAndFaultDates(t *testing.T) {
	get := func(srv *httptest.Server, date string) int {
		t.Helper()
		resp, err := http.Get(srv.URL + "/data?date=" + date)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	burst := httptest.NewServer(NewSimulator(SimConfig{RowsPerDay: 5, ErrorRate: 1, FaultFirst: 2}))
	defer burst.Close()
	for i, want := range []int{5, 5, 2, 2} {
		if got := get(burst, "2023-01-01") / 100; got != want {
			t.Fatalf("burst: request %d answered %dxx, want %dxx", i+1, got, want)
		}
	}
	if got := get(burst, "2023-01-02") / 100; got != 5 {
		t.Fatalf("burst: the first request of another date answered %dxx, want 5xx", got)
	}
	dates := httptest.NewServer(NewSimulator(SimConfig{RowsPerDay: 5, ErrorRate: 1, FaultDates: map[string]bool{"2023-01-02": true}}))
	defer dates.Close()
	for i := 0; i < 3; i++ {
		if got := get(dates, "2023-01-01"); got != 200 {
			t.Fatalf("fault dates: a clean date answered %d", got)
		}
		if got := get(dates, "2023-01-02") / 100; got != 5 {
			t.Fatalf("fault dates: the faulty date answered %dxx", got)
		}
	}
}
