package pipeline

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/marketplace-etl/marketplace-etl/internal/etl"
	"github.com/marketplace-etl/marketplace-etl/internal/marketplace"
	"github.com/marketplace-etl/marketplace-etl/internal/store"
)

// referenceSummary is marketplace.day_summaries' row of day $1 computed
// from the day's lines with SQL, as text: what the loader's summary must
// be, to the digit (numerics with two decimals as PostgreSQL prints sum()
// of the money columns, arrays in key order).
const referenceSummary = `
WITH l AS (SELECT * FROM marketplace.purchases WHERE purchase_date = $1::date),
g AS (SELECT gender, count(*) AS n, sum(quantity) AS u, sum(total_price) AS r, sum(quantity * price_per_item) AS gr,
		sum(quantity * discount_per_item) AS d, count(DISTINCT client_id) AS c FROM l GROUP BY gender),
h AS (SELECT seconds_from_midnight / 3600 AS hour, count(*) AS n, sum(quantity) AS u, sum(total_price) AS r,
		count(DISTINCT client_id) AS c FROM l GROUP BY 1),
p AS (SELECT product_id, sum(quantity) AS u, sum(total_price) AS r FROM l GROUP BY 1),
c AS (SELECT client_id, sum(total_price) AS r FROM l GROUP BY 1)
SELECT ROW($1::date, t.n, t.u, t.r, t.gr, t.d, t.c, g.genders, g.n, g.u, g.r, g.gr, g.d, g.c,
		h.hours, h.n, h.u, h.r, h.c, p.ids, p.u, p.r, c.ids, c.r)::text
FROM (SELECT count(*) AS n, coalesce(sum(quantity), 0) AS u, coalesce(sum(total_price), 0.00) AS r,
		coalesce(sum(quantity * price_per_item), 0.00) AS gr, coalesce(sum(quantity * discount_per_item), 0.00) AS d,
		count(DISTINCT client_id) AS c FROM l) AS t,
	(SELECT coalesce(array_agg(gender ORDER BY gender), '{}') AS genders, coalesce(array_agg(n ORDER BY gender), '{}') AS n,
		coalesce(array_agg(u ORDER BY gender), '{}') AS u, coalesce(array_agg(r ORDER BY gender), '{}') AS r,
		coalesce(array_agg(gr ORDER BY gender), '{}') AS gr, coalesce(array_agg(d ORDER BY gender), '{}') AS d,
		coalesce(array_agg(c ORDER BY gender), '{}') AS c FROM g) AS g,
	(SELECT coalesce(array_agg(hour ORDER BY hour), '{}') AS hours, coalesce(array_agg(n ORDER BY hour), '{}') AS n,
		coalesce(array_agg(u ORDER BY hour), '{}') AS u, coalesce(array_agg(r ORDER BY hour), '{}') AS r,
		coalesce(array_agg(c ORDER BY hour), '{}') AS c FROM h) AS h,
	(SELECT coalesce(array_agg(product_id ORDER BY product_id), '{}') AS ids, coalesce(array_agg(u ORDER BY product_id), '{}') AS u,
		coalesce(array_agg(r ORDER BY product_id), '{}') AS r FROM p) AS p,
	(SELECT coalesce(array_agg(client_id ORDER BY client_id), '{}') AS ids, coalesce(array_agg(r ORDER BY client_id), '{}') AS r FROM c) AS c`

// summaryFixture is a pipeline on a real database.
type summaryFixture struct {
	p  *Pipeline
	db *sql.DB
	st *store.Store
}

func newSummaryFixture(t *testing.T, sim marketplace.SimConfig) *summaryFixture {
	p := newTestPipeline(t, sim)
	st := p.Store.(dbStore).Store
	return &summaryFixture{p: p, db: st.DB().DB, st: st}
}

func (f *summaryFixture) run(t *testing.T, plan Plan) etl.Result {
	t.Helper()
	res, err := f.p.Execute(context.Background(), 1, plan)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// summary is the stored summary of date as text ("" when there is none),
// after checking that a stored one equals the reference.
func (f *summaryFixture) summary(t *testing.T, date string) string {
	t.Helper()
	var got sql.NullString
	var want string
	if err := f.db.QueryRow(`SELECT (SELECT ROW(s.*)::text FROM marketplace.day_summaries AS s WHERE purchase_date = $1), (`+referenceSummary+`)`,
		date).Scan(&got, &want); err != nil {
		t.Fatal(err)
	}
	if got.Valid && got.String != want {
		t.Fatalf("the summary of %s is not its lines' one:\n got %.600s\nwant %.600s", date, got.String, want)
	}
	return got.String
}

// lineCount is how many lines date has.
func (f *summaryFixture) lineCount(t *testing.T, date string) int {
	t.Helper()
	var n int
	if err := f.db.QueryRow(`SELECT count(*) FROM marketplace.purchases WHERE purchase_date = $1`, date).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Days of the simulator, with its quirks (rejected lines, free lines, whole
// numbers sent as 12.0) and its sizes (1,000 to 10,000 lines), get the
// summary that SQL computes from their lines.
func TestDaySummariesOfSimulatedDaysEqualTheirLines(t *testing.T) {
	f := newSummaryFixture(t, marketplace.SimConfig{Seed: 11})
	res := f.run(t, Plan{Days: days(t, "2023-03-01", "2023-03-04")})
	if res.Totals.DaysLoaded != 4 {
		t.Fatalf("totals %+v, want 4 days loaded", res.Totals)
	}
	for _, d := range days(t, "2023-03-01", "2023-03-04") {
		if date := d.Format(time.DateOnly); f.summary(t, date) == "" {
			t.Errorf("%s (%d lines) has no summary", date, f.lineCount(t, date))
		}
	}
}

// purchase is one line of the API.
func purchase(date string, client int, gender string, seconds, product, quantity int, price, discount string, total string) string {
	return fmt.Sprintf(`{"client_id": %d, "gender": "%s", "purchase_datetime": "%s", "purchase_time_as_seconds_from_midnight": %d, `+
		`"product_id": %d, "quantity": %d, "price_per_item": %s, "discount_per_item": %s, "total_price": %s}`,
		client, gender, date, seconds, product, quantity, price, discount, total)
}

// A day built by hand: both genders, several hours, a client twice in an
// hour, in two hours and with both genders, a free line, cents.
func handDay(date string) []string {
	return []string{
		purchase(date, 7, "F", 10, 1, 1, "1.00", "0", "1.00"),
		purchase(date, 7, "F", 20, 1, 2, "1.00", "0", "2.00"),
		purchase(date, 7, "M", 3700, 2, 1, "0.50", "0.10", "0.40"),
		purchase(date, 3, "M", 3600, 2, 3, "5", "5", "0"),
		purchase(date, 9, "F", 86399, 40000, 1, "1234.56", "0.56", "1234.00"),
		purchase(date, 2147483647, "M", 43210, 0, 100, "0.01", "0", "1"),
	}
}

// overflowDay has a line whose quantity × price_per_item does not fit in
// 64 bits of cents: valid, loaded, but its summary cannot be exact.
func overflowDay(date string) []string {
	return append(handDay(date), purchase(date, 1, "F", 5, 5, 2147483647, "100000000", "100000000", "0"))
}

// Every way a day's lines change keeps its summary in step: written with
// the lines, replaced with them, kept when they are, and gone when they are
// gone or cannot be summed exactly.
func TestDaySummariesFollowTheirLines(t *testing.T) {
	ctx := context.Background()
	f := newSummaryFixture(t, marketplace.SimConfig{})
	api := newFakeSource(&journal{})
	f.p.API = api
	const d1, d2, d3 = "2023-01-01", "2023-01-02", "2023-01-03"
	api.set(d1, answer{lines: handDay(d1)})
	api.set(d2, answer{lines: lines(d2, 10)})
	api.set(d3, answer{lines: overflowDay(d3)})
	plan := func(ds ...string) Plan {
		p := Plan{Force: true}
		for _, d := range ds {
			p.Days = append(p.Days, date(t, d))
		}
		return p
	}
	if res := f.run(t, plan(d1, d2, d3)); res.Totals.DaysLoaded != 3 {
		t.Fatalf("totals %+v, want 3 days loaded", res.Totals)
	}
	first := f.summary(t, d1)
	if first == "" || f.summary(t, d2) == "" {
		t.Fatalf("loaded days without a summary: %q, %q", first, f.summary(t, d2))
	}
	if f.summary(t, d3) != "" || f.lineCount(t, d3) != 7 {
		t.Fatalf("the day that overflows: summary %q, %d lines; want its 7 lines and no summary", f.summary(t, d3), f.lineCount(t, d3))
	}

	// A loaded day without lines has a summary of zeros.
	empty := date(t, "2023-01-04")
	tx, err := f.st.BeginDay(ctx, empty, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Accept(ctx, etl.Summary{Checksum: "v1:0:test"}); err != nil {
		t.Fatal(err)
	}
	if got, want := f.summary(t, "2023-01-04"), `(2023-01-04,0,0,0.00,0.00,0.00,0,{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{})`; got != want {
		t.Fatalf("the empty day's summary is %s, want %s", got, want)
	}

	// Unchanged content keeps the row as it was.
	var xmin string
	rowVersion := func(date string) string {
		var v string
		if err := f.db.QueryRow(`SELECT xmin::text FROM marketplace.day_summaries WHERE purchase_date = $1`, date).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	xmin = rowVersion(d1)
	if res := f.run(t, plan(d1)); res.Totals.DaysUnchanged != 1 || rowVersion(d1) != xmin {
		t.Fatalf("unchanged reload: totals %+v, the summary rewritten: %v", res.Totals, rowVersion(d1) != xmin)
	}

	// Changed content replaces it; content that cannot be summed removes it,
	// and content that can brings it back.
	api.set(d1, answer{lines: append(handDay(d1)[1:], purchase(d1, 8, "F", 7200, 3, 4, "2.50", "0.50", "8.00"))})
	if f.run(t, plan(d1)); f.summary(t, d1) == first || f.summary(t, d1) == "" {
		t.Fatalf("changed reload: summary %q, was %q", f.summary(t, d1), first)
	}
	api.set(d2, answer{lines: overflowDay(d2)})
	if f.run(t, plan(d2)); f.summary(t, d2) != "" || f.lineCount(t, d2) != 7 {
		t.Fatalf("reload that overflows: summary %q, %d lines", f.summary(t, d2), f.lineCount(t, d2))
	}
	api.set(d3, answer{lines: handDay(d3)})
	if f.run(t, plan(d3)); f.summary(t, d3) == "" {
		t.Fatal("a day reloaded with content that sums exactly has no summary")
	}

	// A refused reload keeps the good lines, and their summary; a no-data
	// answer for the day, now failed, removes both.
	api.set(d1, answer{lines: append(lines(d1, 5), rejected(d1))})
	kept := f.summary(t, d1)
	if res := f.run(t, plan(d1)); !res.RejectFailure || f.summary(t, d1) != kept || f.lineCount(t, d1) != 6 {
		t.Fatalf("refused reload: %+v, summary kept %v, %d lines", res.Totals, f.summary(t, d1) == kept, f.lineCount(t, d1))
	}
	api.set(d1)
	if res := f.run(t, plan(d1)); res.Totals.DaysNoData != 1 || f.summary(t, d1) != "" || f.lineCount(t, d1) != 0 {
		t.Fatalf("no data: %+v, summary %q, %d lines; want neither", res.Totals, f.summary(t, d1), f.lineCount(t, d1))
	}

	// A failed day that still has its old lines loses them, and their
	// summary, when its next load is refused too.
	api.set(d3, answer{lines: append(lines(d3, 5), rejected(d3))})
	f.run(t, plan(d3)) // refused, staged: the lines and the summary stay
	if f.summary(t, d3) == "" || f.lineCount(t, d3) != 6 {
		t.Fatalf("refused reload: summary %q, %d lines", f.summary(t, d3), f.lineCount(t, d3))
	}
	if res := f.run(t, plan(d3)); !res.RejectFailure || f.summary(t, d3) != "" || f.lineCount(t, d3) != 0 {
		t.Fatalf("refused load of a failed day: %+v, summary %q, %d lines; want neither", res.Totals, f.summary(t, d3), f.lineCount(t, d3))
	}
}
