package marts

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/marketplace-etl/marketplace-etl/internal/etl"
	"github.com/marketplace-etl/marketplace-etl/internal/purchases"
	"github.com/marketplace-etl/marketplace-etl/internal/store"
)

// dayWrite changes one day the way the loader does: lines and day_loads in
// one transaction (the day_loads write queues the day for the marts);
// summarize: with a day summary computed by summarySQL.
func dayWrite(t *testing.T, db *sqlx.DB, day string, status string, lines []line, keepLines, summarize bool) {
	t.Helper()
	tx := db.MustBegin()
	defer tx.Rollback()
	if !keepLines {
		// As the product does: the summary goes with the lines.
		tx.MustExec(`DELETE FROM marketplace.day_summaries WHERE purchase_date = $1`, day)
		tx.MustExec(`DELETE FROM marketplace.purchases WHERE purchase_date = $1`, day)
		for i, l := range lines {
			tx.MustExec(`INSERT INTO marketplace.purchases (purchase_date, line_no, client_id, gender, product_id, quantity,
					price_per_item, discount_per_item, total_price, seconds_from_midnight, purchased_at, run_id)
				VALUES ($1::date, $2, $3, $4, $5, $6::integer, $7::numeric, $8::numeric, $6::integer * ($7::numeric - $8::numeric), $9::integer,
					($1::date + $9::integer * interval '1 second') AT TIME ZONE 'Europe/Moscow', 1)`,
				day, i+1, l.client, l.gender, l.product, l.qty, l.price, l.discount, l.seconds)
		}
	}
	if summarize {
		tx.MustExec(summarySQL, day)
	}
	tx.MustExec(`INSERT INTO marketplace.day_loads AS d (purchase_date, status, rows_loaded, attempts)
		VALUES ($1, $2, $3, 1)
		ON CONFLICT (purchase_date) DO UPDATE SET status = EXCLUDED.status, attempts = d.attempts + 1,
			rows_loaded = CASE WHEN $4 THEN d.rows_loaded ELSE EXCLUDED.rows_loaded END`, day, status, len(lines), keepLines)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// summarySQL writes the summary of day $1 from its lines: the reference
// of what the loader writes (see migrations/00014_day_summaries.sql).
const summarySQL = `
	INSERT INTO marketplace.day_summaries
	SELECT d.day, coalesce(t.lines, 0), coalesce(t.units, 0), coalesce(t.revenue, 0.00), coalesce(t.gross, 0.00), coalesce(t.discount, 0.00),
	       coalesce(t.clients, 0),
	       coalesce(g.genders, '{}'), coalesce(g.lines, '{}'), coalesce(g.units, '{}'), coalesce(g.revenue, '{}'), coalesce(g.gross, '{}'),
	       coalesce(g.discount, '{}'), coalesce(g.clients, '{}'),
	       coalesce(h.hours, '{}'), coalesce(h.lines, '{}'), coalesce(h.units, '{}'), coalesce(h.revenue, '{}'), coalesce(h.clients, '{}'),
	       coalesce(p.ids, '{}'), coalesce(p.units, '{}'), coalesce(p.revenue, '{}'),
	       coalesce(c.ids, '{}'), coalesce(c.revenue, '{}')
	FROM (SELECT $1::date AS day) d
	LEFT JOIN LATERAL (SELECT count(*) AS lines, sum(quantity)::bigint AS units, sum(total_price) AS revenue,
	                          sum(quantity * price_per_item) AS gross, sum(quantity * discount_per_item) AS discount,
	                          count(DISTINCT client_id) AS clients
	                   FROM marketplace.purchases WHERE purchase_date = d.day HAVING count(*) > 0) t ON true
	LEFT JOIN LATERAL (SELECT array_agg(gender ORDER BY gender) AS genders, array_agg(lines ORDER BY gender) AS lines,
	                          array_agg(units ORDER BY gender) AS units, array_agg(revenue ORDER BY gender) AS revenue,
	                          array_agg(gross ORDER BY gender) AS gross, array_agg(discount ORDER BY gender) AS discount,
	                          array_agg(clients ORDER BY gender) AS clients
	                   FROM (SELECT gender::text, count(*) AS lines, sum(quantity)::bigint AS units, sum(total_price) AS revenue,
	                                sum(quantity * price_per_item) AS gross, sum(quantity * discount_per_item) AS discount,
	                                count(DISTINCT client_id) AS clients
	                         FROM marketplace.purchases WHERE purchase_date = d.day GROUP BY gender) x) g ON true
	LEFT JOIN LATERAL (SELECT array_agg(hour ORDER BY hour) AS hours, array_agg(lines ORDER BY hour) AS lines,
	                          array_agg(units ORDER BY hour) AS units, array_agg(revenue ORDER BY hour) AS revenue,
	                          array_agg(clients ORDER BY hour) AS clients
	                   FROM (SELECT (seconds_from_midnight / 3600)::smallint AS hour, count(*) AS lines, sum(quantity)::bigint AS units,
	                                sum(total_price) AS revenue, count(DISTINCT client_id) AS clients
	                         FROM marketplace.purchases WHERE purchase_date = d.day GROUP BY 1) x) h ON true
	LEFT JOIN LATERAL (SELECT array_agg(product_id ORDER BY product_id) AS ids, array_agg(units ORDER BY product_id) AS units,
	                          array_agg(revenue ORDER BY product_id) AS revenue
	                   FROM (SELECT product_id, sum(quantity)::bigint AS units, sum(total_price) AS revenue
	                         FROM marketplace.purchases WHERE purchase_date = d.day GROUP BY 1) x) p ON true
	LEFT JOIN LATERAL (SELECT array_agg(client_id ORDER BY client_id) AS ids, array_agg(revenue ORDER BY client_id) AS revenue
	                   FROM (SELECT client_id, sum(total_price) AS revenue
	                         FROM marketplace.purchases WHERE purchase_date = d.day GROUP BY 1) x) c ON true`

// loadDay loads one day through the product's loader, which also writes
// the day's summary; checksum: the content's, an unchanged one rolls back.
func loadDay(t *testing.T, st *store.Store, day string, lines []line, checksum string) {
	t.Helper()
	ctx := context.Background()
	date, err := time.Parse(time.DateOnly, day)
	if err != nil {
		t.Fatal(err)
	}
	d, err := st.BeginDay(ctx, date, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Rollback()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	err = d.Stream(ctx, func(w *store.DayWriter) error {
		for _, l := range lines {
			price, discount := cents(t, l.price), cents(t, l.discount)
			r := purchases.Record{ClientID: int64(l.client), Gender: l.gender[0], Date: day, Seconds: int64(l.seconds),
				ProductID: int64(l.product), Quantity: int64(l.qty), Price: price, Discount: discount,
				Total: purchases.Cents(l.qty) * (price - discount)}
			if err := w.Add(&r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Accept(ctx, etl.Summary{Fetched: len(lines), Loaded: len(lines), Checksum: checksum}); err != nil {
		t.Fatal(err)
	}
}

// cents parses a whole amount of the test lines.
func cents(t *testing.T, s string) purchases.Cents {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return purchases.Cents(100 * n)
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
			st := newStore(t)
			db := st.DB()
			u := &Updater{DB: db, Log: quiet()}
			checksums := map[string]string{}
			// 40 days over three months and a half, so that months, cohorts,
			// the ABC/XYZ period and the 30-day windows all move.
			first := time.Date(2024, 1, 20, 0, 0, 0, 0, time.UTC)
			day := func() string { return first.AddDate(0, 0, 3*r.IntN(35)).Format(time.DateOnly) }
			checks := 0
			for op := 0; op < 60; op++ {
				d := day()
				switch k := r.IntN(10); {
				case k < 3: // a load, or a reload with changed content, by the loader (with a summary)
					checksums[d] = fmt.Sprint(op)
					loadDay(t, st, d, randomLines(r), checksums[d])
				case k < 5: // the same written directly, with a summary or without
					dayWrite(t, db, d, "loaded", randomLines(r), false, k == 3)
				case k == 5: // an unchanged reload only counts an attempt
					if c, ok := checksums[d]; ok && r.IntN(2) == 0 {
						loadDay(t, st, d, nil, c)
					} else {
						dayWrite(t, db, d, "loaded", nil, true, false)
					}
				case k == 6: // the API has no data: the lines go
					dayWrite(t, db, d, "no_data", nil, false, false)
				case k == 7: // a failed attempt keeps what was loaded
					dayWrite(t, db, d, "failed", nil, true, false)
				case k == 8: // a marts update cut short (kill, timeout)
					short, cancel := context.WithTimeout(ctx, time.Duration(r.IntN(40))*time.Millisecond)
					_, _ = u.Update(short)
					cancel()
				default:
					if _, err := u.Update(ctx); err != nil {
						t.Fatal(err)
					}
					compareWithRebuild(t, db, op)
					checks++
				}
			}
			if _, err := u.Update(ctx); err != nil {
				t.Fatal(err)
			}
			compareWithRebuild(t, db, -1)
			t.Logf("%d comparisons with a rebuild", checks+1)
			// Both sources of the day marts were in play.
			expectRows(t, db, []string{"true|true"}, `SELECT EXISTS (SELECT FROM marketplace.day_summaries WHERE lines > 0),
				       EXISTS (SELECT FROM marketplace.purchases p WHERE NOT EXISTS (
				           SELECT FROM marketplace.day_summaries s WHERE s.purchase_date = p.purchase_date))`)
		})
	}
}

// compareWithRebuild checks the marts against a rebuild of them; the
// sequence then goes on incrementally from the rebuilt state, which must be
// the same.
func compareWithRebuild(t *testing.T, db *sqlx.DB, op int) {
	t.Helper()
	expectRows(t, db, []string{"0"}, `SELECT count(*) FROM marketplace.marts_queue`)
	expectSameAsRebuild(t, db, fmt.Sprintf("after op %d", op))
}

// Sums beyond int64 (the largest amounts, many times over) are summed as
// numerics instead, with the same result as a rebuild.
func TestHugeSumsFallBackToNumerics(t *testing.T) {
	db := newDB(t)
	u := &Updater{DB: db, Log: quiet()}
	huge := make([]line, 1000)
	for i := range huge {
		huge[i] = line{client: 1, gender: "F", product: 1, qty: 100, price: "999999999999", discount: "0", seconds: i}
	}
	// And a product whose monthly units squared leave int64.
	huge = append(huge, line{client: 2, gender: "M", product: 2, qty: 2147483647, price: "0", discount: "0", seconds: 5},
		line{client: 2, gender: "M", product: 2, qty: 2147483647, price: "0", discount: "0", seconds: 6})
	dayWrite(t, db, "2024-01-01", "loaded", huge, false, true)
	dayWrite(t, db, "2024-02-01", "loaded", []line{{client: 3, gender: "F", product: 3, qty: 1, price: "10", discount: "0", seconds: 7}}, false, true)
	if _, err := u.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	expectRows(t, db, []string{"99999999999900000.00|1"}, `SELECT monetary, frequency FROM marts.client_stats WHERE client_id = 1`)
	expectRows(t, db, []string{"4294967294|18446744056529682436"}, `SELECT units, units_sq FROM marts.product_period WHERE product_id = 2`)
	compareWithRebuild(t, db, 0)
}

// A history beyond the client days a first update may hold in memory is
// built in SQL, with the same result.
func TestFirstUpdateBeyondMemoryBoundRunsInSQL(t *testing.T) {
	defer func(n int) { maxBuildPairs = n }(maxBuildPairs)
	maxBuildPairs = 10
	db := newDB(t)
	loadFixture(t, db)
	u := &Updater{DB: db, Log: quiet()}
	if _, err := u.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	expectRows(t, db, []string{"true"}, `SELECT count(*) > 10 FROM marts.client_stats`)
	compareWithRebuild(t, db, 0)
}

// A reload that takes clients away from a day the marts show finds them by
// the clients recorded with the day, which follow client_stats.
func TestReloadFindsTheClientsWhoLeft(t *testing.T) {
	db := newDB(t)
	u := &Updater{DB: db, Log: quiet()}
	day := func(clients ...int) []line {
		var out []line
		for i, c := range clients {
			out = append(out, line{client: c, gender: "F", product: 1, qty: 1, price: "10", discount: "0", seconds: i})
		}
		return out
	}
	applied := `SELECT day::text, client_ids FROM marts.client_days_applied ORDER BY day`
	dayWrite(t, db, "2024-01-01", "loaded", day(1, 2), false, true)
	dayWrite(t, db, "2024-01-02", "loaded", day(4, 2, 3, 1, 2), false, false)
	if _, err := u.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	expectRows(t, db, []string{"2024-01-01|{1,2}", "2024-01-02|{1,2,3,4}"}, applied)
	// Clients 2 and 4 no longer bought on the second day; 5 did.
	dayWrite(t, db, "2024-01-02", "loaded", day(1, 3, 5), false, true)
	if _, err := u.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	expectRows(t, db, []string{"1|2", "2|1", "3|1", "5|1"}, `SELECT client_id, frequency FROM marts.client_stats ORDER BY 1`)
	expectRows(t, db, []string{"2024-01-01|{1,2}", "2024-01-02|{1,3,5}"}, applied)
	compareWithRebuild(t, db, 0)
}
