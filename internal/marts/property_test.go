package marts

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
)

// dayWrite changes one day the way the loader does: lines and day_loads in
// one transaction (the day_loads write queues the day for the marts).
func dayWrite(t *testing.T, db *sqlx.DB, day string, status string, lines []line, keepLines bool) {
	t.Helper()
	tx := db.MustBegin()
	defer tx.Rollback()
	if !keepLines {
		tx.MustExec(`DELETE FROM marketplace.purchases WHERE purchase_date = $1`, day)
		for i, l := range lines {
			tx.MustExec(`INSERT INTO marketplace.purchases (purchase_date, line_no, client_id, gender, product_id, quantity,
					price_per_item, discount_per_item, total_price, seconds_from_midnight, purchased_at, run_id)
				VALUES ($1::date, $2, $3, $4, $5, $6::integer, $7::numeric, $8::numeric, $6::integer * ($7::numeric - $8::numeric), $9::integer,
					($1::date + $9::integer * interval '1 second') AT TIME ZONE 'Europe/Moscow', 1)`,
				day, i+1, l.client, l.gender, l.product, l.qty, l.price, l.discount, l.seconds)
		}
	}
	tx.MustExec(`INSERT INTO marketplace.day_loads AS d (purchase_date, status, rows_loaded, attempts)
		VALUES ($1, $2, $3, 1)
		ON CONFLICT (purchase_date) DO UPDATE SET status = EXCLUDED.status, attempts = d.attempts + 1,
			rows_loaded = CASE WHEN $4 THEN d.rows_loaded ELSE EXCLUDED.rows_loaded END`, day, status, len(lines), keepLines)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func randomLines(r *rand.Rand) []line {
	n := 1 + r.IntN(25)
	out := make([]line, n)
	for i := range out {
		c := r.IntN(60)
		price := 10 * (1 + r.IntN(20))
		out[i] = line{client: c, gender: "MF"[c%2 : c%2+1], product: r.IntN(12), qty: 1 + r.IntN(4),
			price: fmt.Sprint(price), discount: fmt.Sprint([]int{0, 0, 5, price}[r.IntN(4)]), seconds: r.IntN(86400)}
	}
	return out
}

// Random sequences of loads, reloads with changed content, unchanged
// reloads, no-data days, failed days and failed or interrupted marts
// updates: after each successful update the incremental marts equal a full
// rebuild.
func TestIncrementalEqualsRebuild(t *testing.T) {
	ctx := context.Background()
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 11))
			db := newDB(t)
			u := &Updater{DB: db, Log: quiet()}
			// 40 days over three months and a half, so that months, cohorts,
			// the ABC/XYZ period and the 30-day windows all move.
			first := time.Date(2024, 1, 20, 0, 0, 0, 0, time.UTC)
			day := func() string { return first.AddDate(0, 0, 3*r.IntN(35)).Format(time.DateOnly) }
			checks := 0
			for op := 0; op < 60; op++ {
				d := day()
				switch k := r.IntN(10); {
				case k < 5: // a load, or a reload with changed content
					dayWrite(t, db, d, "loaded", randomLines(r), false)
				case k == 5: // an unchanged reload only counts an attempt
					dayWrite(t, db, d, "loaded", nil, true)
				case k == 6: // the API has no data: the lines go
					dayWrite(t, db, d, "no_data", nil, false)
				case k == 7: // a failed attempt keeps what was loaded
					dayWrite(t, db, d, "failed", nil, true)
				case k == 8: // a marts update cut short (kill, timeout)
					short, cancel := context.WithTimeout(ctx, time.Duration(r.IntN(40))*time.Millisecond)
					_, _ = u.Update(short)
					cancel()
				default:
					if _, err := u.Update(ctx); err != nil {
						t.Fatal(err)
					}
					compareWithRebuild(t, db, u, op)
					checks++
				}
			}
			if _, err := u.Update(ctx); err != nil {
				t.Fatal(err)
			}
			compareWithRebuild(t, db, u, -1)
			t.Logf("%d comparisons with a rebuild", checks+1)
		})
	}
}

// compareWithRebuild checks the marts against a rebuild of them; the
// sequence then goes on incrementally from the rebuilt state, which must be
// the same.
func compareWithRebuild(t *testing.T, db *sqlx.DB, u *Updater, op int) {
	t.Helper()
	expectRows(t, db, []string{"0"}, `SELECT count(*) FROM marketplace.marts_queue`)
	inc := snapshot(t, db)
	if _, err := u.Rebuild(context.Background()); err != nil {
		t.Fatal(err)
	}
	full := snapshot(t, db)
	for name, want := range full {
		if inc[name] != want {
			t.Errorf("after op %d: incremental %s = %s, rebuild %s", op, name, inc[name], want)
		}
	}
}
