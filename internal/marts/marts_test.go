package marts

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/marketplace-etl/marketplace-etl/internal/pgtest"
	"github.com/marketplace-etl/marketplace-etl/internal/store"
)

// line is one hand-made purchase line.
type line struct {
	day      string
	client   int
	gender   string
	product  int
	qty      int
	price    string
	discount string
	seconds  int
}

// fixtureLines: 25 hand-made lines over January to May 2023 plus, on
// 2023-05-05, 240 one-unit lines of product 20 by 240 new clients (1000+i,
// F for even i, hour i%24). The comments give each line's total.
//
// Products in the ABC/XYZ period (January to April, 4 complete months
// before the newest loaded day 2023-05-10), monthly units and revenue:
//
//	product 7: 9, 11, 9, 11 units at 250   = 10000 (share 0.50, cum 0.50) cv 0.10 -> A X (both boundaries inclusive)
//	product 3: 8, 12, 8, 12 at 200-50      =  6000 (0.30, cum 0.80)       cv 0.20 -> A Y (A boundary exactly)
//	product 1: 3, 5, 3, 5 at 100-6.25      =  1500 (0.075, cum 0.95)      cv 0.25 -> B Y (tie with 5; Y boundary)
//	product 5: 5, 5, 5, 5 at 75            =  1500 (0.075, cum 0.95)      cv 0    -> B X (tie: same cum share as 1)
//	product 2: 4, 0, 0, 0 at 175           =   700 (0.035, cum 0.985)     cv √3   -> C Z
//	product 9: 1, 1, 1, 1 at 75            =   300 (0.015, cum 1.00)      cv 0    -> C X
//	product 0: 1, 0, 0, 0 free (50-50)     =     0 (0, cum 1.00)          cv √3   -> C Z
//	total 20000. Products 11 and 20 sell in May only: outside the period.
//
// Product ids are deliberately not in revenue order.
var fixtureLines = []line{
	// January. Clients 0 and 1 first buy on day one (2023-01-01).
	{"2023-01-01", 0, "M", 7, 9, "250", "0", 36000},    // 2250, hour 10
	{"2023-01-01", 0, "M", 0, 1, "50", "50", 36000},    // 0 (free line), hour 10
	{"2023-01-01", 1, "F", 3, 8, "200", "50", 3599},    // 1200, hour 0
	{"2023-01-01", 1, "F", 9, 1, "75", "0", 86399},     // 75, hour 23
	{"2023-01-15", 2, "M", 5, 5, "75", "0", 43200},     // 375
	{"2023-01-15", 2, "M", 1, 3, "100", "6.25", 43200}, // 281.25
	{"2023-01-15", 2, "M", 2, 4, "175", "0", 50400},    // 700
	// February (2023-02-15 is loaded and empty).
	{"2023-02-01", 3, "F", 3, 12, "200", "50", 32400}, // 1800
	{"2023-02-01", 3, "F", 5, 5, "75", "0", 32400},    // 375
	{"2023-02-01", 4, "M", 1, 5, "100", "6.25", 0},    // 468.75
	{"2023-02-02", 4, "M", 9, 1, "75", "0", 7200},     // 75
	{"2023-02-10", 0, "M", 7, 11, "250", "0", 36000},  // 2750
	// March (2023-03-20 failed, 2023-03-21 never attempted).
	{"2023-03-01", 5, "F", 5, 5, "75", "0", 54000},     // 375
	{"2023-03-01", 5, "F", 1, 3, "100", "6.25", 54000}, // 281.25
	{"2023-03-10", 0, "M", 7, 9, "250", "0", 36000},    // 2250
	{"2023-03-10", 0, "M", 9, 1, "75", "0", 36000},     // 75
	{"2023-03-15", 1, "F", 3, 8, "200", "50", 72000},   // 1200
	// April.
	{"2023-04-01", 6, "M", 5, 5, "75", "0", 39600},     // 375
	{"2023-04-05", 4, "M", 9, 1, "75", "0", 39600},     // 75
	{"2023-04-10", 0, "M", 7, 11, "250", "0", 36000},   // 2750
	{"2023-04-20", 3, "F", 3, 12, "200", "50", 32400},  // 1800
	{"2023-04-30", 6, "M", 1, 5, "100", "6.25", 79200}, // 468.75
	// May (incomplete month; newest loaded day 2023-05-10).
	{"2023-05-08", 0, "M", 11, 2, "100", "0", 36000}, // 200
	{"2023-05-10", 5, "F", 11, 1, "100", "0", 36000}, // 100
	{"2023-05-10", 5, "F", 11, 1, "100", "0", 36000}, // 100: identical line, a distinct purchase
}

func bulkLines() []line {
	var out []line
	for i := 0; i < 240; i++ {
		g := "F"
		if i%2 == 1 {
			g = "M"
		}
		out = append(out, line{"2023-05-05", 1000 + i, g, 20, 1, "10", "0", 3600*(i%24) + 60*(i/24)})
	}
	return out
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// urls remembers the URL of each test database.
var urls sync.Map

func testURL(t testing.TB, db *sqlx.DB) string {
	u, ok := urls.Load(db)
	if !ok {
		t.Fatal("not a database of newDB")
	}
	return u.(string)
}

// newDB gives a migrated, empty database.
func newDB(t testing.TB) *sqlx.DB {
	t.Helper()
	st := newStore(t)
	return st.DB()
}

func newStore(t testing.TB) *store.Store {
	t.Helper()
	ctx := context.Background()
	u := pgtest.NewDatabase(t)
	st, err := store.Open(ctx, u, store.Options{}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	urls.Store(st.DB(), u)
	return st
}

func insertLines(t testing.TB, db *sqlx.DB, lines []line) {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	lineNo := map[string]int{}
	for _, l := range lines {
		lineNo[l.day]++
		_, err := tx.Exec(`INSERT INTO marketplace.purchases (purchase_date, line_no, client_id, gender, product_id, quantity,
				price_per_item, discount_per_item, total_price, seconds_from_midnight, purchased_at, run_id)
			VALUES ($1::date, $2, $3, $4, $5, $6::integer, $7::numeric, $8::numeric, $6::integer * ($7::numeric - $8::numeric), $9::integer,
				($1::date + $9::integer * interval '1 second') AT TIME ZONE 'Europe/Moscow', 1)`,
			l.day, lineNo[l.day], l.client, l.gender, l.product, l.qty, l.price, l.discount, l.seconds)
		if err != nil {
			t.Fatalf("inserting %+v: %v", l, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// loadFixture inserts the fixture lines and the load log: every day from
// 2023-01-01 to 2023-05-10 loaded, except 2023-03-20 (failed, no lines) and
// 2023-03-21 (never attempted). 2023-01-15 had 2 rejected lines and one
// content change.
func loadFixture(t testing.TB, db *sqlx.DB) {
	t.Helper()
	insertLines(t, db, append(append([]line{}, fixtureLines...), bulkLines()...))
	_, err := db.Exec(`
		INSERT INTO marketplace.day_loads (purchase_date, status, rows_fetched, rows_loaded, attempts, checksum, first_loaded_at, loaded_at)
		SELECT d::date, 'loaded', count(p.line_no), count(p.line_no), 1, 'x', now(), now()
		FROM generate_series(date '2023-01-01', date '2023-05-10', interval '1 day') d
		LEFT JOIN marketplace.purchases p ON p.purchase_date = d::date
		WHERE d::date NOT IN ('2023-03-20', '2023-03-21')
		GROUP BY d;
		UPDATE marketplace.day_loads SET rows_fetched = 5, rows_rejected = 2, rejected_by_reason = '{"zero_quantity": 2}',
			checksum_changes = 1, attempts = 2 WHERE purchase_date = '2023-01-15';
		INSERT INTO marketplace.day_loads (purchase_date, status, attempts, last_error) VALUES ('2023-03-20', 'failed', 3, 'HTTP 503');`)
	if err != nil {
		t.Fatal(err)
	}
}

// refresh drains the queue of changed days.
func refresh(t testing.TB, db *sqlx.DB) time.Duration {
	t.Helper()
	took, err := Refresh(context.Background(), db, quiet())
	if err != nil {
		t.Fatal(err)
	}
	return took
}

// rebuild recomputes the marts from every line.
func rebuild(t testing.TB, db *sqlx.DB) {
	t.Helper()
	if _, err := (&Updater{DB: db, Log: quiet()}).Rebuild(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// expectSameAsRebuild checks that every mart and helper is what a rebuild
// makes of them (what: when, in the errors); the marts are rebuilt after.
func expectSameAsRebuild(t testing.TB, db *sqlx.DB, what string) {
	t.Helper()
	inc := snapshot(t, db)
	rebuild(t, db)
	for name, want := range snapshot(t, db) {
		if inc[name] != want {
			t.Errorf("%s: incremental %s = %s, rebuild %s", what, name, inc[name], want)
		}
	}
}

// rows runs q and renders each row as its columns joined by "|" (NULL for null).
func rows(t testing.TB, db *sqlx.DB, q string, args ...any) []string {
	t.Helper()
	rs, err := db.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rs.Close()
	cols, _ := rs.Columns()
	var out []string
	for rs.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(cols))
		for i, v := range vals {
			parts[i] = "NULL"
			if v.Valid {
				parts[i] = v.String
			}
		}
		out = append(out, strings.Join(parts, "|"))
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func expectRows(t *testing.T, db *sqlx.DB, want []string, q string, args ...any) {
	t.Helper()
	got := rows(t, db, q, args...)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s\n got:\n  %s\nwant:\n  %s", q, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestMartsOnHandMadeFixture(t *testing.T) {
	db := newDB(t)
	loadFixture(t, db)
	if took := refresh(t, db); took <= 0 {
		t.Fatalf("Refresh took %v", took)
	}

	t.Run("daily_sales", func(t *testing.T) {
		q := `SELECT lines, units, revenue, gross_revenue, discount, round(discount_share, 6), clients, products, round(avg_line_value, 4)
			FROM marts.daily_sales WHERE day = $1`
		// Day one: lines 2250 + 0 + 1200 + 75; gross 2250 + 50 + 1600 + 75; discount 50 + 400.
		expectRows(t, db, []string{"4|19|3525.00|3975.00|450.00|0.113208|2|4|881.2500"}, q, "2023-01-01")
		expectRows(t, db, []string{"3|12|1356.25|1375.00|18.75|0.013636|1|3|452.0833"}, q, "2023-01-15")
		// A loaded day without lines is a row of zeros, not a gap.
		expectRows(t, db, []string{"0|0|0|0|0|NULL|0|0|NULL"}, q, "2023-02-15")
		expectRows(t, db, []string{"240|240|2400.00|2400.00|0.00|0.000000|240|1|10.0000"}, q, "2023-05-05")
		// Identical lines are two purchases.
		expectRows(t, db, []string{"2|2|200.00|200.00|0.00|0.000000|1|1|100.0000"}, q, "2023-05-10")
		// Failed and never-attempted days are absent: 130 days - 2.
		expectRows(t, db, []string{"128|2023-01-01|2023-05-10|22800.00|0"},
			`SELECT count(*), min(day), max(day), sum(revenue), count(*) FILTER (WHERE day IN ('2023-03-20', '2023-03-21'))
			 FROM (SELECT day::text, revenue FROM marts.daily_sales) s`)
	})

	t.Run("monthly_sales", func(t *testing.T) {
		expectRows(t, db, []string{
			"2023-01-01|7|31|4881.25|5350.00|468.75|0.087617|3|7|697.3214|NULL|NULL|31",
			"2023-02-01|5|34|5468.75|6100.00|631.25|0.103484|3|5|1093.7500|587.50|0.120359|28",
			"2023-03-01|5|26|4181.25|4600.00|418.75|0.091033|3|5|836.2500|-1287.50|-0.235429|29",
			"2023-04-01|5|34|5468.75|6100.00|631.25|0.103484|4|5|1093.7500|1287.50|0.307922|30",
			"2023-05-01|243|244|2800.00|2800.00|0.00|0.000000|242|2|11.5226|-2668.75|-0.488000|10",
		}, `SELECT month::text, lines, units, revenue, gross_revenue, discount, round(discount_share, 6), clients, products,
				round(avg_line_value, 4), revenue_mom_change, round(revenue_mom_change_share, 6), days_loaded
			FROM marts.monthly_sales ORDER BY month`)
	})

	t.Run("sales_by_gender", func(t *testing.T) {
		q := `SELECT gender, lines, units, revenue, gross_revenue, discount, clients, round(avg_line_value, 4)
			FROM marts.sales_by_gender WHERE day = $1 ORDER BY gender`
		expectRows(t, db, []string{
			"F|2|9|1275.00|1675.00|400.00|1|637.5000",
			"M|2|10|2250.00|2300.00|50.00|1|1125.0000",
		}, q, "2023-01-01")
		expectRows(t, db, []string{
			"F|120|120|1200.00|1200.00|0.00|120|10.0000",
			"M|120|120|1200.00|1200.00|0.00|120|10.0000",
		}, q, "2023-05-05")
		expectRows(t, db, []string{"22800.00|0"}, `SELECT sum(revenue), count(*) FILTER (WHERE day = '2023-02-15') FROM marts.sales_by_gender`)
	})

	t.Run("sales_by_hour", func(t *testing.T) {
		// 3599 s is still hour 0, 86399 s hour 23.
		expectRows(t, db, []string{"0|1|8|1200.00|1", "10|2|10|2250.00|1", "23|1|1|75.00|1"},
			`SELECT hour, lines, units, revenue, clients FROM marts.sales_by_hour WHERE day = '2023-01-01' ORDER BY hour`)
		expectRows(t, db, []string{"24|0|23|10|10|100.00|10"},
			`SELECT count(*), min(hour), max(hour), min(lines), max(lines), max(revenue), min(clients) FROM marts.sales_by_hour WHERE day = '2023-05-05'`)
	})

	t.Run("client_activity_daily", func(t *testing.T) {
		q := `SELECT active_clients, active_clients_7d, active_clients_30d, new_clients, returning_clients
			FROM marts.client_activity_daily WHERE day = $1`
		for _, c := range []struct{ day, want string }{
			{"2023-01-01", "2|2|2|2|0"},         // day one: everyone is new
			{"2023-01-07", "0|2|2|0|0"},         // day one still in the 7-day window
			{"2023-01-08", "0|0|2|0|0"},         // ... and out of it
			{"2023-01-15", "1|1|3|1|0"},         // client 2 new
			{"2023-01-30", "0|0|3|0|0"},         // day one still in the 30-day window
			{"2023-01-31", "0|0|1|0|0"},         // ... and out of it
			{"2023-02-02", "1|2|3|0|1"},         // client 4 returns a day after its first purchase
			{"2023-02-15", "0|1|3|0|0"},         // the empty day keeps its rolling counts
			{"2023-03-10", "1|1|2|0|1"},         // client 0 returning
			{"2023-03-22", "0|0|3|0|0"},         // after the failed and the missing day
			{"2023-05-05", "240|241|243|240|0"}, // 240 new clients
			{"2023-05-10", "1|242|244|0|1"},     // the newest day
		} {
			expectRows(t, db, []string{c.want}, q, c.day)
		}
		expectRows(t, db, []string{"128|247"}, `SELECT count(*), sum(new_clients) FROM marts.client_activity_daily`)
	})

	t.Run("product_abc_xyz", func(t *testing.T) {
		expectRows(t, db, []string{
			"7|10000.00|40|0.500000|0.500000|A|0.100000|X|AX|4|2023-01-01|2023-04-30",
			"3|6000.00|40|0.300000|0.800000|A|0.200000|Y|AY|4|2023-01-01|2023-04-30",
			"1|1500.00|16|0.075000|0.950000|B|0.250000|Y|BY|4|2023-01-01|2023-04-30",
			"5|1500.00|20|0.075000|0.950000|B|0.000000|X|BX|4|2023-01-01|2023-04-30",
			"2|700.00|4|0.035000|0.985000|C|1.732051|Z|CZ|4|2023-01-01|2023-04-30",
			"9|300.00|4|0.015000|1.000000|C|0.000000|X|CX|4|2023-01-01|2023-04-30",
			"0|0.00|1|0.000000|1.000000|C|1.732051|Z|CZ|4|2023-01-01|2023-04-30",
		}, `SELECT product_id, revenue, units, round(revenue_share, 6), round(cumulative_share, 6), abc_class, round(cv, 6),
				xyz_class, abc_xyz_class, months, period_start::text, period_end::text
			FROM marts.product_abc_xyz ORDER BY revenue DESC, product_id`)
	})

	t.Run("client_rfm", func(t *testing.T) {
		// 247 clients; score = 1 + floor(3 * strictly worse / 247): 0..82 -> 1, 83..164 -> 2, 165.. -> 3.
		// Recency (as of 2023-05-10), clients strictly less recent: 2:0, 1:1, 4:2, 3:3, 6:4,
		// the 240 May 5 clients: 5 (all tied), 0:245, 5:246.
		// Frequency: 241 clients bought on one day (score 1), the rest have >= 241 below.
		// Monetary: the 240 clients with 10 have 0 below, every other >= 240.
		expectRows(t, db, []string{
			"0|2023-05-10|2|5|10275.00|3|3|3|333|champions",
			"1|2023-05-10|56|2|2475.00|1|3|3|133|at_risk",
			"2|2023-05-10|115|1|1356.25|1|1|3|113|lost",
			"3|2023-05-10|20|2|3975.00|1|3|3|133|at_risk",
			"4|2023-05-10|35|3|618.75|1|3|3|133|at_risk",
			"5|2023-05-10|0|2|856.25|3|3|3|333|champions",
			"6|2023-05-10|10|2|843.75|1|3|3|133|at_risk",
		}, `SELECT client_id, as_of::text, recency_days, frequency, monetary, r_score, f_score, m_score, rfm_code, segment
			FROM marts.client_rfm WHERE client_id < 1000 ORDER BY client_id`)
		expectRows(t, db, []string{"240|240"}, `SELECT count(*), count(*) FILTER (WHERE recency_days = 5 AND frequency = 1
			AND monetary = 10 AND rfm_code = '111' AND segment = 'lost' AND first_purchase_date = '2023-05-05')
			FROM marts.client_rfm WHERE client_id >= 1000`)
	})

	t.Run("cohort_retention", func(t *testing.T) {
		expectRows(t, db, []string{
			// Clients 0, 1, 2: 0 and 1 from day one.
			"2023-01-01|0|2023-01-01|3|3|1.0000|4881.25|4881.25|1627.0833",
			"2023-01-01|1|2023-02-01|3|1|0.3333|2750.00|7631.25|2543.7500",
			"2023-01-01|2|2023-03-01|3|2|0.6667|3525.00|11156.25|3718.7500",
			"2023-01-01|3|2023-04-01|3|1|0.3333|2750.00|13906.25|4635.4167",
			"2023-01-01|4|2023-05-01|3|1|0.3333|200.00|14106.25|4702.0833",
			// Clients 3 and 4; nobody back in March: the curve stays flat.
			"2023-02-01|0|2023-02-01|2|2|1.0000|2718.75|2718.75|1359.3750",
			"2023-02-01|1|2023-03-01|2|0|0.0000|0|2718.75|1359.3750",
			"2023-02-01|2|2023-04-01|2|2|1.0000|1875.00|4593.75|2296.8750",
			"2023-02-01|3|2023-05-01|2|0|0.0000|0|4593.75|2296.8750",
			"2023-03-01|0|2023-03-01|1|1|1.0000|656.25|656.25|656.2500",
			"2023-03-01|1|2023-04-01|1|0|0.0000|0|656.25|656.2500",
			"2023-03-01|2|2023-05-01|1|1|1.0000|200.00|856.25|856.2500",
			"2023-04-01|0|2023-04-01|1|1|1.0000|843.75|843.75|843.7500",
			"2023-04-01|1|2023-05-01|1|0|0.0000|0|843.75|843.7500",
			"2023-05-01|0|2023-05-01|240|240|1.0000|2400.00|2400.00|10.0000",
		}, `SELECT cohort_month::text, months_since_first_purchase, activity_month::text, cohort_size, active_clients,
				round(retention_share, 4), revenue, cumulative_revenue, round(cumulative_revenue_per_client, 4)
			FROM marts.cohort_retention ORDER BY cohort_month, months_since_first_purchase`)
	})

	t.Run("client_first_purchase", func(t *testing.T) {
		expectRows(t, db, []string{
			"0|2023-01-01|2023-01-01", "1|2023-01-01|2023-01-01", "2|2023-01-15|2023-01-01", "3|2023-02-01|2023-02-01",
			"4|2023-02-01|2023-02-01", "5|2023-03-01|2023-03-01", "6|2023-04-01|2023-04-01",
		}, `SELECT client_id, first_purchase_date::text, cohort_month::text FROM marts.client_first_purchase WHERE client_id < 1000 ORDER BY 1`)
	})

	t.Run("load_health", func(t *testing.T) {
		q := `SELECT status, rows_fetched, rows_loaded, rows_rejected, rejected_by_reason::text, checksum_changed,
				checksum_changes, attempts, coalesce(last_error, '') FROM marts.load_health WHERE day = $1`
		expectRows(t, db, []string{`loaded|5|3|2|{"zero_quantity": 2}|true|1|2|`}, q, "2023-01-15")
		expectRows(t, db, []string{`loaded|0|0|0|{}|false|0|1|`}, q, "2023-02-15")
		expectRows(t, db, []string{`failed|0|0|0|{}|false|0|3|HTTP 503`}, q, "2023-03-20")
		expectRows(t, db, []string{`missing|0|0|0|{}|false|0|0|`}, q, "2023-03-21")
		expectRows(t, db, []string{`loaded|240|240|0|{}|false|0|1|`}, q, "2023-05-05")
		expectRows(t, db, []string{"failed|1", "loaded|128", "missing|1"},
			`SELECT status, count(*) FROM marts.load_health GROUP BY status ORDER BY status`)
		expectRows(t, db, []string{"2023-01-15|zero_quantity|2"}, `SELECT day::text, reason, rows_rejected FROM marts.load_rejections`)
	})

	t.Run("months_known", func(t *testing.T) {
		expectRows(t, db, []string{"4|4"}, `SELECT DISTINCT months, months_known FROM marts.product_abc_xyz`)
		expectRows(t, db, []string{"2023-01-01|4|5"}, `SELECT cohort_month::text, months_since_first_purchase, months_known
			FROM marts.cohort_retention WHERE cohort_month = '2023-01-01' ORDER BY months_since_first_purchase DESC LIMIT 1`)
	})

	t.Run("rebuild gives the same marts", func(t *testing.T) {
		before := snapshot(t, db)
		rebuild(t, db)
		after := snapshot(t, db)
		for name, b := range before {
			if after[name] != b {
				t.Errorf("%s differs after a rebuild: %s -> %s", name, b, after[name])
			}
		}
	})
}

// A freshly migrated database answers every mart, with no rows, so that
// dashboards work before the first load.
func TestMartsReadableRightAfterMigrate(t *testing.T) {
	db := newDB(t)
	for _, name := range append(append([]string{}, Names...), Helpers...) {
		expectRows(t, db, []string{"0"}, `SELECT count(*) FROM `+name)
	}
	// An update of an empty queue is a no-op.
	if _, err := Refresh(context.Background(), db, quiet()); err != nil {
		t.Fatal(err)
	}
	expectRows(t, db, []string{"0"}, `SELECT count(*) FROM marts.refresh_state`)
}

// snapshot fingerprints the content of every mart and helper.
func snapshot(t testing.TB, db *sqlx.DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, name := range append(append([]string{}, Names...), Helpers...) {
		var s string
		q := fmt.Sprintf(`SELECT count(*)::text || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM %s t`, name)
		if err := db.Get(&s, q); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = s
	}
	return out
}

// Loading a day again replaces its lines (delete + insert, the API may send
// them in another order): no mart may change.
func TestReloadingSameDaysChangesNoMart(t *testing.T) {
	db := newDB(t)
	loadFixture(t, db)
	refresh(t, db)
	before := snapshot(t, db)

	for _, day := range []string{"2023-01-01", "2023-02-10", "2023-05-05", "2023-05-10"} {
		tx := db.MustBegin()
		for _, q := range []string{
			`CREATE TEMP TABLE again ON COMMIT DROP AS SELECT * FROM marketplace.purchases WHERE purchase_date = $1`,
			`DELETE FROM marketplace.purchases WHERE purchase_date = $1`,
			// Same lines, reversed order, another run.
			`INSERT INTO marketplace.purchases
			SELECT purchase_date, (SELECT count(*) FROM again) + 1 - line_no, client_id, gender, product_id, quantity,
				price_per_item, discount_per_item, total_price, seconds_from_midnight, purchased_at, run_id + 1
			FROM again WHERE purchase_date = $1`,
			// What the loader records in the same transaction (it queues the day).
			`UPDATE marketplace.day_loads SET updated_at = updated_at WHERE purchase_date = $1`,
		} {
			if _, err := tx.Exec(q, day); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if took := refresh(t, db); took <= 0 {
		t.Fatal("the second refresh did not run")
	}
	after := snapshot(t, db)
	for name, b := range before {
		if after[name] != b {
			t.Errorf("%s changed after reloading the same days: %s -> %s", name, b, after[name])
		}
	}
}

// The thresholds are data: an UPDATE reclassifies at once, no migration and
// no refresh needed; invalid thresholds are refused.
func TestSettingsChangeReclassifies(t *testing.T) {
	db := newDB(t)
	loadFixture(t, db)
	refresh(t, db)
	q := `SELECT product_id, abc_xyz_class FROM marts.product_abc_xyz ORDER BY revenue DESC, product_id`
	expectRows(t, db, []string{"7|AX", "3|AY", "1|BY", "5|BX", "2|CZ", "9|CX", "0|CZ"}, q)

	db.MustExec(`UPDATE marts.abc_xyz_settings SET abc_a_max = 0.5, abc_b_max = 0.9, xyz_x_max = 0, xyz_y_max = 0.2, updated_at = now()`)
	// cum shares 0.5 / 0.8 / 0.95 / 0.95 / ...; cv 0.1 / 0.2 / 0.25 / 0 / √3 / 0 / √3.
	want := []string{"7|AY", "3|BY", "1|CZ", "5|CX", "2|CZ", "9|CX", "0|CZ"}
	expectRows(t, db, want, q)
	refresh(t, db)
	expectRows(t, db, want, q)

	if _, err := db.Exec(`UPDATE marts.abc_xyz_settings SET abc_a_max = 0.96`); err == nil {
		t.Error("abc_a_max above abc_b_max was accepted")
	}
	if _, err := db.Exec(`INSERT INTO marts.abc_xyz_settings (id) VALUES (false)`); err == nil {
		t.Error("a second settings row was accepted")
	}
}

// Nine clients with distinct recency, frequency and monetary values split
// 3/3/3 on every score and land in the nine segments.
func TestRFMTercilesAndSegments(t *testing.T) {
	db := newDB(t)
	// Client k (1..9) last buys on 2024-06-30 minus (9-k) days, on f[k]
	// distinct days 10 days apart; its last line is worth m[k], the earlier
	// ones are free lines.
	f := []int{0, 9, 5, 1, 8, 4, 2, 7, 6, 3}
	m := []int{0, 500, 900, 100, 700, 300, 800, 200, 600, 400}
	last, _ := time.Parse(time.DateOnly, "2024-06-30")
	var lines []line
	for k := 1; k <= 9; k++ {
		d := last.AddDate(0, 0, -(9 - k))
		lines = append(lines, line{d.Format(time.DateOnly), k, "F", 1, 1, fmt.Sprint(m[k]), "0", 100})
		for j := 1; j < f[k]; j++ {
			lines = append(lines, line{d.AddDate(0, 0, -10*j).Format(time.DateOnly), k, "F", 1, 1, "10", "10", 100})
		}
	}
	insertLines(t, db, lines)
	rebuild(t, db)
	// R: clients 1-3 least recent -> 1, 4-6 -> 2, 7-9 -> 3.
	// F: frequency 1,2,3 (clients 3,6,9) -> 1; 4,5,6 (5,2,8) -> 2; 7,8,9 (7,4,1) -> 3.
	// M: 100,200,300 (3,7,5) -> 1; 400,500,600 (9,1,8) -> 2; 700,800,900 (4,6,2) -> 3.
	expectRows(t, db, []string{
		"1|8|9|500|132|at_risk",
		"2|7|5|900|123|hibernating",
		"3|6|1|100|111|lost",
		"4|5|8|700|233|loyal",
		"5|4|4|300|221|need_attention",
		"6|3|2|800|213|about_to_sleep",
		"7|2|7|200|331|champions",
		"8|1|6|600|322|potential_loyalists",
		"9|0|3|400|312|new",
	}, `SELECT client_id, recency_days, frequency, monetary::integer, rfm_code, segment FROM marts.client_rfm ORDER BY client_id`)
}

// The monetary boundaries are the clients' values in numeric order, also
// when the boundaries' histogram bucket holds amounts on both sides of a
// power of ten: 999.50, 1000.20 and 1001.00 share a bucket, and as text
// "1000.20" < "1001.00" < "999.50".
func TestMonetaryTercilesSortNumerically(t *testing.T) {
	db := newDB(t)
	insertLines(t, db, []line{
		{"2024-06-01", 1, "F", 1, 1, "1001.00", "0", 100},
		{"2024-06-01", 2, "F", 1, 1, "999.50", "0", 100},
		{"2024-06-01", 3, "F", 1, 1, "1000.20", "0", 100},
	})
	rebuild(t, db)
	expectRows(t, db, []string{"1|3"}, `SELECT count(DISTINCT m_bucket), count(*) FROM marts.client_stats`)
	expectRows(t, db, []string{"999.50|1000.20"}, `SELECT m_2, m_3 FROM marts.rfm_thresholds`)
}

// Every relation and column in schema marts is documented in the database,
// and every exported name exists.
func TestMartsAreDocumented(t *testing.T) {
	db := newDB(t)
	expectRows(t, db, nil, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'marts' AND c.relkind IN ('r', 'v', 'm') AND obj_description(c.oid, 'pg_class') IS NULL`)
	expectRows(t, db, nil, `SELECT c.relname || '.' || a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'marts' AND c.relkind IN ('r', 'v', 'm') AND a.attnum > 0 AND NOT a.attisdropped
			AND coalesce(col_description(c.oid, a.attnum), '') = ''`)
	for _, name := range append(append([]string{}, Names...), Helpers...) {
		var ok bool
		if err := db.Get(&ok, `SELECT to_regclass($1) IS NOT NULL`, name); err != nil || !ok {
			t.Errorf("%s does not exist (%v)", name, err)
		}
	}
}
