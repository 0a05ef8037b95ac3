package purchases

import (
	"sort"
	"strings"
	"testing"
)

const day = "2023-01-05"

func line(overrides map[string]string) string {
	fields := map[string]string{
		"client_id": "42", "gender": `"F"`, "purchase_datetime": `"2023-01-05"`,
		"purchase_time_as_seconds_from_midnight": "3600", "product_id": "0", "quantity": "3",
		"price_per_item": "1000", "discount_per_item": "100", "total_price": "2700",
	}
	for k, v := range overrides {
		if v == "-" {
			delete(fields, k)
			continue
		}
		fields[k] = v
	}
	var parts []string
	for _, k := range fieldNames {
		if v, ok := fields[k]; ok {
			parts = append(parts, `"`+k+`": `+v)
			delete(fields, k)
		}
	}
	extra := make([]string, 0, len(fields)) // other keys, verbatim, in a stable order
	for k := range fields {
		extra = append(extra, k)
	}
	sort.Strings(extra)
	for _, k := range extra {
		parts = append(parts, `"`+k+`": `+fields[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func TestParseValid(t *testing.T) {
	rec, rej := Parse([]byte(line(nil)), day)
	if rej != nil {
		t.Fatalf("unexpected rejection %v", rej)
	}
	want := Record{ClientID: 42, Gender: 'F', Date: day, Seconds: 3600, ProductID: 0, Quantity: 3, Price: 100000, Discount: 10000, Total: 270000}
	if rec != want {
		t.Fatalf("got %+v, want %+v", rec, want)
	}
}

func TestParseAccepts(t *testing.T) {
	cases := map[string]map[string]string{
		"floats with .0":           {"client_id": "42.0", "quantity": "3.0", "price_per_item": "1000.0", "discount_per_item": "100.0", "total_price": "2700.0"},
		"client and product id 0":  {"client_id": "0", "product_id": "0"},
		"free line":                {"discount_per_item": "1000", "total_price": "0"},
		"last second of the day":   {"purchase_time_as_seconds_from_midnight": "86399"},
		"midnight":                 {"purchase_time_as_seconds_from_midnight": "0"},
		"cents":                    {"price_per_item": "10.50", "discount_per_item": "0.5", "total_price": "30"},
		"exponent whole":           {"total_price": "2.7e3"},
		"unknown extra field":      {"extra": `{"a":[1,2]}`},
		"escaped gender":           {"gender": `"\u0046"`},
		"escaped key":              {"gender": "-", `g\u0065nder`: `"F"`},
		"escaped slash in a field": {"extra": `"a\/b"`},
		"negative zero":            {"product_id": "-0"},
		"deep nesting elsewhere":   {"extra": strings.Repeat("[", 5000) + strings.Repeat("]", 5000)},
	}
	for name, o := range cases {
		t.Run(name, func(t *testing.T) {
			if _, rej := Parse([]byte(line(o)), day); rej != nil {
				t.Fatalf("rejected %s: %v", line(o), rej)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	cases := []struct {
		name string
		elem string
		want Reason
	}{
		{"array element", `[1,2]`, NotObject},
		{"null element", `null`, NotObject},
		{"string element", `"{}"`, NotObject},
		{"number element", `17`, NotObject},
		{"all null", `{"client_id":null,"gender":null,"purchase_datetime":null,"purchase_time_as_seconds_from_midnight":null,"product_id":null,"quantity":null,"price_per_item":null,"discount_per_item":null,"total_price":null}`, AllNull},
		{"empty object", `{}`, AllNull},
		{"missing field", line(map[string]string{"gender": "-"}), MissingField},
		{"null field", line(map[string]string{"quantity": "null"}), NullField},
		{"fractional id", line(map[string]string{"client_id": "42.5"}), WrongType},
		{"string price", line(map[string]string{"price_per_item": `"1000"`}), WrongType},
		{"boolean quantity", line(map[string]string{"quantity": "true"}), WrongType},
		{"sub-cent price", line(map[string]string{"price_per_item": "10.001"}), WrongType},
		{"numeric gender", line(map[string]string{"gender": "1"}), WrongType},
		{"bad date", line(map[string]string{"purchase_datetime": `"05.01.2023"`}), WrongType},
		{"date with time component", line(map[string]string{"purchase_datetime": `"2023-01-05T10:00:00"`}), WrongType},
		{"date with garbage", line(map[string]string{"purchase_datetime": `"2023-01-05Tgarbage!"`}), WrongType},
		{"date with a space", line(map[string]string{"purchase_datetime": `"2023-01-05 "`}), WrongType},
		{"date not in the calendar", line(map[string]string{"purchase_datetime": `"2023-02-29"`}), WrongType},
		{"leading zero", line(map[string]string{"client_id": "01"}), InvalidJSON},
		{"number ending in a dot", line(map[string]string{"quantity": "1."}), InvalidJSON},
		{"number starting with a dot", line(map[string]string{"price_per_item": ".5"}), InvalidJSON},
		{"plus sign", line(map[string]string{"quantity": "+3"}), InvalidJSON},
		{"bare exponent", line(map[string]string{"total_price": "2700e"}), InvalidJSON},
		{"raw NUL in a string", line(map[string]string{"gender": "\"F\x00\""}), InvalidJSON},
		{"raw newline in a string", line(map[string]string{"extra": "\"a\nb\""}), InvalidJSON},
		{"invalid UTF-8", line(map[string]string{"extra": "\"\xff\""}), InvalidJSON},
		{"unknown escape", line(map[string]string{"extra": `"\x41"`}), InvalidJSON},
		{"short unicode escape", line(map[string]string{"extra": `"\u12"`}), InvalidJSON},
		{"truncated literal", line(map[string]string{"junk": "tru"}), InvalidJSON},
		{"bad nested literal", line(map[string]string{"junk": "[1, nul]"}), InvalidJSON},
		{"nested trailing comma", line(map[string]string{"junk": `{"a":1,}`}), InvalidJSON},
		{"mismatched bracket", `{"client_id": 1]`, InvalidJSON},
		{"single quotes", `{'client_id': 1}`, InvalidJSON},
		{"top-level garbage", `tru`, InvalidJSON},
		{"top-level leading zero", `01`, InvalidJSON},
		{"gender X", line(map[string]string{"gender": `"X"`}), InvalidGender},
		{"gender lowercase", line(map[string]string{"gender": `"f"`}), InvalidGender},
		{"other date", line(map[string]string{"purchase_datetime": `"2023-01-04"`}), DateMismatch},
		{"time 86400", line(map[string]string{"purchase_time_as_seconds_from_midnight": "86400"}), TimeOutOfRange},
		{"negative time", line(map[string]string{"purchase_time_as_seconds_from_midnight": "-1"}), TimeOutOfRange},
		{"negative client", line(map[string]string{"client_id": "-5"}), NegativeValue},
		{"negative price", line(map[string]string{"price_per_item": "-1000", "discount_per_item": "0", "total_price": "-3000"}), NegativeValue},
		{"discount above price", line(map[string]string{"discount_per_item": "1001", "total_price": "0"}), DiscountAbovePrice},
		{"total mismatch", line(map[string]string{"total_price": "2701"}), TotalMismatch},
		{"zero quantity", line(map[string]string{"quantity": "0", "total_price": "0"}), ZeroQuantity},
		{"huge id", line(map[string]string{"client_id": "99999999999"}), WrongType},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, rej := Parse([]byte(c.elem), day)
			if rej == nil {
				t.Fatalf("accepted %s, want %s", c.elem, c.want)
			}
			if rej.Reason != c.want {
				t.Fatalf("reason %s (%s), want %s", rej.Reason, rej.Detail, c.want)
			}
			if rej.Detail == "" {
				t.Fatal("empty detail")
			}
		})
	}
}

func TestChecksumIsOrderIndependentAndCountsDuplicates(t *testing.T) {
	a, b := []byte(line(nil)), []byte(line(map[string]string{"client_id": "7"}))
	var x, y, dup Checksum
	x.Add(a)
	x.Add(b)
	y.Add(b)
	y.Add(a)
	if x.String() != y.String() {
		t.Fatalf("order changed checksum: %s vs %s", x.String(), y.String())
	}
	dup.Add(a)
	dup.Add(a)
	dup.Add(b)
	if dup.String() == x.String() {
		t.Fatal("a duplicated line did not change the checksum")
	}
	var empty Checksum
	if empty.String() != "v1:0:00000000000000000000000000000000" {
		t.Fatalf("empty checksum %s", empty.String())
	}
}

func TestCentsString(t *testing.T) {
	for c, want := range map[Cents]string{0: "0.00", 5: "0.05", 1050: "10.50", -1050: "-10.50", 10000000: "100000.00"} {
		if got := c.String(); got != want {
			t.Errorf("Cents(%d) = %s, want %s", c, got, want)
		}
	}
}

func TestFieldIndexKnowsEveryName(t *testing.T) {
	for i, name := range fieldNames {
		if got := fieldIndex([]byte(name)); got != i {
			t.Errorf("fieldIndex(%q) = %d, want %d", name, got, i)
		}
	}
	if fieldIndex([]byte("client")) != -1 {
		t.Error("unknown key matched")
	}
}

func BenchmarkParse(b *testing.B) {
	elem := []byte(`{"client_id": 713202, "gender": "F", "purchase_datetime": "2023-01-05", "purchase_time_as_seconds_from_midnight": 55128, "product_id": 31337, "quantity": 7, "price_per_item": 2499.0, "discount_per_item": 250.0, "total_price": 15743.0}`)
	b.SetBytes(int64(len(elem)))
	for i := 0; i < b.N; i++ {
		if _, rej := Parse(elem, day); rej != nil {
			b.Fatal(rej)
		}
	}
}

// BenchmarkParseIntegers parses a line as the API mostly sends them: every
// number an integer (one line in ten has amounts like 2499.0).
func BenchmarkParseIntegers(b *testing.B) {
	elem := []byte(`{"client_id": 713202, "gender": "F", "purchase_datetime": "2023-01-05", "purchase_time_as_seconds_from_midnight": 55128, "product_id": 31337, "quantity": 7, "price_per_item": 2499, "discount_per_item": 250, "total_price": 15743}`)
	b.SetBytes(int64(len(elem)))
	for b.Loop() {
		if _, rej := Parse(elem, day); rej != nil {
			b.Fatal(rej)
		}
	}
}

// The members are read in any order, whatever order the API usually sends
// them in: a name is recognised as the expected one only when it is that
// name whole.
func TestParseMemberOrder(t *testing.T) {
	want, rej := Parse([]byte(line(nil)), day)
	if rej != nil {
		t.Fatal(rej)
	}
	reversed := `{"total_price": 2700, "discount_per_item": 100, "price_per_item": 1000, "quantity": 3, "product_id": 0,
		"purchase_time_as_seconds_from_midnight": 3600, "purchase_datetime": "2023-01-05", "gender": "F", "client_id": 42}`
	rest := line(nil)[len(`{"client_id": 42, `):] // every member after client_id
	for name, elem := range map[string]string{
		"reversed":               reversed,
		"a longer name first":    `{"client_idx": 7, "client_id": 42, ` + rest,
		"a longer name last":     line(map[string]string{"total_price_x": "1"}), // where total_price would come again
		"a prefix of the name":   `{"client": 5, "client_id": 42, ` + rest,
		"the name escaped":       strings.Replace(line(nil), `"gender"`, `"g\u0065nder"`, 1),
		"a duplicate, last wins": `{"client_id": 41, "client_id": 42, ` + rest,
		"fields after unknowns":  `{"x": 1, "client_id": 42, "y": {"client_id": 1}, ` + rest,
	} {
		t.Run(name, func(t *testing.T) {
			got, rej := Parse([]byte(elem), day)
			if rej != nil || got != want {
				t.Fatalf("%s: got %+v, %v; want %+v", elem, got, rej, want)
			}
		})
	}
}

// TestParseAPILine: lines written as the API writes them are read as a
// template, with the fields Parse reads; any other text is left to the
// member-by-member scan.
func TestParseAPILine(t *testing.T) {
	for name, o := range map[string]map[string]string{
		"integers":      nil,
		"floats":        {"client_id": "42.0", "price_per_item": "1000.0", "discount_per_item": "100.0", "total_price": "2700.0"},
		"zeros":         {"client_id": "0", "product_id": "0", "quantity": "0", "discount_per_item": "0", "total_price": "0"},
		"12 digits":     {"price_per_item": "999999999999", "discount_per_item": "0", "quantity": "1", "total_price": "999999999999"},
		"out of rules":  {"purchase_time_as_seconds_from_midnight": "86400", "total_price": "1"},
		"gender M":      {"gender": `"M"`},
		"a zero time":   {"purchase_time_as_seconds_from_midnight": "0.0"},
		"large numbers": {"client_id": "999999999999", "product_id": "123456789012"},
	} {
		elem := []byte(line(o))
		n, rec := parseAPILine(elem, day)
		wantRec, wantRej := Parse(elem, day)
		if n != len(elem) || rec != wantRec {
			t.Errorf("%s: read %d of %d bytes, %+v; Parse read %+v", name, n, len(elem), rec, wantRec)
		}
		if rej := rules(&rec); (rej == nil) != (wantRej == nil) || (rej != nil && *rej != *wantRej) {
			t.Errorf("%s: rules say %v, Parse %v", name, rej, wantRej)
		}
	}
	for name, elem := range map[string]string{
		"another date":      line(map[string]string{"purchase_datetime": `"2023-01-04"`}),
		"another gender":    line(map[string]string{"gender": `"X"`}),
		"negative":          line(map[string]string{"product_id": "-1"}),
		"leading zero":      line(map[string]string{"product_id": "01"}),
		"cents":             line(map[string]string{"price_per_item": "1000.5"}),
		"two zero decimals": line(map[string]string{"price_per_item": "1000.00"}),
		"exponent":          line(map[string]string{"total_price": "2.7e3"}),
		"13 digits":         line(map[string]string{"client_id": "1234567890123"}),
		"a string number":   line(map[string]string{"quantity": `"3"`}),
		"an extra member":   line(map[string]string{"extra": "1"}),
		"a missing member":  line(map[string]string{"gender": "-"}),
		"no space":          strings.Replace(line(nil), `"client_id": 42`, `"client_id":42`, 1),
		"escaped name":      strings.Replace(line(nil), `"gender"`, `"g\u0065nder"`, 1),
		"cut short":         line(nil)[:len(line(nil))-1],
	} {
		if n, _ := parseAPILine([]byte(elem), day); n != -1 {
			t.Errorf("%s: read %d bytes of %s as an API line", name, n, elem)
		}
	}
}
