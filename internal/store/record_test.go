package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/marketplace-etl/marketplace-etl/internal/etl"
	"github.com/marketplace-etl/marketplace-etl/internal/pgtest"
)

// TestFailureRecordsAlwaysLand: whatever an error says (a long page in
// Russian, bytes that are not UTF-8, a NUL, a URL with credentials), the
// day's failure and the run's end are recorded, readable and secret-free.
func TestFailureRecordsAlwaysLand(t *testing.T) {
	ctx := context.Background()
	s := migratedStore(t)
	runID, err := s.StartRun(ctx, etl.Run{Mode: "run"})
	if err != nil {
		t.Fatal(err)
	}
	msg := "HTTP 503 from http://alice:s3cr3t@api/data?token=t0k3n: " + strings.Repeat("Сервис недоступен. ", 200) + "\xff\xfe\x00end"
	day := time.Date(2023, 1, 5, 0, 0, 0, 0, time.UTC)
	if err := s.MarkFailed(ctx, day, runID, msg); err != nil {
		t.Fatalf("recording the day's failure: %v", err)
	}
	if err := s.FinishRun(ctx, runID, etl.RunTotals{DaysFailed: 1}, errors.New(msg)); err != nil {
		t.Fatalf("recording the run's end: %v", err)
	}
	var lastErr, runErr, status string
	if err := s.DB().QueryRow(`SELECT d.last_error, r.error, r.status FROM marketplace.day_loads d, marketplace.etl_runs r WHERE r.id = $1`, runID).Scan(&lastErr, &runErr, &status); err != nil {
		t.Fatal(err)
	}
	for _, got := range []string{lastErr, runErr} {
		if !utf8.ValidString(got) || len(got) > maxErrorText+len("…") || !strings.HasSuffix(got, "…") || !strings.Contains(got, "Сервис недоступен") {
			t.Fatalf("stored %d bytes: %.120q…; want valid UTF-8 cut at %d bytes", len(got), got, maxErrorText)
		}
		if strings.Contains(got, "s3cr3t") || strings.Contains(got, "t0k3n") {
			t.Fatalf("stored credentials: %.120q", got)
		}
	}
	if status != "failed" {
		t.Fatalf("run status %q", status)
	}
}

func TestErrorTextShort(t *testing.T) {
	if got := errorText("a\x00b\xffc"); got != "a\\u0000b\uFFFDc" {
		t.Fatalf("got %q", got)
	}
}

// TestCheckWritable: a database that answers but refuses writes is caught.
func TestCheckWritable(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	s := openVia(t, dsn, Options{StatementTimeout: time.Minute, LockTimeout: time.Minute})
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckWritable(ctx); err != nil {
		t.Fatalf("a writable database refused: %v", err)
	}
	if _, err := s.DB().Exec(`DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_read_only = on', current_database()); END $$`); err != nil {
		t.Fatal(err)
	}
	ro := openVia(t, dsn, Options{StatementTimeout: time.Minute, LockTimeout: time.Minute})
	if err := ro.CheckWritable(ctx); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("a read-only database passed the check: %v", err)
	}
}
