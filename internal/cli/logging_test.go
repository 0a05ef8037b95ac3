package cli

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/marketplace-etl/marketplace-etl/internal/etl"
	"github.com/marketplace-etl/marketplace-etl/internal/pipeline"
)

// Durations in JSON logs are seconds, at any depth, so that a collector can
// compare and sum them; integers of nanoseconds were not.
func TestJSONLogDurationsAreSeconds(t *testing.T) {
	var buf bytes.Buffer
	log := newLogger(&buf, "info", "json").With("mode", "run")
	log.Info("pass succeeded", "duration", 1500*time.Millisecond, slog.Group("retry", "wait", time.Second), "eta", time.Duration(0))
	var line struct {
		Duration any `json:"duration"`
		Retry    struct {
			Wait any `json:"wait"`
		} `json:"retry"`
		ETA any `json:"eta"`
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("not one JSON line: %v\n%s", err, buf.String())
	}
	if line.Duration != 1.5 || line.Retry.Wait != 1.0 || line.ETA != 0.0 {
		t.Errorf("duration %v, wait %v, eta %v; want 1.5, 1 and 0 seconds:\n%s", line.Duration, line.Retry.Wait, line.ETA, buf.String())
	}
}

// The failure of a command is a JSON log line too when the logs are JSON
// (LOG_FORMAT=json, or auto off a terminal), and one plain line with text logs.
func TestFailureLineFollowsTheLogFormat(t *testing.T) {
	for _, format := range []string{"", "json", "text", "xml"} {
		t.Run("LOG_FORMAT="+format, func(t *testing.T) {
			t.Setenv("LOG_FORMAT", format)
			var stdout, stderr bytes.Buffer
			code := run([]string{"frobnicate"}, &stdout, &stderr)
			if code != ExitUsage {
				t.Fatalf("exit %d, want %d", code, ExitUsage)
			}
			out := strings.TrimSuffix(stderr.String(), "\n")
			if strings.Contains(out, "\n") {
				t.Fatalf("more than one line:\n%s", out)
			}
			if format == "text" {
				if !strings.HasPrefix(out, `marketplace-etl frobnicate: unknown command "frobnicate"`) {
					t.Errorf("text logs: want the plain failure line, got %s", out)
				}
				return
			}
			var line map[string]any
			if err := json.Unmarshal([]byte(out), &line); err != nil {
				t.Fatalf("JSON logs (a buffer is no terminal): the failure line is not JSON: %v\n%s", err, out)
			}
			if line["level"] != "ERROR" || line["command"] != "frobnicate" || line["exit_code"] != float64(ExitUsage) ||
				!strings.Contains(line["err"].(string), "unknown command") {
				t.Errorf("failure line %s", out)
			}
		})
	}
}

// screen replays what was written to a terminal: "\r\x1b[K" erases the line,
// "\n" starts a new one. It returns the lines as a person would see them.
func screen(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if i := strings.LastIndex(l, eraseLine); i >= 0 {
			l = l[i+len(eraseLine):]
		}
		lines = append(lines, l)
	}
	return lines
}

// On a terminal the bar stays on the last line: every log line is whole on
// its own line, and the bar is gone once the pass ends.
func TestProgressBarDoesNotShareLinesWithLogs(t *testing.T) {
	var buf bytes.Buffer
	term := &terminal{w: &buf}
	log := newLogger(term, "info", "text")
	p := pipeline.Progress{Log: log, Bar: term}
	p.Start(3)
	for i := 1; i <= 3; i++ {
		p.Day(i, etl.DayReport{Date: time.Date(2023, 1, i, 0, 0, 0, 0, time.UTC), Outcome: etl.Loaded, Duration: time.Second})
		log.Warn("something in between")
	}
	p.Done()
	log.Info("pass succeeded")

	lines := screen(buf.String())
	days := 0
	for i, l := range lines {
		hasLog := strings.Contains(l, "day done") || strings.Contains(l, "something in between") || strings.Contains(l, "pass succeeded")
		hasBar := strings.Contains(l, "days  ")
		if hasLog && hasBar {
			t.Errorf("line %d holds a log line and the bar: %q", i, l)
		}
		if strings.Contains(l, "day done") {
			days++
		}
	}
	if days != 3 {
		t.Errorf("%d whole day lines on screen, want 3:\n%s", days, strings.Join(lines, "\n"))
	}
	if last := lines[len(lines)-1]; last != "" || !strings.Contains(lines[len(lines)-2], "pass succeeded") {
		t.Errorf("the screen ends with %q after %q, want the summary line and no bar", last, lines[len(lines)-2])
	}
	if !strings.Contains(buf.String(), "[==============================] 3/3 days") {
		t.Errorf("the bar was never drawn full:\n%q", buf.String())
	}
}

// A failed pass is one event: its "pass failed" line, with the exit code and
// the cause, is the last line, not followed by a second error line; and
// every line is JSON.
func TestFailedPassLogsItsFailureOnce(t *testing.T) {
	t.Setenv("LOG_FORMAT", "json")
	t.Setenv("DATABASE_URL", "postgres://etl@127.0.0.1:1/marketplace?sslmode=disable&connect_timeout=2")
	t.Setenv("MARKETPLACE_API_URL", "http://127.0.0.1:1/data")
	t.Setenv("PUSHGATEWAY_URL", "")
	var stdout, stderr bytes.Buffer
	code := run([]string{"run", "--date", "2023-01-05"}, &stdout, &stderr)
	if code != ExitRetryable {
		t.Fatalf("exit %d with an unreachable database, want %d\n%s", code, ExitRetryable, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	errorsLogged := 0
	var last map[string]any
	for _, l := range lines {
		last = nil
		if err := json.Unmarshal([]byte(l), &last); err != nil {
			t.Fatalf("a line is not JSON: %v\n%s", err, l)
		}
		if last["level"] == "ERROR" {
			errorsLogged++
		}
	}
	if errorsLogged != 1 || last["msg"] != "pass failed" || last["exit_code"] != float64(ExitRetryable) {
		t.Errorf("%d error lines, last %v; want exactly one, the last: pass failed with exit_code 1\n%s", errorsLogged, last, stderr.String())
	}
	if _, ok := last["duration"].(float64); !ok {
		t.Errorf("pass failed without a duration in seconds: %v", last)
	}
}
