package marketplace

import (
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The cases of issue 13: a server that trickles, bloats, appends or
// garbles must cost a bounded time and memory, and its text must be
// storable.

func hostile(t *testing.T, limits Limits, h http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL+"/data", limits, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBodyTimeoutBoundsATrickle(t *testing.T) {
	c := hostile(t, Limits{Timeout: 2 * time.Second, BodyTimeout: 500 * time.Millisecond}, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `[{"a":1}, `)
		for {
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
			_, _ = io.WriteString(w, " ")
		}
	})
	start := time.Now()
	_, err := fetchAll(t, c, "2023-05-05")
	if !IsTransient(err) || !strings.Contains(err.Error(), "ETL_HTTP_BODY_TIMEOUT") {
		t.Fatalf("got %v, want a transient error naming ETL_HTTP_BODY_TIMEOUT", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("a trickling body took %s, the bound is 500ms", took)
	}
}

func TestStallNamesTheTimeout(t *testing.T) {
	c := hostile(t, Limits{Timeout: 200 * time.Millisecond}, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `[{"a":1}, `)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	if _, err := fetchAll(t, c, "2023-05-05"); !IsTransient(err) || !strings.Contains(err.Error(), "ETL_HTTP_TIMEOUT") {
		t.Fatalf("got %v, want a transient error naming ETL_HTTP_TIMEOUT", err)
	}
}

// TestGzipBombIsCutAtTheBodyLimit: 100 MB of JSON whitespace sent as about
// 100 KB of gzip stops at ETL_MAX_BODY_BYTES, decompressed.
func TestGzipBombIsCutAtTheBodyLimit(t *testing.T) {
	c := hostile(t, Limits{MaxBodyBytes: 4 << 20}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		zw, _ := gzip.NewWriterLevel(w, gzip.BestCompression)
		_, _ = io.WriteString(zw, "[")
		_, _ = io.Copy(zw, io.LimitReader(repeated(' '), 100<<20))
		_, _ = io.WriteString(zw, "]")
		_ = zw.Close()
	})
	_, err := fetchAll(t, c, "2023-05-05")
	if !IsTransient(err) || !strings.Contains(err.Error(), "ETL_MAX_BODY_BYTES") {
		t.Fatalf("got %v, want a transient error naming ETL_MAX_BODY_BYTES", err)
	}
}

func TestBodyOfExactlyTheLimitIsRead(t *testing.T) {
	body := `[{"a":1}, {"b":2}]`
	c := hostile(t, Limits{MaxBodyBytes: int64(len(body))}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		_, _ = io.WriteString(zw, body)
		_ = zw.Close()
	})
	if rows, err := fetchAll(t, c, "2023-05-05"); err != nil || len(rows) != 2 {
		t.Fatalf("rows %q, err %v", rows, err)
	}
}

func TestDataAfterTheArrayIsTransient(t *testing.T) {
	for _, body := range []string{`[{"a":1}][{"b":2}]`, "[{\"a\":1}]\n<html><body>Error</body></html>"} {
		c := hostile(t, Limits{}, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, body) })
		if _, err := fetchAll(t, c, "2023-05-05"); !IsTransient(err) || !strings.Contains(err.Error(), "after the closing bracket") {
			t.Errorf("%q: got %v, want a transient error about data after the array", body, err)
		}
	}
}

func TestLongElementThenTheRestOfTheDay(t *testing.T) {
	c := hostile(t, Limits{MaxLineBytes: 64 << 10}, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `[{"a":1}, {"big":"`)
		_, _ = io.Copy(w, io.LimitReader(repeated('x'), 10<<20))
		_, _ = io.WriteString(w, `"}, {"b":2}]`)
	})
	d, err := c.Open(t.Context(), "2023-05-05")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var got []string
	for {
		el, err := d.Next()
		var long *LongElement
		if errors.As(err, &long) {
			if long.Size != 10<<20+10 || len(el) != LongElementPrefix || long.Kept != len(el) || !strings.HasPrefix(string(el), `{"big":"xxx`) {
				t.Fatalf("long element: %d bytes kept, %+v", len(el), long)
			}
			got = append(got, "LONG")
			continue
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(el))
	}
	if strings.Join(got, "|") != `{"a":1}|LONG|{"b":2}` {
		t.Fatalf("got %q", got)
	}
}

// TestErrorPageCutBetweenCharacters: a long Cyrillic 503 page (and one
// that is not even UTF-8) becomes storable text of bounded length.
func TestErrorPageCutBetweenCharacters(t *testing.T) {
	for _, page := range []string{strings.Repeat("Сервис временно недоступен. ", 40), "\xff\xfe" + strings.Repeat("ошибка ", 100)} {
		c := hostile(t, Limits{}, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, page)
		})
		_, err := fetchAll(t, c, "2023-05-05")
		if !IsTransient(err) {
			t.Fatalf("got %v, want transient", err)
		}
		if msg := err.Error(); !utf8.ValidString(msg) || len(msg) > 300 || !strings.HasSuffix(msg, "…") {
			t.Fatalf("error text %q (%d bytes): want valid UTF-8 cut to about 200 bytes", msg, len(msg))
		}
	}
}

// TestErrorsNeverQuoteTheURL: the URL may carry credentials (user info, a
// token parameter); errors end up in the database and the logs.
func TestErrorsNeverQuoteTheURL(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.Listener.Addr().String()
	srv.Close() // nothing listens there any more: connection refused
	c, err := NewClient("http://alice:s3cr3t@"+addr+"/data?token=t0k3n", Limits{Timeout: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Open(t.Context(), "2023-05-05")
	if !IsTransient(err) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("got %v, want a transient connection error", err)
	}
	_, perr := NewClient("http://alice:s3cr3t@host:port:bad/data?token=t0k3n", Limits{}, nil)
	for _, e := range []error{err, perr} {
		if e == nil {
			t.Fatal("no error")
		}
		if msg := e.Error(); strings.Contains(msg, "s3cr3t") || strings.Contains(msg, "t0k3n") || strings.Contains(msg, "alice") {
			t.Fatalf("error quotes the URL's credentials: %s", msg)
		}
	}
}
