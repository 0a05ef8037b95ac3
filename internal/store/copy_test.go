package store

import (
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/marketplace-etl/marketplace-etl/internal/purchases"
)

// The hand-written digits give exactly strconv's text, at every length and
// at the edges of each.
func TestAppendIntIsStrconv(t *testing.T) {
	vals := []int64{0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 86399, 999999, 1000000,
		math.MaxInt32, math.MaxInt32 + 1, math.MaxInt64, math.MinInt64, math.MinInt64 + 1, math.MinInt32, -1, -9, -10, -100}
	for p := int64(1); p <= 1e18; p *= 10 {
		vals = append(vals, p-1, p, p+1, -p)
	}
	for _, v := range vals {
		if got, want := string(appendInt([]byte("x"), v)), "x"+strconv.FormatInt(v, 10); got != want {
			t.Errorf("appendInt(%d) = %q, want %q", v, got, want)
		}
		if v >= 0 {
			if got, want := string(appendUint(nil, uint64(v))), strconv.FormatUint(uint64(v), 10); got != want {
				t.Errorf("appendUint(%d) = %q, want %q", v, got, want)
			}
		}
	}
	for _, u := range []uint64{math.MaxUint64, math.MaxUint64 - 1, 1e19 - 1, 1e19, 1e19 + 1} {
		if got, want := string(appendUint(nil, u)), strconv.FormatUint(u, 10); got != want {
			t.Errorf("appendUint(%d) = %q, want %q", u, got, want)
		}
	}
}

func TestAppendCentsIsCentsAppend(t *testing.T) {
	for _, c := range []purchases.Cents{0, 1, 9, 10, 99, 100, 101, 1050, 160356, 1e12, 1e12 + 99, -1, -1050, math.MaxInt64, math.MinInt64 + 1} {
		if got, want := string(appendCents([]byte("x"), c)), string(c.Append([]byte("x"))); got != want {
			t.Errorf("appendCents(%d) = %q, want %q", c, got, want)
		}
	}
}

// The COPY line of a record is the text the strconv-based encoder wrote.
func TestAppendLine(t *testing.T) {
	msk, err := time.LoadLocation("Europe/Moscow")
	if err != nil {
		t.Fatal(err)
	}
	for _, loc := range []*time.Location{time.UTC, msk} {
		w := &DayWriter{d: &DayTx{date: "2024-03-01", runID: 4711, dayStart: time.Date(2024, 3, 1, 0, 0, 0, 0, loc)}, lineNo: 12}
		for _, r := range []purchases.Record{
			{ClientID: 713202, Gender: 'F', Seconds: 55128, ProductID: 31337, Quantity: 7, Price: 249900, Discount: 25000, Total: 1574300},
			{ClientID: 0, Gender: 'M', Seconds: 0, ProductID: 0, Quantity: 0, Price: 0, Discount: 0, Total: 0},
			{ClientID: math.MaxInt32, Gender: 'M', Seconds: 86399, ProductID: math.MaxInt32, Quantity: math.MaxInt32, Price: 1e12, Discount: 5, Total: 1e12},
		} {
			at := string(w.appendPurchasedAt(nil, &r)) // unchanged, tested through the database
			want := "2024-03-01\t12\t" + strconv.FormatInt(r.ClientID, 10) + "\t" + string(r.Gender) + "\t" +
				strconv.FormatInt(r.ProductID, 10) + "\t" + strconv.FormatInt(r.Quantity, 10) + "\t" + r.Price.String() + "\t" +
				r.Discount.String() + "\t" + r.Total.String() + "\t" + strconv.FormatInt(r.Seconds, 10) + "\t" + at + "\t4711"
			if got := string(w.appendLine([]byte("prev\n"), &r)); got != "prev\n"+want {
				t.Errorf("%s: got %q, want %q", loc, got, "prev\n"+want)
			}
		}
	}
}

func BenchmarkAppendLine(b *testing.B) {
	w := &DayWriter{d: &DayTx{date: "2024-03-01", runID: 4711, dayStart: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)}}
	r := purchases.Record{ClientID: 713202, Gender: 'F', Seconds: 55128, ProductID: 31337, Quantity: 7, Price: 249900, Discount: 25000, Total: 1574300}
	buf := make([]byte, 0, 256)
	for b.Loop() {
		w.lineNo++
		buf = w.appendLine(buf[:0], &r)
	}
}
