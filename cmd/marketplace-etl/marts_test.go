package main

import (
	"bytes"
	"database/sql"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/marketplace-etl/marketplace-etl/internal/marketplace"
	"github.com/marketplace-etl/marketplace-etl/internal/marts"
)

// martsDigest fingerprints every mart and helper.
func (e *env) martsDigest() string {
	e.t.Helper()
	var parts []string
	for _, name := range append(append([]string{}, marts.Names...), marts.Helpers...) {
		parts = append(parts, name+"="+e.scalar(`SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM `+name+` t`))
	}
	return strings.Join(parts, "\n")
}

// checkMartsCurrent asserts that nothing is queued and that the marts are
// exactly what a rebuild gives.
func (e *env) checkMartsCurrent() {
	e.t.Helper()
	if q := e.scalar(`SELECT count(*) FROM marketplace.marts_queue`); q != "0" {
		e.t.Fatalf("%s days still queued for the marts", q)
	}
	inc := e.martsDigest()
	e.mustRun("marts", "rebuild")
	if full := e.martsDigest(); full != inc {
		e.t.Fatalf("the marts differ from a rebuild:\nincremental:\n%s\nrebuild:\n%s", inc, full)
	}
	if e.scalar(`SELECT count(*) FROM marts.daily_sales`) == "0" {
		e.t.Fatal("the marts are empty")
	}
}

// waitForLockWait waits until a session of the test's database waits for
// a lock.
func (e *env) waitForLockWait() {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for e.scalar(`SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
		WHERE NOT l.granted AND a.datname = current_database()`) == "0" {
		if time.Now().After(deadline) {
			e.t.Fatal("the pass never waited for the held lock")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SIGKILL at several points of the marts update (before it starts, after
// its first steps, near its end), then a pass that loads nothing: it brings
// the marts up to date and exits 0.
func TestMartsKilledMidUpdateAreHealedByTheNextPass(t *testing.T) {
	holds := []struct{ name, sql string }{
		{"waiting for the marts lock", `SELECT id FROM marketplace.marts_lock FOR UPDATE`},
		{"after the first steps", `LOCK TABLE marts.client_events IN EXCLUSIVE MODE`},
		{"in the middle", `LOCK TABLE marts.sales_by_hour IN EXCLUSIVE MODE`},
		{"at the last step", `LOCK TABLE marts.rfm_thresholds IN EXCLUSIVE MODE`},
	}
	e := newEnv(t, marketplace.SimConfig{RowsPerDay: 300})
	e.mustRun("migrate", "up")
	days := [][2]string{{"2023-05-01", "2023-05-04"}, {"2023-05-05", "2023-05-08"}, {"2023-06-01", "2023-06-02"}, {"2023-06-03", "2023-06-05"}}
	for i, h := range holds {
		t.Run(h.name, func(t *testing.T) {
			e.t = t
			holder, err := e.db.Begin()
			if err != nil {
				t.Fatal(err)
			}
			defer holder.Rollback()
			if _, err := holder.Exec(h.sql); err != nil {
				t.Fatal(err)
			}
			cmd := e.command(nil, "backfill", "--from", days[i][0], "--to", days[i][1])
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			e.waitForLockWait()
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
			if err := holder.Rollback(); err != nil {
				t.Fatal(err)
			}
			if q := e.scalar(`SELECT count(DISTINCT purchase_date) FROM marketplace.marts_queue WHERE purchase_date BETWEEN $1 AND $2`, days[i][0], days[i][1]); q == "0" {
				t.Fatalf("the killed update lost the queue of changed days\n%s", stderr.String())
			}
			// A pass that loads nothing: every day is done already.
			out := e.mustRun("backfill", "--from", days[i][0], "--to", days[i][1])
			if !strings.Contains(out, `"marts updated"`) {
				t.Fatalf("the pass that loaded nothing did not update the marts:\n%s", out)
			}
			e.checkMartsCurrent()
		})
	}
}

// A marts failure (here the lock held longer than ETL_MARTS_LOCK_TIMEOUT)
// keeps the loaded data, exits 1 with a line naming the setting, records
// the run failed; the next pass heals the marts and exits 0.
func TestMartsFailureFailsThePassAndTheNextHeals(t *testing.T) {
	e := newEnv(t, marketplace.SimConfig{RowsPerDay: 300})
	e.mustRun("migrate", "up")
	holder, err := e.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback()
	if _, err := holder.Exec(`SELECT id FROM marketplace.marts_lock FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	code, stderr, took := e.runFor(60*time.Second, []string{"ETL_MARTS_LOCK_TIMEOUT=1s"}, "run", "--date", "2023-07-01")
	if code != 1 {
		t.Fatalf("exit %d after %s, want 1\n%s", code, took, stderr)
	}
	if l := lastLine(stderr); !strings.Contains(l, "ETL_MARTS_LOCK_TIMEOUT") {
		t.Fatalf("the final line does not name ETL_MARTS_LOCK_TIMEOUT: %s", l)
	}
	if got := e.scalar(`SELECT status || ' ' || days_loaded FROM marketplace.etl_runs`); got != "failed 1" {
		t.Fatalf("etl_runs: %s, want failed 1", got)
	}
	e.checkAgainstSimulator("2023-07-01", "2023-07-01")
	if got := e.scalar(`SELECT status FROM marts.refresh_state WHERE mart = 'all'`); got != "failed" {
		t.Fatalf("marts.refresh_state: %q, want failed", got)
	}
	holder.Rollback()

	e.mustRun("run", "--date", "2023-07-01") // unchanged: loads nothing
	if got := e.scalar(`SELECT string_agg(status, ',' ORDER BY id) FROM marketplace.etl_runs`); got != "failed,succeeded" {
		t.Fatalf("etl_runs: %s", got)
	}
	e.checkMartsCurrent()
}

// The marts answer (empty) right after migrate, and marts update / rebuild
// work from the command line.
func TestMartsCommands(t *testing.T) {
	e := newEnv(t, marketplace.SimConfig{RowsPerDay: 200})
	e.mustRun("migrate", "up")
	for _, name := range marts.Names {
		if got := e.scalar(`SELECT count(*) FROM ` + name); got != "0" {
			t.Errorf("%s has %s rows right after migrate", name, got)
		}
	}
	e.mustRun("marts", "update")
	e.mustRun("backfill", "--from", "2023-03-30", "--to", "2023-04-02")
	e.checkMartsCurrent()
	if code, stderr := e.run(nil, "marts", "refresh"); code != 2 || !strings.Contains(stderr, "expected rebuild") {
		t.Fatalf("marts refresh: exit %d\n%s", code, stderr)
	}
	var n sql.NullInt64
	if err := e.db.QueryRow(`SELECT count(*) FROM marts.client_rfm`).Scan(&n); err != nil || n.Int64 == 0 {
		t.Fatalf("client_rfm: %v, %v", n, err)
	}
}
