package marts

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
)

// An Update that finds another one holding the marts lock waits at most
// the lock timeout, fails with an error naming the setting, and leaves the
// queued days for the next Update.
func TestUpdateWaitIsBounded(t *testing.T) {
	db := newDB(t)
	loadFixture(t, db)
	ctx := context.Background()
	holder := db.MustBegin()
	defer holder.Rollback()
	holder.MustExec(`SELECT id FROM marketplace.marts_lock FOR UPDATE`)

	u := &Updater{DB: db, Log: quiet(), LockTimeout: 300 * time.Millisecond}
	t0 := time.Now()
	_, err := u.Update(ctx)
	var lt *LockTimeoutError
	if !errors.As(err, &lt) {
		t.Fatalf("Update while another holds the lock: %v, want a LockTimeoutError", err)
	}
	if took := time.Since(t0); took > 20*time.Second {
		t.Errorf("the bounded wait took %v", took)
	}
	t.Logf("error: %v", err)
	expectRows(t, db, []string{"failed|129"}, `SELECT (SELECT status FROM marts.refresh_state WHERE mart = 'all'),
		(SELECT count(DISTINCT purchase_date) FROM marketplace.marts_queue)`)

	if err := holder.Rollback(); err != nil {
		t.Fatal(err)
	}
	res, err := u.Update(ctx)
	if err != nil || res.Days != 129 {
		t.Fatalf("Update after the holder left = %+v, %v; want 129 days", res, err)
	}
	expectRows(t, db, []string{"succeeded|0"}, `SELECT (SELECT status FROM marts.refresh_state WHERE mart = 'all'),
		(SELECT count(*) FROM marketplace.marts_queue)`)
}

// readOnly connects as a new role with SELECT on every table of both
// schemas (more than Metabase's role will have) and nothing else.
func readOnly(t *testing.T, db *sqlx.DB) *sqlx.DB {
	t.Helper()
	var dbURL string
	if err := db.Get(&dbURL, `SELECT current_database()`); err != nil {
		t.Fatal(err)
	}
	role := "reader_" + dbURL
	db.MustExec(fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD 'reader';
		GRANT USAGE ON SCHEMA marketplace, marts TO %[1]s;
		GRANT SELECT ON ALL TABLES IN SCHEMA marketplace TO %[1]s;
		GRANT SELECT ON ALL TABLES IN SCHEMA marts TO %[1]s`, role))
	t.Cleanup(func() {
		db.Exec(fmt.Sprintf(`DROP OWNED BY %s`, role))
		db.Exec(fmt.Sprintf(`DROP ROLE %s`, role))
	})
	u, err := url.Parse(testURL(t, db))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, "reader")
	ro, err := sqlx.Open("postgres", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ro.Close() })
	return ro
}

// The read-only role can neither take nor hold a lock that stops an
// update, and its long SELECTs on the marts do not block one.
func TestReadOnlyRoleCannotBlockUpdates(t *testing.T) {
	db := newDB(t)
	loadFixture(t, db)
	refresh(t, db)
	ro := readOnly(t, db)

	for _, q := range []string{
		`SELECT id FROM marketplace.marts_lock FOR UPDATE`,
		`SELECT id FROM marketplace.marts_lock FOR SHARE`,
		`LOCK TABLE marketplace.marts_lock IN SHARE MODE`,
		`LOCK TABLE marketplace.marts_queue IN SHARE MODE`,
		`LOCK TABLE marketplace.day_locks IN SHARE MODE`,
		`SELECT purchase_date FROM marketplace.day_locks FOR KEY SHARE`,
		`LOCK TABLE marts.daily_sales IN SHARE MODE`,
	} {
		tx := ro.MustBegin()
		if _, err := tx.Exec(q); err == nil {
			t.Errorf("the read-only role could run %s", q)
		}
		tx.Rollback()
	}

	// A reader in the middle of long SELECTs on every mart.
	reader := ro.MustBegin()
	defer reader.Rollback()
	for _, name := range append(append([]string{}, Names...), Helpers...) {
		if _, err := reader.Exec(`SELECT count(*) FROM ` + name); err != nil {
			t.Fatalf("reading %s as the read-only role: %v", name, err)
		}
	}
	db.MustExec(`UPDATE marketplace.day_loads SET attempts = attempts + 1`) // every day changed
	for _, rebuild := range []bool{false, true} {
		if !rebuild {
			// A first update too, which would rather take client_stats
			// for itself.
			db.MustExec(`DELETE FROM marts.client_stats`)
		}
		u := &Updater{DB: db, Log: quiet(), LockTimeout: 2 * time.Second}
		run := u.Update
		if rebuild {
			run = u.Rebuild
		}
		if _, err := run(context.Background()); err != nil {
			t.Fatalf("rebuild=%v while a reader holds its snapshot: %v", rebuild, err)
		}
	}
}

// TryUpdate, the drain behind a pass's loads, never waits for the lock,
// records nothing when the marts are busy, does only the day half until
// the client half has had its first update, and then both.
func TestTryUpdate(t *testing.T) {
	db := newDB(t)
	loadFixture(t, db)
	ctx := context.Background()
	u := &Updater{DB: db, Log: quiet(), LockTimeout: time.Minute}
	holder := db.MustBegin()
	holder.MustExec(`SELECT id FROM marketplace.marts_lock FOR UPDATE`)
	t0 := time.Now()
	if _, err := u.TryUpdate(ctx); !errors.Is(err, ErrBusy) || time.Since(t0) > 10*time.Second {
		t.Fatalf("TryUpdate while another holds the lock: %v after %v, want ErrBusy at once", err, time.Since(t0))
	}
	holder.Rollback()
	expectRows(t, db, []string{"0|129|129"}, `SELECT (SELECT count(*) FROM marts.refresh_state),
		(SELECT count(DISTINCT purchase_date) FROM marketplace.marts_queue WHERE part = 'days'),
		(SELECT count(DISTINCT purchase_date) FROM marketplace.marts_queue WHERE part = 'clients')`)

	if res, err := u.TryUpdate(ctx); err != nil || res.Days != 129 {
		t.Fatalf("first TryUpdate = %+v, %v; want the 129 days of the day half", res, err)
	}
	expectRows(t, db, []string{"0|129|0"}, `SELECT (SELECT count(*) FROM marketplace.marts_queue WHERE part = 'days'),
		(SELECT count(DISTINCT purchase_date) FROM marketplace.marts_queue WHERE part = 'clients'), (SELECT count(*) FROM marts.client_stats)`)

	if _, err := u.Update(ctx); err != nil {
		t.Fatal(err)
	}
	db.MustExec(`UPDATE marketplace.day_loads SET attempts = attempts + 1 WHERE purchase_date = (SELECT min(purchase_date) FROM marketplace.day_loads)`)
	if res, err := u.TryUpdate(ctx); err != nil || res.Days != 1 {
		t.Fatalf("TryUpdate after the first update = %+v, %v; want the changed day", res, err)
	}
	expectRows(t, db, []string{"0"}, `SELECT count(*) FROM marketplace.marts_queue`)
	expectSameAsRebuild(t, db, "after TryUpdate")
}

// The day half has a lock of its own: a drain of the day half behind the
// loads holds it, and a final update's client half does not wait for it.
// Only the day half waits (within the lock timeout), and a timeout there
// keeps the client half and leaves the day half's days queued.
func TestClientHalfDoesNotWaitForTheDayLock(t *testing.T) {
	db := newDB(t)
	loadFixture(t, db)
	ctx := context.Background()
	drain := db.MustBegin()
	defer drain.Rollback()
	drain.MustExec(`SELECT id FROM marketplace.marts_lock WHERE NOT id FOR UPDATE`)

	u := &Updater{DB: db, Log: quiet(), LockTimeout: 300 * time.Millisecond}
	if _, err := u.TryUpdate(ctx); !errors.Is(err, ErrBusy) {
		t.Fatalf("TryUpdate while a drain holds the day lock: %v, want ErrBusy", err)
	}
	// ErrBusy let go of the main lock too.
	other := db.MustBegin()
	other.MustExec(`SELECT id FROM marketplace.marts_lock WHERE id FOR UPDATE NOWAIT`)
	other.Rollback()

	_, err := u.Update(ctx)
	var lt *LockTimeoutError
	if !errors.As(err, &lt) {
		t.Fatalf("Update while a drain holds the day lock: %v, want a LockTimeoutError from the day half", err)
	}
	expectRows(t, db, []string{"129|0|true"}, `SELECT
		(SELECT count(DISTINCT purchase_date) FROM marketplace.marts_queue WHERE part = 'days'),
		(SELECT count(*) FROM marketplace.marts_queue WHERE part = 'clients'),
		(SELECT count(*) > 0 FROM marts.client_stats)`)

	drain.Rollback()
	if res, err := u.Update(ctx); err != nil || res.Days != 129 {
		t.Fatalf("Update after the drain = %+v, %v; want the 129 days of the day half", res, err)
	}

	// Behind the loads (both halves, now), a day lock held by another
	// pass's drain leaves the day half queued, and is not a failure.
	db.MustExec(`UPDATE marketplace.day_loads SET attempts = attempts + 1 WHERE purchase_date = (SELECT min(purchase_date) FROM marketplace.day_loads)`)
	drain = db.MustBegin()
	drain.MustExec(`SELECT id FROM marketplace.marts_lock WHERE NOT id FOR UPDATE`)
	if res, err := u.TryUpdate(ctx); err != nil || res.Days != 1 {
		t.Fatalf("TryUpdate while a drain holds the day lock = %+v, %v; want the client half of the changed day", res, err)
	}
	drain.Rollback()
	expectRows(t, db, []string{"1|0"}, `SELECT
		(SELECT count(*) FROM marketplace.marts_queue WHERE part = 'days'),
		(SELECT count(*) FROM marketplace.marts_queue WHERE part = 'clients')`)
	if _, err := u.Update(ctx); err != nil {
		t.Fatal(err)
	}
	expectSameAsRebuild(t, db, "after the drains")
}

// A drain of the day half alone lets go of the main lock as soon as it
// holds the day lock: while it runs, another update can take the main
// lock.
func TestDayDrainLetsGoOfTheMartsLock(t *testing.T) {
	db := newDB(t)
	loadFixture(t, db)
	ctx := context.Background()
	// The drain's day half waits on the held product_days rows: it holds
	// the day lock meanwhile.
	blocker := db.MustBegin()
	defer blocker.Rollback()
	blocker.MustExec(`LOCK TABLE marts.product_days IN EXCLUSIVE MODE`)
	u := &Updater{DB: db, Log: quiet(), LockTimeout: time.Minute}
	done := make(chan error, 1)
	go func() {
		_, err := u.TryUpdate(ctx)
		done <- err
	}()
	waitFor(t, func() bool {
		var n int
		db.Get(&n, `SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
			WHERE c.relname = 'product_days' AND NOT l.granted`)
		return n > 0
	})
	other := db.MustBegin()
	if _, err := other.Exec(`SELECT id FROM marketplace.marts_lock WHERE id FOR UPDATE NOWAIT`); err != nil {
		t.Errorf("the main lock while a day drain runs: %v, want it free", err)
	}
	if _, err := other.Exec(`SELECT id FROM marketplace.marts_lock WHERE NOT id FOR UPDATE NOWAIT`); err == nil {
		t.Errorf("the day lock while a day drain runs was free, want it held")
	}
	other.Rollback()
	blocker.Rollback()
	if err := <-done; err != nil {
		t.Fatalf("the drain: %v", err)
	}
	expectRows(t, db, []string{"0|129"}, `SELECT
		(SELECT count(*) FROM marketplace.marts_queue WHERE part = 'days'),
		(SELECT count(DISTINCT purchase_date) FROM marketplace.marts_queue WHERE part = 'clients')`)
}

// waitFor polls cond for up to 30 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("timed out waiting")
}
