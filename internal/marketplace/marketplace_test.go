package marketplace

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/marketplace-etl/marketplace-etl/internal/purchases"
)

func fetchAll(t *testing.T, c *Client, date string) ([]string, error) {
	t.Helper()
	d, err := c.Open(context.Background(), date)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	var out []string
	for {
		raw, err := d.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, err
		}
		out = append(out, string(raw))
	}
}

func newPair(t *testing.T, cfg SimConfig) (*Simulator, *Client) {
	sim := NewSimulator(cfg)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL+"/data", Limits{Timeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return sim, c
}

func TestSimulatorIsDeterministicButShuffled(t *testing.T) {
	_, c := newPair(t, SimConfig{})
	a, err := fetchAll(t, c, "2023-03-01")
	if err != nil {
		t.Fatal(err)
	}
	b, err := fetchAll(t, c, "2023-03-01")
	if err != nil {
		t.Fatal(err)
	}
	if len(a) < 1000 || len(a) > 10000 {
		t.Fatalf("%d lines, want 1000..10000", len(a))
	}
	if strings.Join(a, "\n") == strings.Join(b, "\n") {
		t.Fatal("row order did not change between calls")
	}
	var ca, cb purchases.Checksum
	for i := range a {
		ca.Add([]byte(a[i]))
		cb.Add([]byte(b[i]))
	}
	if ca.String() != cb.String() {
		t.Fatal("content differs between calls")
	}
	sort.Strings(a)
	sort.Strings(b)
	if strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Fatal("multiset differs between calls")
	}
}

func TestSimulatorQuirksAndStats(t *testing.T) {
	sim, c := newPair(t, SimConfig{})
	var lines, valid, zero, late int
	for _, date := range []string{"2023-01-01", "2023-01-02", "2023-01-03", "2023-01-04", "2023-01-05"} {
		rows, err := fetchAll(t, c, date)
		if err != nil {
			t.Fatal(err)
		}
		st := sim.Stats(date)
		v := 0
		for _, r := range rows {
			_, rej := purchases.Parse([]byte(r), date)
			switch {
			case rej == nil:
				v++
			case rej.Reason == purchases.ZeroQuantity:
				zero++
			case rej.Reason == purchases.TimeOutOfRange:
				late++
			default:
				t.Fatalf("unexpected rejection %v of %s", rej, r)
			}
		}
		if st.Lines != len(rows) || st.ValidLines != v {
			t.Fatalf("%s: stats %+v, fetched %d lines, %d valid", date, st, len(rows), v)
		}
		lines += len(rows)
		valid += v
	}
	if share := float64(zero) / float64(lines); share < 0.01 || share > 0.03 {
		t.Fatalf("zero-quantity share %.3f, want about 0.02", share)
	}
}

func TestNoDataSentenceBefore2022(t *testing.T) {
	_, c := newPair(t, SimConfig{})
	if _, err := fetchAll(t, c, "2021-12-31"); !errors.Is(err, ErrNoData) {
		t.Fatalf("got %v, want ErrNoData", err)
	}
}

func TestFaultsAreTransient(t *testing.T) {
	for name, cfg := range map[string]SimConfig{
		"5xx":        {ErrorRate: 1},
		"429":        {RateLimitRate: 1},
		"reset":      {ResetRate: 1},
		"html":       {HTMLErrorRate: 1},
		"truncated":  {TruncateRate: 1},
		"fail first": {FailFirst: 1},
	} {
		t.Run(name, func(t *testing.T) {
			_, c := newPair(t, cfg)
			_, err := fetchAll(t, c, "2023-05-05")
			if !IsTransient(err) {
				t.Fatalf("got %v, want a transient error", err)
			}
			if name == "429" && RetryAfter(err) != time.Second {
				t.Fatalf("Retry-After %v, want 1s", RetryAfter(err))
			}
		})
	}
}

func TestClientReadsJSONWhateverTheContentType(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "\ufeff [ {\"a\":1} , null ]")
	}))
	defer srv.Close()
	c, _ := NewClient(srv.URL, Limits{Timeout: time.Second}, nil)
	rows, err := fetchAll(t, c, "2023-01-01")
	if err != nil || len(rows) != 2 || rows[0] != `{"a":1}` || rows[1] != "null" {
		t.Fatalf("rows %q, err %v", rows, err)
	}
}

func TestClientStallTimeout(t *testing.T) {
	_, c := newPair(t, SimConfig{TruncateRate: 1, StallAfter: time.Minute})
	c.limits.Timeout = 200 * time.Millisecond
	start := time.Now()
	_, err := fetchAll(t, c, "2023-05-05")
	if !IsTransient(err) {
		t.Fatalf("got %v, want transient", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("stalled body was not cut off by the timeout")
	}
}

func TestNoDataSentenceInEveryForm(t *testing.T) {
	for _, body := range []string{
		NoDataSentence,
		"\n" + NoDataSentence + "\n",
		`"` + NoDataSentence + `"`,
		`"\u0418\u043d\u0444\u043e\u0440\u043c\u0430\u0446\u0438\u044f \u0437\u0430 \u0431\u043e\u043b\u0435\u0435 \u0440\u0430\u043d\u043d\u0438\u0435 \u043f\u0435\u0440\u0438\u043e\u0434\u044b \u043e\u0442\u0441\u0443\u0442\u0441\u0442\u0432\u0443\u0435\u0442"`,
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, body)
		}))
		c, _ := NewClient(srv.URL, Limits{Timeout: time.Second}, nil)
		if _, err := fetchAll(t, c, "2021-05-05"); !errors.Is(err, ErrNoData) {
			t.Errorf("body %q: got %v, want ErrNoData", body, err)
		}
		srv.Close()
	}
	if isNoDataSentence([]byte("<html>error</html>")) {
		t.Error("an error page taken for the no-data sentence")
	}
}
