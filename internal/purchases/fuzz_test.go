package purchases

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
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

// FuzzNumbers: the one-pass readings of numbers agree with the general
// ones: a plain integer read while scanned is what parseWhole and
// parseCents make of its text, parseCents' shortcut is parseCentsAny, and
// parseDigits accepts exactly -?[0-9]{1,18}(\.0+)?.
func FuzzNumbers(f *testing.F) {
	for _, s := range []string{"0", "7", "713202", "2499.0", "2499.00", "2499.5", "2499.55", "2499.555", "2499.550", "-3", "-0",
		"1e3", "2.7e3", "01", "1.", ".5", "999999999999", "1000000000000", "1000000000000.00", "123456789012345678",
		"1234567890123456789", "9223372036854775808", "12.0.0", "1.0e5", "--5", "-", "", "5 ", "5,"} {
		f.Add(s)
	}
	digits := regexp.MustCompile(`^-?([0-9]{1,18})(\.0+)?$`)
	f.Fuzz(func(t *testing.T, s string) {
		b := []byte(s)
		v, end := scanNumberValue(b, 0)
		if want := scanNumber(b, 0); end != want {
			t.Fatalf("%q: scanNumberValue ends at %d, scanNumber at %d", s, end, want)
		}
		if v.plain {
			if n, ok := parseWhole(v.raw); !ok || n != v.whole {
				t.Fatalf("%q: plain %d, parseWhole %d %v", s, v.whole, n, ok)
			}
			if c, ok := parseCents(v.raw); len(v.raw) <= 12 && (!ok || c != Cents(v.whole*100)) {
				t.Fatalf("%q: plain %d, parseCents %d %v", s, v.whole, c, ok)
			}
		}
		c1, ok1 := parseCents(b)
		c2, ok2 := parseCentsAny(b)
		if c1 != c2 || ok1 != ok2 {
			t.Fatalf("%q: parseCents %d %v, parseCentsAny %d %v", s, c1, ok1, c2, ok2)
		}
		n, ok := parseDigits(b)
		m := digits.FindStringSubmatch(s)
		if ok != (m != nil) {
			t.Fatalf("%q: parseDigits ok=%v", s, ok)
		}
		if ok {
			want, _ := strconv.ParseInt(m[1], 10, 64)
			if strings.HasPrefix(s, "-") {
				want = -want
			}
			if n != want {
				t.Fatalf("%q: parseDigits %d, want %d", s, n, want)
			}
		}
	})
}

// FuzzParseFirst: ParseFirst measures the valid JSON object its bytes
// start with, exactly where encoding/json ends it, and decides it as Parse
// decides that object alone; anything else is left undecided.
func FuzzParseFirst(f *testing.F) {
	f.Add([]byte(line(nil) + `, ` + line(nil)))
	f.Add([]byte(line(nil)[:100]))
	f.Add([]byte(line(map[string]string{"client_id": "1.5"}) + `]`))
	f.Add([]byte(`{"a":[1,{"b":"}"}]} x`))
	f.Add([]byte(`{"client_id": tru}, {}`))
	f.Add([]byte(`{"gender": "F\xff"}`))
	f.Add([]byte(` {}`))
	f.Add([]byte(`[{}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, rec, rej := ParseFirst(b, day)
		want := -1
		dec := json.NewDecoder(bytes.NewReader(b))
		var obj json.RawMessage
		if err := dec.Decode(&obj); err == nil && len(b) > 0 && b[0] == '{' && utf8.Valid(obj) {
			want = int(dec.InputOffset())
		} else if err != nil && strings.Contains(err.Error(), "nesting depth") {
			return // encoding/json's own limit, not RFC 8259's
		}
		if n != want {
			t.Fatalf("%q: ParseFirst measured %d bytes, want %d", b, n, want)
		}
		if n < 0 {
			return
		}
		wantRec, wantRej := Parse(b[:n], day)
		if rec != wantRec || (rej == nil) != (wantRej == nil) || (rej != nil && *rej != *wantRej) {
			t.Fatalf("%q: ParseFirst %+v %v, Parse %+v %v", b[:n], rec, rej, wantRec, wantRej)
		}
	})
}
