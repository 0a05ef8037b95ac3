package cli

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/lmittmann/tint"

	"github.com/marketplace-etl/marketplace-etl/internal/redact"
)

// newLogger builds the process logger: tint's colourised text on a terminal,
// JSON otherwise (what log collectors parse), or as LOG_FORMAT says.
func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lv = slog.LevelDebug
	case "warn", "warning":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		lv = slog.LevelInfo
	}
	if logFormat(w, format) == "text" {
		return slog.New(tint.NewHandler(w, &tint.Options{Level: lv, TimeFormat: time.DateTime, NoColor: !isTerminal(w), ReplaceAttr: redactAttr}))
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lv, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		return secondsForDurations(groups, redactAttr(groups, a))
	}}))
}

// redactAttr hides credentials in every text and error of a log line: a
// URL or connection string can reach a log through any error message.
func redactAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(redact.String(a.Value.String()))
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok && err != nil {
			a.Value = slog.StringValue(redact.String(err.Error()))
		}
	}
	return a
}

// logFormat resolves LOG_FORMAT: "auto" (or anything but text and json) is
// text on a terminal, JSON otherwise.
func logFormat(w io.Writer, format string) string {
	switch format {
	case "text", "json":
		return format
	}
	if isTerminal(w) {
		return "text"
	}
	return "json"
}

// secondsForDurations writes every duration of a JSON log line as seconds
// (a float), which a collector can sum and compare; slog would write
// integer nanoseconds.
func secondsForDurations(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.Float64Value(a.Value.Duration().Seconds())
	}
	return a
}

func isTerminal(w io.Writer) bool {
	switch f := w.(type) {
	case *terminal:
		return true
	case *os.File:
		fi, err := f.Stat()
		return err == nil && fi.Mode()&os.ModeCharDevice != 0
	}
	return false
}

// terminal owns a terminal's output: log lines scroll above a status line
// (the progress bar), which is erased before each log line and drawn again
// after it, so that the two never land on the same line.
type terminal struct {
	mu     sync.Mutex
	w      io.Writer
	status string
}

const eraseLine = "\r\x1b[K"

// Write writes log output, which slog hands over one whole record at a time.
func (t *terminal) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.status == "" {
		return t.w.Write(p)
	}
	var b bytes.Buffer
	b.WriteString(eraseLine)
	b.Write(p)
	b.WriteString(t.status)
	if _, err := t.w.Write(b.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// SetStatus replaces the status line; "" removes it.
func (t *terminal) SetStatus(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if line == "" && t.status == "" {
		return
	}
	t.status = line
	_, _ = io.WriteString(t.w, eraseLine+line)
}
