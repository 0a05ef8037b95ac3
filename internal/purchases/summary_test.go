package purchases

import (
	"maps"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// naiveSummary computes what DaySummary must give, the obvious way: maps
// and sets, as the SQL of migrations/00014_day_summaries.sql reads.
type naiveSummary struct {
	total    Sums
	genders  []GenderSums
	hours    []HourSums
	products []ProductSums
	clients  []ClientSums
}

func naive(recs []Record) naiveSummary {
	var n naiveSummary
	type set = map[int64]bool
	dayClients := set{}
	byGender := map[byte]*Sums{}
	genderClients := map[byte]set{}
	byHour := map[int]*Sums{}
	hourClients := map[int]set{}
	products := map[int64]*ProductSums{}
	clients := map[int64]*ClientSums{}
	for _, r := range recs {
		add := func(s *Sums, full bool) {
			s.Lines++
			s.Units += r.Quantity
			s.Revenue += r.Total
			if full {
				s.Gross += Cents(r.Quantity) * r.Price
				s.Discount += Cents(r.Quantity) * r.Discount
			}
		}
		add(&n.total, true)
		dayClients[r.ClientID] = true
		if byGender[r.Gender] == nil {
			byGender[r.Gender], genderClients[r.Gender] = &Sums{}, set{}
		}
		add(byGender[r.Gender], true)
		genderClients[r.Gender][r.ClientID] = true
		h := int(r.Seconds / 3600)
		if byHour[h] == nil {
			byHour[h], hourClients[h] = &Sums{}, set{}
		}
		add(byHour[h], false)
		hourClients[h][r.ClientID] = true
		if products[r.ProductID] == nil {
			products[r.ProductID] = &ProductSums{ID: r.ProductID}
		}
		products[r.ProductID].Units += r.Quantity
		products[r.ProductID].Revenue += r.Total
		if clients[r.ClientID] == nil {
			clients[r.ClientID] = &ClientSums{ID: r.ClientID}
		}
		clients[r.ClientID].Revenue += r.Total
	}
	n.total.Clients = int64(len(dayClients))
	for _, g := range slices.Sorted(maps.Keys(byGender)) {
		s := *byGender[g]
		s.Clients = int64(len(genderClients[g]))
		n.genders = append(n.genders, GenderSums{Gender: g, Sums: s})
	}
	for _, h := range slices.Sorted(maps.Keys(byHour)) {
		s := *byHour[h]
		s.Clients = int64(len(hourClients[h]))
		n.hours = append(n.hours, HourSums{Hour: h, Sums: s})
	}
	for _, id := range slices.Sorted(maps.Keys(products)) {
		n.products = append(n.products, *products[id])
	}
	for _, id := range slices.Sorted(maps.Keys(clients)) {
		n.clients = append(n.clients, *clients[id])
	}
	return n
}

func (s *DaySummary) asNaive() naiveSummary {
	return naiveSummary{total: s.Total(), genders: s.Genders(nil), hours: s.Hours(nil),
		products: slices.Clone(s.Products()), clients: slices.Clone(s.Clients())}
}

// randomDay makes n valid lines; few ids so that clients and products
// repeat, within an hour and across hours, with both genders.
func randomDay(rng *rand.Rand, n int, ids int64) []Record {
	recs := make([]Record, n)
	for i := range recs {
		price := Cents(rng.Int64N(100_000))
		disc := Cents(0)
		switch rng.IntN(4) {
		case 0:
			disc = price // a free line
		case 1:
			disc = Cents(rng.Int64N(int64(price) + 1))
		}
		q := 1 + rng.Int64N(50)
		recs[i] = Record{ClientID: rng.Int64N(ids), Gender: "FM"[rng.IntN(2)], Seconds: rng.Int64N(SecondsPerDay),
			ProductID: rng.Int64N(ids), Quantity: q, Price: price, Discount: disc, Total: Cents(q) * (price - disc)}
	}
	return recs
}

func summarize(s *DaySummary, recs []Record) bool {
	s.Reset()
	for i := range recs {
		s.Add(&recs[i])
	}
	return s.Finish()
}

func TestDaySummaryMatchesTheNaiveSums(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var s DaySummary // one summary for every day: Reset must leave nothing behind
	for day := range 200 {
		n, ids := rng.IntN(300), 1+rng.Int64N(40)
		if day%10 == 0 {
			ids = math.MaxInt32 // ids over their whole range, mostly distinct
		}
		recs := randomDay(rng, n, ids)
		if day%7 == 0 && n > 0 {
			recs[0].ClientID, recs[0].ProductID = 0, math.MaxInt32 // the extremes of the ids
		}
		if !summarize(&s, recs) {
			t.Fatalf("day %d: a day of %d ordinary lines is invalid", day, n)
		}
		if got, want := s.asNaive(), naive(recs); !reflect.DeepEqual(got, want) {
			t.Fatalf("day %d (%d lines):\n got %+v\nwant %+v", day, n, got, want)
		}
	}
}

// The same client twice in one hour, in two hours, and with both genders
// (the API sends a gender per line) counts once in each group it is in.
func TestDaySummaryCountsAClientOncePerGroup(t *testing.T) {
	line := func(client int64, g byte, sec int64, product int64, q int64, price Cents) Record {
		return Record{ClientID: client, Gender: g, Seconds: sec, ProductID: product, Quantity: q, Price: price, Total: Cents(q) * price}
	}
	recs := []Record{
		line(7, 'F', 10, 1, 1, 100),
		line(7, 'F', 20, 1, 2, 100), // same client, hour and product
		line(7, 'M', 3700, 2, 1, 50),
		line(3, 'M', 3600, 2, 1, 0), // a free line
		line(9, 'F', 86399, 1, 1, 1),
	}
	var s DaySummary
	if !summarize(&s, recs) {
		t.Fatal("invalid")
	}
	want := naiveSummary{
		total: Sums{Lines: 5, Units: 6, Revenue: 351, Gross: 351, Clients: 3},
		genders: []GenderSums{{'F', Sums{Lines: 3, Units: 4, Revenue: 301, Gross: 301, Clients: 2}},
			{'M', Sums{Lines: 2, Units: 2, Revenue: 50, Gross: 50, Clients: 2}}},
		hours: []HourSums{{0, Sums{Lines: 2, Units: 3, Revenue: 300, Clients: 1}},
			{1, Sums{Lines: 2, Units: 2, Revenue: 50, Clients: 2}}, {23, Sums{Lines: 1, Units: 1, Revenue: 1, Clients: 1}}},
		products: []ProductSums{{1, 4, 301}, {2, 2, 50}},
		clients:  []ClientSums{{3, 0}, {7, 350}, {9, 1}},
	}
	if got := s.asNaive(); !reflect.DeepEqual(got, want) {
		t.Fatalf("\n got %+v\nwant %+v", got, want)
	}
	if !reflect.DeepEqual(naive(recs), want) {
		t.Fatalf("the naive reference disagrees with the hand-computed sums: %+v", naive(recs))
	}
}

func TestDaySummaryOfNoLines(t *testing.T) {
	var s DaySummary
	if !s.Finish() {
		t.Fatal("a day without lines is invalid")
	}
	if s.Total() != (Sums{}) || len(s.Genders(nil)) != 0 || len(s.Hours(nil)) != 0 || len(s.Products()) != 0 || len(s.Clients()) != 0 {
		t.Fatalf("a day without lines summarized as %+v", s.asNaive())
	}
}

// Any line that the summary cannot keep exactly makes the whole day
// invalid, and the next day after Reset is summarized normally.
func TestDaySummaryInvalid(t *testing.T) {
	ok := Record{ClientID: 1, Gender: 'F', Seconds: 100, ProductID: 2, Quantity: 3, Price: 500, Discount: 100, Total: 1200}
	big := Cents(math.MaxInt64/2 + 1)
	cases := map[string][]Record{
		"quantity*price overflows":   {{ClientID: 1, Gender: 'F', Quantity: 1 << 30, Price: 1 << 34, Total: 0}},
		"quantity*discount overflow": {{ClientID: 1, Gender: 'F', Quantity: 1 << 30, Price: 0, Discount: 1 << 34}},
		"quantity*price above int64": {{ClientID: 1, Gender: 'F', Quantity: 2, Price: big}},
		"revenue overflows":          {{ClientID: 1, Gender: 'F', Quantity: 1, Total: big}, {ClientID: 2, Gender: 'M', Quantity: 1, Total: big}},
		"gross overflows":            {{ClientID: 1, Gender: 'F', Quantity: 1, Price: big}, {ClientID: 1, Gender: 'F', Quantity: 1, Price: big}},
		"client id above int32":      {{ClientID: math.MaxInt32 + 1, Gender: 'F', Quantity: 1}},
		"client id below int32":      {{ClientID: math.MinInt32 - 1, Gender: 'F', Quantity: 1}},
		"client id far out":          {{ClientID: math.MaxInt64, Gender: 'F', Quantity: 1}},
		"product id above int32":     {{ProductID: math.MaxInt32 + 1, Gender: 'F', Quantity: 1}},
		"quantity above int32":       {{Gender: 'F', Quantity: math.MaxInt32 + 1}},
		"negative quantity":          {{Gender: 'F', Quantity: -1}},
		"negative total":             {{Gender: 'F', Quantity: 1, Total: -1}},
		"negative price":             {{Gender: 'F', Quantity: 1, Price: -1}},
		"negative discount":          {{Gender: 'F', Quantity: 1, Discount: -1}},
		"gender":                     {{Gender: 'X', Quantity: 1}},
		"time past the day":          {{Gender: 'M', Quantity: 1, Seconds: SecondsPerDay}},
		"negative time":              {{Gender: 'M', Quantity: 1, Seconds: -1}},
	}
	var s DaySummary
	for name, bad := range cases {
		recs := append([]Record{ok}, bad...)
		recs = append(recs, ok)
		if summarize(&s, recs) {
			t.Errorf("%s: the summary is valid: %+v", name, s.asNaive())
		}
		if !summarize(&s, []Record{ok}) || s.Total().Lines != 1 || len(s.Clients()) != 1 {
			t.Errorf("%s: the next day after Reset: %+v", name, s.asNaive())
		}
	}
	// The largest values that fit are kept exactly.
	edge := []Record{{ClientID: math.MinInt32, Gender: 'M', Seconds: SecondsPerDay - 1, ProductID: math.MaxInt32,
		Quantity: 1, Price: Cents(math.MaxInt64), Discount: Cents(math.MaxInt64), Total: 0}}
	if !summarize(&s, edge) || !reflect.DeepEqual(s.asNaive(), naive(edge)) {
		t.Fatalf("extreme but exact values: valid %v, %+v", s.Finish(), s.asNaive())
	}
}

func TestDaySummaryCap(t *testing.T) {
	var s DaySummary
	r := Record{ClientID: 1, Gender: 'F', Quantity: 1, Price: 1, Total: 1}
	for range MaxSummaryLines {
		s.Add(&r)
	}
	if !s.Finish() || s.Total().Lines != MaxSummaryLines {
		t.Fatalf("a day of exactly MaxSummaryLines lines: valid %v, %d lines", s.Finish(), s.Total().Lines)
	}
	s.Reset()
	for range MaxSummaryLines + 1 {
		s.Add(&r)
	}
	if s.Finish() {
		t.Fatalf("a day of MaxSummaryLines+1 lines is valid")
	}
	if c := cap(s.clientLines); c > MaxSummaryLines*5/4 {
		t.Fatalf("the summary kept %d lines' room past its cap", c)
	}
}

// Once its buffers have grown to a day's size, a summary allocates nothing.
func TestDaySummaryDoesNotAllocate(t *testing.T) {
	recs := randomDay(rand.New(rand.NewPCG(3, 4)), 5500, 1_000_000)
	var s DaySummary
	summarize(&s, recs)
	if n := testing.AllocsPerRun(5, func() { summarize(&s, recs) }); n != 0 {
		t.Fatalf("%v allocations per day", n)
	}
}

// BenchmarkDaySummary is the summary's cost for a day of the API's size
// (5,500 lines, clients and products mostly distinct), per day; ns/line is
// what it adds to a line's load.
func BenchmarkDaySummary(b *testing.B) {
	const lines = 5500
	recs := randomDay(rand.New(rand.NewPCG(5, 6)), lines, 1_000_000)
	var s DaySummary
	b.ReportAllocs()
	for b.Loop() {
		if !summarize(&s, recs) {
			b.Fatal("invalid")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*lines), "ns/line")
}
