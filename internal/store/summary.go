package store

import (
	"strconv"
	"sync"

	"github.com/marketplace-etl/marketplace-etl/internal/purchases"
)

// daySummary is a day's summary with the buffers that write it; pooled, so
// that a backfill reuses one or two (a day commits while the next loads)
// instead of growing new ones every day.
type daySummary struct {
	purchases.DaySummary
	genders []purchases.GenderSums
	hours   []purchases.HourSums
	query   []byte
}

var summaryPool = sync.Pool{New: func() any { return new(daySummary) }}

func getSummary() *daySummary {
	s := summaryPool.Get().(*daySummary)
	s.Reset()
	return s
}

// summaryColumns are the columns of marketplace.day_summaries in the order
// insertSummary writes them.
const summaryColumns = `purchase_date, lines, units, revenue, gross_revenue, discount, clients,
	genders, gender_lines, gender_units, gender_revenue, gender_gross_revenue, gender_discount, gender_clients,
	hours, hour_lines, hour_units, hour_revenue, hour_clients,
	product_ids, product_units, product_revenue, client_ids, client_revenue`

// insertSummary is the statement that writes the finished summary of date
// (YYYY-MM-DD), with its values as literals: it can then ride along in the
// statement that records the day (DayTx.record), with no round trip of its
// own, and no array element goes through database/sql's per-argument
// conversion. Every value is a number, F or M, or the date, so nothing
// needs quoting beyond the array literals' braces.
func (s *daySummary) insertSummary(date string) string {
	t := s.Total()
	s.genders = s.Genders(s.genders[:0])
	s.hours = s.Hours(s.hours[:0])
	b := append(s.query[:0], "INSERT INTO marketplace.day_summaries ("+summaryColumns+") VALUES ('"...)
	b = append(b, date...)
	b = append(b, "',"...)
	b = strconv.AppendInt(b, t.Lines, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, t.Units, 10)
	b = append(b, ',')
	b = t.Revenue.Append(b)
	b = append(b, ',')
	b = t.Gross.Append(b)
	b = append(b, ',')
	b = t.Discount.Append(b)
	b = append(b, ',')
	b = strconv.AppendInt(b, t.Clients, 10)
	b = appendArray(b, s.genders, func(b []byte, g purchases.GenderSums) []byte { return append(b, g.Gender) })
	b = appendArray(b, s.genders, func(b []byte, g purchases.GenderSums) []byte { return strconv.AppendInt(b, g.Lines, 10) })
	b = appendArray(b, s.genders, func(b []byte, g purchases.GenderSums) []byte { return strconv.AppendInt(b, g.Units, 10) })
	b = appendArray(b, s.genders, func(b []byte, g purchases.GenderSums) []byte { return g.Revenue.Append(b) })
	b = appendArray(b, s.genders, func(b []byte, g purchases.GenderSums) []byte { return g.Gross.Append(b) })
	b = appendArray(b, s.genders, func(b []byte, g purchases.GenderSums) []byte { return g.Discount.Append(b) })
	b = appendArray(b, s.genders, func(b []byte, g purchases.GenderSums) []byte { return strconv.AppendInt(b, g.Clients, 10) })
	b = appendArray(b, s.hours, func(b []byte, h purchases.HourSums) []byte { return strconv.AppendInt(b, int64(h.Hour), 10) })
	b = appendArray(b, s.hours, func(b []byte, h purchases.HourSums) []byte { return strconv.AppendInt(b, h.Lines, 10) })
	b = appendArray(b, s.hours, func(b []byte, h purchases.HourSums) []byte { return strconv.AppendInt(b, h.Units, 10) })
	b = appendArray(b, s.hours, func(b []byte, h purchases.HourSums) []byte { return h.Revenue.Append(b) })
	b = appendArray(b, s.hours, func(b []byte, h purchases.HourSums) []byte { return strconv.AppendInt(b, h.Clients, 10) })
	products, clients := s.Products(), s.Clients()
	b = appendArray(b, products, func(b []byte, p purchases.ProductSums) []byte { return strconv.AppendInt(b, p.ID, 10) })
	b = appendArray(b, products, func(b []byte, p purchases.ProductSums) []byte { return strconv.AppendInt(b, p.Units, 10) })
	b = appendArray(b, products, func(b []byte, p purchases.ProductSums) []byte { return p.Revenue.Append(b) })
	b = appendArray(b, clients, func(b []byte, c purchases.ClientSums) []byte { return strconv.AppendInt(b, c.ID, 10) })
	b = appendArray(b, clients, func(b []byte, c purchases.ClientSums) []byte { return c.Revenue.Append(b) })
	b = append(b, ')')
	s.query = b
	return string(b)
}

// appendArray appends ",'{e1,e2,...}'": one column's array literal.
func appendArray[T any](b []byte, items []T, elem func([]byte, T) []byte) []byte {
	b = append(b, ",'{"...)
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = elem(b, it)
	}
	return append(b, "}'"...)
}
