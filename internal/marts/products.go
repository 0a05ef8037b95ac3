package marts

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"math/bits"
	"sort"
	"strconv"

	"github.com/marketplace-etl/marketplace-etl/internal/purchases"
)

// The per-month and per-period product totals are sums of rows of product
// arrays (a day's, a month's), each added or taken away. The server sums
// them as numerics after unnesting every element, at a few microseconds an
// element: seconds for the months of a year of days. They are summed here
// instead, in exact integers, and the SQL is kept for what does not fit
// them.

// productSum is a product's totals in a month or in the ABC/XYZ period.
type productSum struct {
	id      int64
	units   int64
	revenue int64 // hundredths
	unitsSq int64 // period only: the sum of its months' units squared
}

// sumProductRows runs q, whose rows are (key, sign, product_ids, units,
// revenue, units_sq), and sums the products of each key, sorted by product,
// without those whose units sum to 0 (no longer sold). units_sq, when null,
// is the row's units squared. false: a figure does not fit an int64.
func sumProductRows(ctx context.Context, tx *sql.Tx, q string, args ...any) (map[string][]productSum, bool, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	// Per key, the products' position in its list: no allocation per
	// product.
	type group struct {
		at   map[int64]int
		list []productSum
	}
	sums := map[string]*group{}
	var (
		key                     string
		sign                    int64
		ids, units, rev, unitSq sql.RawBytes
	)
	for rows.Next() {
		if err := rows.Scan(&key, &sign, &ids, &units, &rev, &unitSq); err != nil {
			return nil, false, err
		}
		g := sums[key]
		if g == nil {
			g = &group{at: map[int64]int{}}
			sums[key] = g
		}
		if !addProductRow(&g.list, g.at, sign, ids, units, rev, unitSq) {
			return nil, false, nil
		}
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	out := make(map[string][]productSum, len(sums))
	for k, g := range sums {
		list := g.list[:0]
		for _, p := range g.list {
			if p.units == 0 {
				continue
			}
			if p.units < 0 || p.revenue < 0 || p.unitsSq < 0 {
				// Only a sum of the stored rows can be written back.
				return nil, false, nil
			}
			list = append(list, p)
		}
		sort.Slice(list, func(i, j int) bool { return list[i].id < list[j].id })
		out[k] = list
	}
	return out, true, nil
}

// addProductRow adds one row of arrays, sign times, to the products of
// list, at: their positions.
func addProductRow(list *[]productSum, at map[int64]int, sign int64, ids, units, rev, unitsSq []byte) bool {
	ids, okI := arrayBody(ids)
	units, okU := arrayBody(units)
	rev, okR := arrayBody(rev)
	if !okI || !okU || !okR {
		return false
	}
	sq := unitsSq != nil
	if sq {
		var ok bool
		if unitsSq, ok = arrayBody(unitsSq); !ok {
			return false
		}
	}
	for len(ids) > 0 {
		var id, u, r, s int64
		var ok bool
		if id, ids, ok = parseInt(ids); !ok {
			return false
		}
		if u, units, ok = parseInt(units); !ok {
			return false
		}
		if r, rev, ok = parseCents(rev); !ok {
			return false
		}
		if sq {
			if s, unitsSq, ok = parseInt(unitsSq); !ok {
				return false
			}
		} else {
			hi, lo := bits.Mul64(uint64(u), uint64(u))
			if hi != 0 || lo > math.MaxInt64 {
				return false
			}
			s = int64(lo)
		}
		i, seen := at[id]
		if !seen {
			i = len(*list)
			at[id] = i
			*list = append(*list, productSum{id: id})
		}
		p := &(*list)[i]
		if !addSigned(&p.units, sign, u) || !addSigned(&p.revenue, sign, r) || !addSigned(&p.unitsSq, sign, s) {
			return false
		}
	}
	return len(units) == 0 && len(rev) == 0
}

// arrayBody strips an array literal's braces.
func arrayBody(b []byte) ([]byte, bool) {
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return nil, false
	}
	return b[1 : len(b)-1], true
}

// addSigned adds sign (1 or -1) times v (not negative) to *acc; false on
// overflow.
func addSigned(acc *int64, sign, v int64) bool {
	if sign < 0 {
		v = -v
	}
	if (v > 0 && *acc > math.MaxInt64-v) || (v < 0 && *acc < math.MinInt64-v) {
		return false
	}
	*acc += v
	return true
}

// productArrays formats sums as the array literals of product_ids, units,
// revenue and units_sq.
func productArrays(sums []productSum) (ids, units, revenue, unitsSq string) {
	var a, b, c, d []byte
	a, b, c, d = append(a, '{'), append(b, '{'), append(c, '{'), append(d, '{')
	for i, p := range sums {
		if i > 0 {
			a, b, c, d = append(a, ','), append(b, ','), append(c, ','), append(d, ',')
		}
		a = strconv.AppendInt(a, p.id, 10)
		b = strconv.AppendInt(b, p.units, 10)
		c = purchases.Cents(p.revenue).Append(c)
		d = strconv.AppendInt(d, p.unitsSq, 10)
	}
	return string(append(a, '}')), string(append(b, '}')), string(append(c, '}')), string(append(d, '}'))
}

// writeProductMonths writes the months' rows summed by sumProductRows.
func writeProductMonths(ctx context.Context, tx *sql.Tx, months map[string][]productSum) error {
	for month, sums := range months {
		if len(sums) == 0 {
			continue
		}
		ids, units, revenue, _ := productArrays(sums)
		if _, err := tx.ExecContext(ctx, `INSERT INTO marts.product_months (month, product_ids, units, revenue)
			VALUES ($1::date, $2::integer[], $3::bigint[], $4::numeric[])`, month, ids, units, revenue); err != nil {
			return fmt.Errorf("writing the product totals of %s: %w", month, err)
		}
	}
	return nil
}
