package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/marketplace-etl/marketplace-etl/internal/marketplace"
)

// The hostile upstreams of issue 13, through the real binary: each one is
// bounded in time and memory, and leaves an exact record.

// maxRSS is the bound on the process's peak resident memory whatever the
// body (the chart's limit is 512Mi; the target 128 MiB).
const maxRSS = 128 << 20

// runMeasured runs the binary like runFor and also returns its peak RSS.
func (e *env) runMeasured(limit time.Duration, extraEnv []string, args ...string) (int, string, int64) {
	e.t.Helper()
	cmd := e.command(extraEnv, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	timer := time.AfterFunc(limit, func() { _ = cmd.Process.Kill() })
	err := cmd.Wait()
	timer.Stop()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10 // KiB on Linux
	return code, stderr.String(), rss
}

func TestHostileUpstreamsAreBounded(t *testing.T) {
	const day = "2023-06-01"
	russian503 := strings.Repeat("Сервис временно недоступен, попробуйте позже. ", 30)
	for _, c := range []struct {
		name   string
		cfg    marketplace.SimConfig
		env    []string
		status string // the day's status afterwards
		say    string // what last_error or a rejected line's detail says
	}{
		{"a 100 MB line among good ones", marketplace.SimConfig{LongLineBytes: 100 << 20}, nil, "loaded", "ETL_MAX_LINE_BYTES"},
		{"a gzip body expanding to 1 GB", marketplace.SimConfig{GzipBombBytes: 1 << 30}, nil, "failed", "ETL_MAX_BODY_BYTES"},
		{"an HTML page after the array", marketplace.SimConfig{TrailingData: "<html><body>oops</body></html>"}, nil, "failed", "after the closing bracket"},
		{"a second array after the first", marketplace.SimConfig{TrailingData: `[{"client_id": 1}]`}, nil, "failed", "after the closing bracket"},
		{"a long 503 page in Russian", marketplace.SimConfig{ErrorRate: 1, ErrorBody: russian503}, nil, "failed", "Сервис временно недоступен"},
		{"a body trickling a byte every 20 ms", marketplace.SimConfig{TrickleEvery: 20 * time.Millisecond}, []string{"ETL_HTTP_TIMEOUT=1s", "ETL_HTTP_BODY_TIMEOUT=1s"}, "failed", "ETL_HTTP_BODY_TIMEOUT"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			cfg.RowsPerDay = 59
			e := newEnv(t, cfg)
			code, stderr, rss := e.runMeasured(2*time.Minute, append([]string{"ETL_HTTP_RETRIES=1"}, c.env...), "run", "--date", day)
			if got := e.dayStates(); got != day+"="+c.status {
				t.Fatalf("exit %d, day states %q, want %s=%s\n%s", code, got, day, c.status, stderr)
			}
			if rss > maxRSS {
				t.Errorf("peak RSS %d MiB, above %d MiB", rss>>20, maxRSS>>20)
			}
			t.Logf("exit %d, peak RSS %d MiB", code, rss>>20)
			said := e.scalar(`SELECT coalesce(last_error, '') FROM marketplace.day_loads WHERE purchase_date = $1`, day)
			if c.status == "loaded" {
				said = e.scalar(`SELECT string_agg(detail || ' (' || length(raw) || ' chars kept)', '; ') FROM marketplace.rejected_purchases WHERE purchase_date = $1 AND reason = 'too_long'`, day)
				if !strings.Contains(said, "1024 chars kept") {
					t.Fatalf("too_long rejects: %q", said)
				}
				// The simulator's 59 lines have their usual quirks (quantity 0...).
				if got, want := e.scalar(`SELECT count(*) FROM marketplace.purchases WHERE purchase_date = $1`, day), e.sim.Stats(day).ValidLines; got != fmt.Sprint(want) {
					t.Fatalf("%s lines loaded, want the simulator's %d valid ones", got, want)
				}
			}
			if !strings.Contains(said, c.say) || !utf8.ValidString(said) {
				t.Fatalf("the record says %q, want it to mention %q", said, c.say)
			}
			if got := e.scalar(`SELECT string_agg(status, ',') FROM marketplace.etl_runs`); got == "" || strings.Contains(got, "running") {
				t.Fatalf("runs %q: none may be left running", got)
			}
		})
	}
}

// TestCheckRefusesAReadOnlyDatabase: check used to report everything fine
// on a database that refuses writes.
func TestCheckRefusesAReadOnlyDatabase(t *testing.T) {
	e := newEnv(t, marketplace.SimConfig{RowsPerDay: 10})
	e.mustRun("migrate", "up")
	if _, err := e.db.Exec(`DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_read_only = on', current_database()); END $$`); err != nil {
		t.Fatal(err)
	}
	code, stderr := e.run(nil, "check")
	if code != 1 || !strings.Contains(lastLine(stderr), "does not accept writes") {
		t.Fatalf("exit %d, want 1 saying the database does not accept writes\n%s", code, stderr)
	}
}

// TestShutdownBudgetBoundsThePushAfterSigterm: with PUSHGATEWAY_TIMEOUT=1h
// and a gateway that never answers, the process still ends within
// ETL_SHUTDOWN_GRACE of SIGTERM (it stayed 40 s).
func TestShutdownBudgetBoundsThePushAfterSigterm(t *testing.T) {
	var requests atomic.Int32
	release := make(chan struct{})
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			return // the push at the start goes through; the next ones hang
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer gw.Close()
	defer close(release)
	e := newEnv(t, marketplace.SimConfig{RowsPerDay: 2000, TruncateRate: 1, StallAfter: time.Minute})
	stderr, took, err := e.sigtermMidDay(30*time.Second, []string{"ETL_HTTP_TIMEOUT=1m", "PUSHGATEWAY_URL=" + gw.URL, "PUSHGATEWAY_TIMEOUT=1h", "ETL_SHUTDOWN_GRACE=2s"}, "run", "--date", "2023-07-03")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v after %s, want 1 within the budget\n%s", err, took, stderr)
	}
	if got := e.scalar(`SELECT status FROM marketplace.etl_runs`); got != "failed" {
		t.Fatalf("run status %s, want failed", got)
	}
	t.Logf("SIGTERM to exit with a hanging Pushgateway: %s", took.Round(time.Millisecond))
}

// sigtermMidDay runs the binary until it is in the middle of a day, sends
// SIGTERM and waits up to limit for it to end (then kills it). It returns
// stderr, the time from the signal to the end, and cmd.Wait's error.
func (e *env) sigtermMidDay(limit time.Duration, extraEnv []string, args ...string) (string, time.Duration, error) {
	e.t.Helper()
	cmd := e.command(extraEnv, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.waitForRequest(e.t)
	start := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return stderr.String(), time.Since(start), err
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		err := <-done
		return stderr.String(), time.Since(start), fmt.Errorf("still running %s after SIGTERM, killed: %w", limit, err)
	}
}
