package marts

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/marketplace-etl/marketplace-etl/internal/pgtest"
	"github.com/marketplace-etl/marketplace-etl/internal/store"
)

// genLines inserts n generated lines of 5,480 a day from 2023-01-01 (random
// clients among a million, 50,000 products, like the simulator) with their
// day_loads rows, which queues every day.
func genLines(b *testing.B, db *sqlx.DB, from string, n int) {
	b.Helper()
	db.MustExec(`SELECT setseed(0.42 * (($1::date - date '2000-01-01') % 1000) / 1000.0)`, from)
	db.MustExec(`
		INSERT INTO marketplace.purchases (purchase_date, line_no, client_id, gender, product_id, quantity,
			price_per_item, discount_per_item, total_price, seconds_from_midnight, purchased_at, run_id)
		SELECT day, line_no, client_id, CASE WHEN client_id % 2 = 0 THEN 'F' ELSE 'M' END, product_id, quantity,
			price, discount, quantity * (price - discount), secs,
			(day + secs * interval '1 second') AT TIME ZONE 'Europe/Moscow', 1
		FROM (
			SELECT $1::date + (n / 5480)::integer AS day, (n % 5480)::integer + 1 AS line_no,
				(random() * 999999)::integer AS client_id, (random() * 49999)::integer AS product_id,
				1 + (random() * 98)::integer AS quantity, price, floor(price * random() * 0.3) AS discount,
				(random() * 86399)::integer AS secs
			FROM (SELECT n, (1 + floor(random() * 5000))::numeric AS price
			      FROM generate_series(0, $2::integer - 1) AS n) g
		) x`, from, n)
	db.MustExec(`
		INSERT INTO marketplace.day_loads (purchase_date, status, rows_fetched, rows_loaded, attempts, checksum, loaded_at)
		SELECT purchase_date, 'loaded', count(*), count(*), 1, 'x', now() FROM marketplace.purchases
		WHERE purchase_date >= $1::date GROUP BY 1
		ON CONFLICT (purchase_date) DO UPDATE SET attempts = day_loads.attempts + 1`, from)
	db.MustExec(`ANALYZE marketplace.purchases; ANALYZE marketplace.day_loads`)
}

// benchDB holds the generated history across the benchmark's runs (the
// framework calls it with b.N = 1 first, then with the requested count).
var benchDB struct {
	once sync.Once
	db   *sqlx.DB
	day  time.Time
	err  error
}

// backendCPU is the CPU time (user + system, seconds) of the database's
// client backends: the benchmark's pool keeps its two connections (an
// update runs its two halves on two), so this is what the updates cost
// PostgreSQL, whatever share of the machine other work took meanwhile. -1
// when the server is not on this machine.
func backendCPU(db *sqlx.DB) float64 {
	var pids []int
	if err := db.Select(&pids, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'`); err != nil {
		return -1
	}
	total := 0.0
	for _, pid := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return -1
		}
		// The fields after the command name, which is in parentheses.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) < 13 {
			return -1
		}
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		total += (ut + st) / 100 // USER_HZ
	}
	return total
}

// BenchmarkUpdate measures the marts work of a backfill (the first Update
// drains every day of the history) and of a daily pass (one new day of
// 5,480 lines). MARTS_BENCH_LINES sets the history (default 2,000,200
// lines, a year); MARTS_BENCH_VERBOSE=1 logs every step's duration.
//
//	go test -run '^$' -bench BenchmarkUpdate -benchtime 5x -timeout 2h ./internal/marts/
func BenchmarkUpdate(b *testing.B) {
	n := 2000200
	if s := os.Getenv("MARTS_BENCH_LINES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatalf("MARTS_BENCH_LINES=%q: expected a number of lines", s)
		}
	}
	log := quiet()
	if os.Getenv("MARTS_BENCH_VERBOSE") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx := context.Background()
	benchDB.once.Do(func() {
		c, err := pgtest.Shared()
		if err != nil {
			benchDB.err = err
			return
		}
		u, err := c.CreateDatabase()
		if err != nil {
			benchDB.err = err
			return
		}
		st, err := store.Open(ctx, u, store.Options{}, quiet())
		if err != nil {
			benchDB.err = err
			return
		}
		if benchDB.err = st.Migrate(ctx); benchDB.err != nil {
			return
		}
		db := st.DB()
		db.SetMaxOpenConns(2)
		db.SetMaxIdleConns(2)
		db.SetConnMaxIdleTime(0)
		db.SetConnMaxLifetime(0)
		t0 := time.Now()
		genLines(b, db, "2023-01-01", n)
		fmt.Fprintf(os.Stderr, "generated %d lines in %v\n", n, time.Since(t0).Round(time.Millisecond))
		cpu0 := backendCPU(db)
		res, err := (&Updater{DB: db, Log: log}).Update(ctx)
		if err != nil {
			benchDB.err = err
			return
		}
		fmt.Fprintf(os.Stderr, "first update (every day, as after a backfill): %d days in %v, PostgreSQL CPU %.2f s\n",
			res.Days, res.Duration.Round(time.Millisecond), backendCPU(db)-cpu0)
		db.MustExec(`VACUUM ANALYZE`)
		benchDB.db = db
		benchDB.day = time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, (n+5479)/5480)
	})
	if benchDB.err != nil {
		b.Fatal(benchDB.err)
	}
	db := benchDB.db
	u := &Updater{DB: db, Log: log}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		day := benchDB.day.Format(time.DateOnly)
		genLines(b, db, day, 5480)
		benchDB.day = benchDB.day.AddDate(0, 0, 1)
		cpu0 := backendCPU(db)
		b.StartTimer()
		res, err := u.Update(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if res.Days != 1 {
			b.Fatalf("updated %d days, want 1", res.Days)
		}
		fmt.Fprintf(os.Stderr, "daily update %s: %v, PostgreSQL CPU %.3f s\n", day, res.Duration.Round(time.Millisecond), backendCPU(db)-cpu0)
		b.StartTimer()
	}
}
