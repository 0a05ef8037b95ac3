package purchases

import (
	"encoding/json"
	"testing"
)

// FuzzParse: any element the decoder can hand over is either a valid record
// that satisfies every rule, or a rejection with a known reason; never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte(line(nil)))
	f.Add([]byte(line(map[string]string{"client_id": "1.5"})))
	f.Add([]byte(line(map[string]string{"total_price": "2.7e3"})))
	f.Add([]byte(`{"client_id":null}`))
	f.Add([]byte(`{"gender":"\u004d","x":[{"y":"}"}]}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`"Информация за более ранние периоды отсутствует"`))
	f.Fuzz(func(t *testing.T, elem []byte) {
		if !json.Valid(elem) {
			return
		}
		rec, rej := Parse(elem, day)
		if rej != nil {
			known := false
			for _, r := range Reasons {
				known = known || r == rej.Reason
			}
			if !known {
				t.Fatalf("unknown reason %q", rej.Reason)
			}
			return
		}
		if rec.Date != day || rec.Quantity <= 0 || rec.Seconds < 0 || rec.Seconds >= SecondsPerDay ||
			rec.Discount > rec.Price || rec.Discount < 0 || Cents(rec.Quantity)*(rec.Price-rec.Discount) != rec.Total ||
			(rec.Gender != 'M' && rec.Gender != 'F') || rec.ClientID < 0 || rec.ProductID < 0 {
			t.Fatalf("accepted an invalid record %+v from %s", rec, elem)
		}
	})
}
