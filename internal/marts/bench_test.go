package marts

import (
	"strings"
	"testing"
	"time"
)

// BenchmarkRefresh refreshes the marts over two million generated lines (a
// year: 365 days of ~5,480 lines, up to a million clients, 50,000 products).
// The first, populating refresh is logged; the timed loop measures the
// steady-state refresh that runs after every load (CONCURRENTLY).
//
//	go test -run '^$' -bench BenchmarkRefresh -benchtime 1x ./internal/marts/
func BenchmarkRefresh(b *testing.B) {
	db := newDB(b)
	t0 := time.Now()
	db.MustExec(`SELECT setseed(0.42)`)
	db.MustExec(`
		INSERT INTO marketplace.purchases (purchase_date, line_no, client_id, gender, product_id, quantity,
			price_per_item, discount_per_item, total_price, seconds_from_midnight, purchased_at, run_id)
		SELECT day, line_no, client_id, CASE WHEN client_id % 2 = 0 THEN 'F' ELSE 'M' END, product_id, quantity,
			price, discount, quantity * (price - discount), secs,
			(day + secs * interval '1 second') AT TIME ZONE 'Europe/Moscow', 1
		FROM (
			SELECT date '2023-01-01' + (n / 5480)::integer AS day, (n % 5480)::integer + 1 AS line_no,
				(random() * 999999)::integer AS client_id, (random() * 49999)::integer AS product_id,
				1 + (random() * 98)::integer AS quantity, price, floor(price * random() * 0.3) AS discount,
				(random() * 86399)::integer AS secs
			FROM (SELECT n, (1 + floor(random() * 5000))::numeric AS price
			      FROM generate_series(0, 2000199) AS n) g
		) x`)
	db.MustExec(`
		INSERT INTO marketplace.day_loads (purchase_date, status, rows_fetched, rows_loaded, attempts, checksum, loaded_at)
		SELECT purchase_date, 'loaded', count(*), count(*), 1, 'x', now() FROM marketplace.purchases GROUP BY 1;
		ANALYZE marketplace.purchases; ANALYZE marketplace.day_loads`)
	var lines int
	if err := db.Get(&lines, `SELECT count(*) FROM marketplace.purchases`); err != nil {
		b.Fatal(err)
	}
	b.Logf("generated %d lines in %v", lines, time.Since(t0).Round(time.Millisecond))

	first := refresh(b, db)
	b.Logf("first (populating) refresh: %v", first.Round(time.Millisecond))

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		refresh(b, db)
	}
	b.StopTimer()
	b.Logf("last refresh, ms: %s", strings.Join(rows(b, db, `SELECT mart || '=' || duration_ms FROM marts.refresh_state ORDER BY started_at`), " "))
}
