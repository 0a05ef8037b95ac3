package store

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/marketplace-etl/marketplace-etl/internal/purchases"
)

// BenchmarkWriteSummary is what writing a day's summary costs, per day of
// the API's shape (5,500 lines; clients among a million, products among
// 50,000, as the simulator's): formatting its values here, and PostgreSQL
// parsing its arrays and storing the row (its arrays out of line,
// uncompressed), in a statement and a transaction of its own.
func BenchmarkWriteSummary(b *testing.B) {
	ctx := context.Background()
	s := migratedStore(b)
	rng := rand.New(rand.NewPCG(1, 2))
	sum := getSummary()
	for range 5500 {
		price := purchases.Cents(1 + rng.Int64N(10_000_000))
		q := 1 + rng.Int64N(10)
		sum.Add(&purchases.Record{ClientID: rng.Int64N(1_000_000), Gender: "FM"[rng.IntN(2)], Seconds: rng.Int64N(purchases.SecondsPerDay),
			ProductID: rng.Int64N(50_000), Quantity: q, Price: price, Total: purchases.Cents(q) * price})
	}
	if !sum.Finish() {
		b.Fatal("invalid")
	}
	day := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	q := insertSummary(2)
	for b.Loop() {
		if _, err := s.DB().ExecContext(ctx, q, sum.values([]any{day.Format(time.DateOnly)})...); err != nil {
			b.Fatal(err)
		}
		day = day.AddDate(0, 0, 1)
	}
	b.ReportMetric(float64(len(sum.text)), "value-bytes")
	var size int64
	if err := s.DB().QueryRowContext(ctx, `SELECT pg_total_relation_size('marketplace.day_summaries') / count(*) FROM marketplace.day_summaries`).Scan(&size); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(size), "stored-bytes/day")
}
