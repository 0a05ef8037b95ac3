package marketplace

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"github.com/marketplace-etl/marketplace-etl/internal/purchases"
)

// split runs the splitter over body with the given line limit; an
// over-long element is returned as "LONG(size):prefix".
func split(t testing.TB, body string, oneByte bool, max int) ([]string, error) {
	out, _, err := splitScanned(t, body, oneByte, max, nil)
	return out, err
}

// splitScanned is split with a scanner of objects, also counting the
// elements it measured. Without a scanner the buffer starts tiny, to
// force refills and growth mid-element; with one it starts at its usual
// size, so that most objects are whole in it.
func splitScanned(t testing.TB, body string, oneByte bool, max int, scan func([]byte) int) ([]string, int, error) {
	var r io.Reader = strings.NewReader(strings.TrimLeft(body, " \t\r\n")[1:]) // Open consumes '['
	if oneByte {
		r = iotest.OneByteReader(r)
	}
	e := newElements(r, max)
	if scan == nil {
		e.buf = make([]byte, 4)
	}
	var out []string
	nScanned := 0
	for {
		el, scanned, err := e.scanNext(scan)
		if scanned {
			nScanned++
		}
		var long *LongElement
		switch {
		case errors.Is(err, io.EOF):
			return out, nScanned, nil
		case errors.As(err, &long):
			out = append(out, fmt.Sprintf("LONG(%d):%s", long.Size, el))
		case err != nil:
			return out, nScanned, err
		default:
			out = append(out, string(el))
		}
	}
}

func TestElementsSplitsLikeEncodingJSON(t *testing.T) {
	for _, body := range []string{
		`[]`, ` [ ] `, `[{"a":1}]`, `[{"a":"x,]}"} , {"b":[1,{"c":"\"]"}]},null,17,"s",true]`,
		"[\n{\"a\": 1},\n{\"a\": 2}\n]", "[1]\n\t ",
	} {
		got, err := split(t, body, true, 1<<20)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		want := reference(t, body, 1<<20)
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("%s: got %q, want %q", body, got, want)
		}
	}
}

func TestElementsTruncated(t *testing.T) {
	for _, body := range []string{`[`, `[{"a":1}`, `[{"a":1},`, `[{"a":"x`, `[{"a":{"b":1}`} {
		if _, err := split(t, body, false, 1<<20); !errors.Is(err, errTruncated) {
			t.Errorf("%s: got %v, want errTruncated", body, err)
		}
	}
	if _, err := split(t, `[{"a":1} {"b":2}]`, false, 1<<20); err == nil {
		t.Error("missing comma accepted")
	}
}

// TestElementsRefuseDataAfterTheArray: a second array or an HTML page
// after the closing bracket is an error, not silently ignored.
func TestElementsRefuseDataAfterTheArray(t *testing.T) {
	for _, body := range []string{`[{"a":1}][{"b":2}]`, `[{"a":1}]<html><body>oops</body></html>`, `[] x`, "[1]\x00", `[1],`} {
		_, err := split(t, body, true, 1<<20)
		if err == nil || !strings.Contains(err.Error(), "after the closing bracket") {
			t.Errorf("%q: got %v, want an error about data after the array", body, err)
		}
	}
}

// TestElementsSkipLongElements: an element over the limit comes back as
// its first bytes and its size, and the elements after it are intact,
// whatever is inside it (brackets and commas in strings, nesting).
func TestElementsSkipLongElements(t *testing.T) {
	long := `{"note":"` + strings.Repeat(`],{"\"x`, 3000) + `","n":[1,[2,{"a":"]"}]]}`
	body := `[{"a":1},` + long + `,{"b":2}, ` + strings.Repeat("7", 5000) + `,"` + strings.Repeat("é", 3000) + `",{"c":3}]`
	for _, oneByte := range []bool{false, true} {
		got, err := split(t, body, oneByte, 2048)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{`{"a":1}`, fmt.Sprintf("LONG(%d):%s", len(long), long[:1024]), `{"b":2}`,
			fmt.Sprintf("LONG(5000):%s", strings.Repeat("7", 1024)), fmt.Sprintf("LONG(6002):\"%s", strings.Repeat("é", 511)), `{"c":3}`}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("oneByte=%v: got %.300q…, want %.300q…", oneByte, got, want)
		}
	}
}

// TestElementsMemoryIsBounded: a 64 MiB element never grows the buffer
// past about twice the line limit.
func TestElementsMemoryIsBounded(t *testing.T) {
	const max = 1 << 20
	r := io.MultiReader(strings.NewReader(`{"x":"`), io.LimitReader(repeated('a'), 64<<20), strings.NewReader(`"},{"y":1}]`))
	e := newElements(r, max)
	el, err := e.next()
	var long *LongElement
	if !errors.As(err, &long) || long.Size != 64<<20+8 || len(el) != LongElementPrefix {
		t.Fatalf("got %d bytes, %v", len(el), err)
	}
	if el, err = e.next(); err != nil || string(el) != `{"y":1}` {
		t.Fatalf("after the long element: %q, %v", el, err)
	}
	if cap(e.buf) > 2*max+64<<10 {
		t.Fatalf("buffer grew to %d bytes for a line limit of %d", cap(e.buf), max)
	}
}

type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// reference splits body with encoding/json, rendering over-long elements
// as split does.
func reference(t testing.TB, body string, max int) []string {
	dec := json.NewDecoder(strings.NewReader(body))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var out []string
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			t.Fatal(err)
		}
		el := string(bytes.TrimSpace(raw))
		if len(el) > max {
			n := min(LongElementPrefix, max)
			for n > 0 && !utf8.RuneStart(el[n]) {
				n--
			}
			el = fmt.Sprintf("LONG(%d):%s", len(el), el[:n])
		}
		out = append(out, el)
	}
	return out
}

// objectEnd scans as the purchases parser does for Day.NextScanned: the
// length of the valid JSON object b starts with, or -1.
func objectEnd(b []byte) int {
	dec := json.NewDecoder(bytes.NewReader(b))
	var v json.RawMessage
	if dec.Decode(&v) != nil || v[0] != '{' || !utf8.Valid(v) {
		return -1
	}
	return int(dec.InputOffset())
}

// TestElementsScanned: with a scanner the elements are the same, and the
// objects whole in the buffer are measured by the scanner, not split.
func TestElementsScanned(t *testing.T) {
	var body strings.Builder
	body.WriteString("[")
	for i := range 3000 { // about 35 bytes each: the buffer (2 KiB, the line limit) is refilled mid-object
		fmt.Fprintf(&body, `{"a": %d, "s": "x,]}\"{"}, `, i)
	}
	long := `{"note":"` + strings.Repeat(`],{"\"x`, 3000) + `"}`
	body.WriteString(`{"a": tru}, {"a": "\xff"}, 17, "{", ` + long + `, {"b": [1, {"c": 2}]} , {"d": "é"}]`)
	want, err := split(t, body.String(), false, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, oneByte := range []bool{false, true} {
		got, scanned, err := splitScanned(t, body.String(), oneByte, 2048, objectEnd)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("oneByte=%v: got %.300q…, want %.300q…", oneByte, got, want)
		}
		if !oneByte && scanned < 2900 {
			t.Fatalf("the scanner measured %d of 3007 elements", scanned)
		}
		if oneByte && scanned > 0 {
			t.Fatalf("the scanner measured %d elements read one byte at a time", scanned)
		}
	}
}

// FuzzElements: on any valid JSON array the splitter yields exactly the
// elements encoding/json finds (over-long ones as their start and size),
// with or without a scanner of objects, and it never panics on anything
// else; on anything, the scanner changes nothing.
func FuzzElements(f *testing.F) {
	f.Add(`[{"client_id": 1, "gender": "M"}, {"x": "]"}]`, 1<<20)
	f.Add(`[1, "a\"b", [2, {}], null]`, 3)
	f.Add(`[{"a":`, 1<<20)
	// Issue 13: data after the array, and elements over the line limit.
	f.Add(`[{"a":1}][{"b":2}]`, 1<<20)
	f.Add(`[{"a":1}]<html></html>`, 1<<20)
	f.Add(`[{"a":"`+strings.Repeat("x,]", 100)+`"}, {"b": 2}]`, 16)
	f.Fuzz(func(t *testing.T, body string, max int) {
		if max < 1 || max > 1<<20 {
			return
		}
		trimmed := strings.TrimLeft(body, " \t\r\n")
		if !strings.HasPrefix(trimmed, "[") {
			return
		}
		got, err := split(t, body, false, max)
		scanned, _, errScanned := splitScanned(t, body, false, max, objectEnd)
		if strings.Join(got, "\x00") != strings.Join(scanned, "\x00") || (err == nil) != (errScanned == nil) {
			t.Fatalf("%q: split %q (%v), with a scanner %q (%v)", body, got, err, scanned, errScanned)
		}
		if !json.Valid([]byte(body)) {
			return
		}
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		if want := reference(t, body, max); strings.Join(got, "\x00") != strings.Join(want, "\x00") {
			t.Fatalf("%q: got %q, want %q", body, got, want)
		}
	})
}

// apiDay is a day of the real API's shape: 5,500 lines of about 230
// bytes, one in ten with amounts like 6972.0.
func apiDay() []byte {
	var body bytes.Buffer
	body.WriteString("[")
	for i := range 5500 {
		if i > 0 {
			body.WriteString(", ")
		}
		dec := ""
		if i%10 == 0 {
			dec = ".0"
		}
		fmt.Fprintf(&body, `{"client_id": %d, "gender": "M", "purchase_datetime": "2024-01-05", "purchase_time_as_seconds_from_midnight": %d, "product_id": %d, "quantity": 23, "price_per_item": 6972%s, "discount_per_item": 0%s, "total_price": 160356%s}`,
			228451+i, 9258+i, 15288+i, dec, dec, dec)
	}
	body.WriteString("]")
	return body.Bytes()
}

// BenchmarkElements splits a day of the real API's shape: the first pass
// over every byte of a load when the elements are not scanned.
func BenchmarkElements(b *testing.B) {
	body := apiDay()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		e := newElements(bytes.NewReader(body[1:]), DefaultMaxLineBytes)
		for {
			if _, err := e.next(); err != nil {
				if !errors.Is(err, io.EOF) {
					b.Fatal(err)
				}
				break
			}
		}
	}
}

// BenchmarkElementsParsed reads and validates a day of the real API's
// shape, per line: split then parsed, as before NextScanned, and scanned
// by the parser, as the pipeline reads a day.
func BenchmarkElementsParsed(b *testing.B) {
	body := apiDay()
	const date = "2024-01-05"
	for _, scanned := range []bool{false, true} {
		b.Run(map[bool]string{false: "split+Parse", true: "ParseFirst"}[scanned], func(b *testing.B) {
			var rej *purchases.Rejection
			scan := func(b []byte) int {
				var n int
				n, _, rej = purchases.ParseFirst(b, date)
				return n
			}
			if !scanned {
				scan = nil
			}
			for b.Loop() {
				e := newElements(bytes.NewReader(body[1:]), DefaultMaxLineBytes)
				for {
					el, ok, err := e.scanNext(scan)
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					if !ok {
						_, rej = purchases.Parse(el, date)
					}
					if rej != nil {
						b.Fatal(rej)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*5500), "ns/line")
		})
	}
}
