package purchases

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse: any element is either a valid record that satisfies every
// rule, or a rejection with a known reason, never a panic; and it is
// rejected as invalid_json exactly when it is not valid JSON (encoding/json
// is the reference, plus RFC 8259's UTF-8 rule, which encoding/json does
// not enforce).
func FuzzParse(f *testing.F) {
	f.Add([]byte(line(nil)))
	f.Add([]byte(line(map[string]string{"client_id": "1.5"})))
	f.Add([]byte(line(map[string]string{"total_price": "2.7e3"})))
	f.Add([]byte(`{"client_id":null}`))
	f.Add([]byte(`{"gender":"\u004d","x":[{"y":"}"}]}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`"Информация за более ранние периоды отсутствует"`))
	// The cases of issue 13: invalid JSON that used to load.
	f.Add([]byte(line(map[string]string{"client_id": "01"})))
	f.Add([]byte(line(map[string]string{"quantity": "1."})))
	f.Add([]byte(line(map[string]string{"gender": "\"F\x00\""})))
	f.Add([]byte(line(map[string]string{"purchase_datetime": `"2023-01-05Tgarbage!"`})))
	f.Add([]byte(line(map[string]string{"junk": "tru"})))
	f.Add([]byte(line(map[string]string{"junk": "\"\xc3\""})))
	f.Add([]byte(`{"a":[1,{"b":[true,false,null,-0.5e+3]}],"c":"\ud83d\ude00"}`))
	f.Fuzz(func(t *testing.T, elem []byte) {
		var syntax *json.SyntaxError
		valid := json.Valid(elem) && utf8.Valid(elem)
		invalid := errors.As(json.Unmarshal(elem, new(json.RawMessage)), &syntax) && !strings.Contains(syntax.Error(), "nesting depth")
		rec, rej := Parse(elem, day)
		switch {
		case valid && rej != nil && rej.Reason == InvalidJSON:
			t.Fatalf("valid JSON rejected as invalid: %q (%s)", elem, rej.Detail)
		case invalid && (rej == nil || rej.Reason != InvalidJSON):
			t.Fatalf("invalid JSON not rejected as invalid_json: %q (%v)", elem, rej)
		}
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
