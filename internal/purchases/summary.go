package purchases

import (
	"math"
	"math/bits"
)

// MaxSummaryLines bounds the lines of a day that a DaySummary keeps. A day
// with more gets no summary (its marts are computed from the lines), so
// the memory of a summary stays small whatever a day's size: at most 88
// bytes a line, 11 MiB. The API's days have about 5,500 lines.
const MaxSummaryLines = 1 << 17

// DaySummary accumulates the totals of one day's accepted lines, exactly as
// SQL over the day's rows of marketplace.purchases would give them (see
// migrations/00014_day_summaries.sql): the day's totals, by gender, by hour
// of day, by product and by client.
//
// It is exact or nothing: a sum that would overflow int64, an id or a
// quantity outside int32, a negative amount, a gender other than F or M, a
// time of day outside the day, or more than MaxSummaryLines lines make it
// invalid, and an invalid summary is not written.
//
// Add costs a few nanoseconds and never allocates once the buffers have
// grown to a day's size: Reset keeps them for the next day. The per-client
// and per-product work is a radix sort of each, in Finish.
type DaySummary struct {
	total   Sums
	gender  [2]Sums  // F, M
	hour    [24]Sums // Gross and Discount unused
	invalid uint64   // non-zero once the summary cannot be exact

	clientLines  []entry // a line's client<<clientShift | hour<<hourShift | gender, and revenue
	productLines []entry // a line's product<<productShift | quantity, and revenue
	scratch      []entry
	counts       [radixPasses][radixBuckets]uint32

	clients  []ClientSums
	products []ProductSums
	finished bool
}

// entry is one line, keyed for sorting.
type entry struct {
	key     uint64
	revenue Cents
}

// Sums are the totals of a set of lines.
type Sums struct {
	Lines    int64
	Units    int64 // sum(quantity)
	Revenue  Cents // sum(total_price)
	Gross    Cents // sum(quantity * price_per_item)
	Discount Cents // sum(quantity * discount_per_item)
	Clients  int64 // count(DISTINCT client_id)
}

// GenderSums are the totals of one gender's lines.
type GenderSums struct {
	Gender byte
	Sums
}

// HourSums are the totals of one hour's lines (Gross and Discount are 0).
type HourSums struct {
	Hour int
	Sums
}

// ProductSums are one product's units and revenue of the day.
type ProductSums struct {
	ID      int64
	Units   int64
	Revenue Cents
}

// ClientSums is one client's revenue of the day.
type ClientSums struct {
	ID      int64
	Revenue Cents
}

// The keys: ids are offset so that any int32 is non-negative, and a client
// key sorts by client first. A product key sorts by its high 32 bits only.
const (
	idOffset     = -math.MinInt32
	hourShift    = 1
	clientShift  = 6
	productShift = 32
	clientBits   = clientShift + 32
)

// Reset empties the summary for another day, keeping its buffers.
func (s *DaySummary) Reset() {
	s.total, s.gender, s.hour, s.invalid, s.finished = Sums{}, [2]Sums{}, [24]Sums{}, 0, false
	s.clientLines, s.productLines = s.clientLines[:0], s.productLines[:0]
	s.clients, s.products = s.clients[:0], s.products[:0]
}

// Add adds one accepted line.
func (s *DaySummary) Add(r *Record) {
	if s.invalid != 0 {
		return
	}
	q, price, disc, total := r.Quantity, int64(r.Price), int64(r.Discount), int64(r.Total)
	client, product := uint64(r.ClientID+idOffset), uint64(r.ProductID+idOffset)
	g := uint64(r.Gender - 'F') // F=0, M=7: checked below
	hour := uint64(r.Seconds) / 3600
	gross, grossLo := bits.Mul64(uint64(q), uint64(price))
	discount, discLo := bits.Mul64(uint64(q), uint64(disc))
	// One branch for every way a line can break exactness: the sign bit of
	// a negative value, and any high bit of an out-of-range one, survive
	// the OR.
	if uint64(q|price|disc|total)>>63|uint64(q)>>31|(client|product)>>32|hour/24|gross|discount|(grossLo|discLo)>>63 != 0 ||
		(g != 0 && g != 'M'-'F') || len(s.clientLines) >= MaxSummaryLines {
		s.invalid = 1
		return
	}
	g = min(g, 1)
	s.total.Lines++
	// Every value is non-negative, so the day's sums bound every partial
	// sum: checking the totals for overflow covers the groups too. A sum
	// overflows into the sign bit first, and the OR keeps it.
	s.total.Units += q
	s.total.Revenue += Cents(total)
	s.total.Gross += Cents(grossLo)
	s.total.Discount += Cents(discLo)
	s.invalid |= uint64(s.total.Units|int64(s.total.Revenue)|int64(s.total.Gross)|int64(s.total.Discount)) >> 63

	gs := &s.gender[g]
	gs.Lines++
	gs.Units += q
	gs.Revenue += Cents(total)
	gs.Gross += Cents(grossLo)
	gs.Discount += Cents(discLo)
	hs := &s.hour[hour]
	hs.Lines++
	hs.Units += q
	hs.Revenue += Cents(total)

	s.clientLines = append(s.clientLines, entry{client<<clientShift | hour<<hourShift | g, Cents(total)})
	s.productLines = append(s.productLines, entry{product<<productShift | uint64(q), Cents(total)})
}

// Finish completes the summary once every line is added and reports
// whether it is exact. The accessors are valid only after it.
func (s *DaySummary) Finish() bool {
	if s.invalid != 0 {
		return false
	}
	if s.finished {
		return true
	}
	s.finished = true
	if n := len(s.clientLines); cap(s.scratch) < n {
		s.scratch = make([]entry, n)
	}
	s.foldClients(s.radixSort(s.clientLines, clientShift, clientBits))
	s.foldProducts(s.radixSort(s.productLines, productShift, 64))
	return true
}

// foldClients folds the lines sorted by client into one entry per client, counting the client once in the day, in each of its
// genders and in each of its hours.
func (s *DaySummary) foldClients(lines []entry) {
	var genders, hours uint32
	flush := func() {
		for ; genders != 0; genders &= genders - 1 {
			s.gender[bits.TrailingZeros32(genders)].Clients++
		}
		for ; hours != 0; hours &= hours - 1 {
			s.hour[bits.TrailingZeros32(hours)].Clients++
		}
	}
	for i, l := range lines {
		id := int64(l.key>>clientShift) - idOffset
		if i == 0 || s.clients[len(s.clients)-1].ID != id {
			flush()
			s.clients = append(s.clients, ClientSums{ID: id})
		}
		s.clients[len(s.clients)-1].Revenue += l.revenue
		genders |= 1 << (l.key & 1)
		hours |= 1 << (l.key >> hourShift & 31)
	}
	flush()
	s.total.Clients = int64(len(s.clients))
}

// foldProducts folds the lines sorted by product into one entry each.
func (s *DaySummary) foldProducts(lines []entry) {
	for i, l := range lines {
		id := int64(l.key>>productShift) - idOffset
		if i == 0 || s.products[len(s.products)-1].ID != id {
			s.products = append(s.products, ProductSums{ID: id})
		}
		p := &s.products[len(s.products)-1]
		p.Units += int64(l.key & (1<<productShift - 1))
		p.Revenue += l.revenue
	}
}

// The radix sort's digits: 10 bits, so that the counts of a pass fit in
// the first level cache, and the ids of the API's days (clients below a
// million, products below 50,000) take 2 passes. Measured on 5,500-line
// days: 8 bits 96 ns a line, 10 bits 64, 11 bits 78, 16 bits 148.
const (
	radixBits    = 10
	radixBuckets = 1 << radixBits
	radixPasses  = (64 + radixBits - 1) / radixBits
)

// radixSort sorts lines by the bits [lo, hi) of their keys, stably, with
// s.scratch, and returns the sorted lines (in lines or in s.scratch). A
// sort costs a few passes over the lines where a comparison sort costs
// log2(5,500) = 12: the summary's cost was mostly its sorts. A pass whose
// digit is the same for every line (the high bits of small ids) is
// skipped.
func (s *DaySummary) radixSort(lines []entry, lo, hi uint) []entry {
	if len(lines) < 2 {
		return lines
	}
	passes := (hi - lo + radixBits - 1) / radixBits
	counts := s.counts[:passes]
	clear(counts)
	for _, l := range lines {
		k := l.key >> lo
		for p := range counts {
			counts[p][k>>(uint(p)*radixBits)&(radixBuckets-1)]++
		}
	}
	src, dst := lines, s.scratch[:len(lines)]
	for p := range counts {
		shift := lo + uint(p)*radixBits
		c := &counts[p]
		if c[src[0].key>>shift&(radixBuckets-1)] == uint32(len(src)) {
			continue
		}
		var sum uint32
		for i, n := range c {
			c[i] = sum
			sum += n
		}
		for _, l := range src {
			d := l.key >> shift & (radixBuckets - 1)
			dst[c[d]] = l
			c[d]++
		}
		src, dst = dst, src
	}
	return src
}

// Total is the day's totals.
func (s *DaySummary) Total() Sums { return s.total }

// Genders appends the totals of each gender with lines, F before M.
func (s *DaySummary) Genders(dst []GenderSums) []GenderSums {
	for i, g := range s.gender {
		if g.Lines > 0 {
			dst = append(dst, GenderSums{Gender: "FM"[i], Sums: g})
		}
	}
	return dst
}

// Hours appends the totals of each hour with lines, ascending.
func (s *DaySummary) Hours(dst []HourSums) []HourSums {
	for h, hs := range s.hour {
		if hs.Lines > 0 {
			dst = append(dst, HourSums{Hour: h, Sums: hs})
		}
	}
	return dst
}

// Products is each product sold, by ascending id. The slice is the
// summary's own: valid until Reset.
func (s *DaySummary) Products() []ProductSums { return s.products }

// Clients is each client who bought, by ascending id. The slice is the
// summary's own: valid until Reset.
func (s *DaySummary) Clients() []ClientSums { return s.clients }
