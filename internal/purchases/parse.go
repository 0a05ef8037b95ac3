package purchases

import (
	"bytes"
	"math"
	"strconv"
)

// Field names of the API's purchase object.
const (
	fClientID = iota
	fGender
	fDate
	fSeconds
	fProductID
	fQuantity
	fPrice
	fDiscount
	fTotal
	numFields
)

var fieldNames = [numFields]string{
	"client_id", "gender", "purchase_datetime", "purchase_time_as_seconds_from_midnight",
	"product_id", "quantity", "price_per_item", "discount_per_item", "total_price",
}

// value kinds of a scanned JSON value
const (
	kAbsent = iota
	kNull
	kNumber
	kString
	kOther // true, false, object, array
)

type scanned struct {
	kind int
	raw  []byte // number text, or string contents (still escaped)
	// plain: the number is an integer of at most 18 digits without sign,
	// fraction or exponent (the API's ids, and most of its amounts), read
	// into whole as it was scanned.
	plain bool
	whole int64
}

// Parse validates one element of the API's array against the requested
// date ("YYYY-MM-DD"). It returns the record, or a Rejection with a reason.
// The element is checked to be valid JSON (RFC 8259) here: the array
// splitter only finds where elements end. Parse never panics on any input
// (see FuzzParse).
func Parse(elem []byte, date string) (Record, *Rejection) {
	var vals [numFields]scanned
	b := trimWS(elem)
	if len(b) == 0 || b[0] != '{' {
		if !validJSON(b) {
			return Record{}, &Rejection{InvalidJSON, invalidDetail(b)}
		}
		return Record{}, &Rejection{NotObject, "expected a JSON object, got " + preview(b)}
	}
	if scanObject(b, &vals) != len(b) {
		return Record{}, &Rejection{InvalidJSON, invalidDetail(b)}
	}
	return check(&vals, date)
}

// ParseFirst parses the JSON object that b starts with, where b is the
// rest of an array's body from an element on (no whitespace before it),
// so that the body's bytes are read once: to find where the element ends
// and to validate it. When b starts with a whole object that is valid
// JSON, n is its length and the result is Parse(b[:n], date)'s. Otherwise
// n is -1 and nothing is decided: b does not start with '{', or the object
// is not valid JSON, or it does not end within b; the element is then
// split and parsed the general way.
func ParseFirst(b []byte, date string) (n int, rec Record, rej *Rejection) {
	var vals [numFields]scanned
	if len(b) == 0 || b[0] != '{' {
		return -1, rec, nil
	}
	if n = scanObject(b, &vals); n < 0 {
		return -1, rec, nil
	}
	rec, rej = check(&vals, date)
	return n, rec, rej
}

// check validates the fields of a valid JSON object.
func check(vals *[numFields]scanned, date string) (Record, *Rejection) {
	var rec Record
	present := 0
	for i := range vals {
		if vals[i].kind != kAbsent && vals[i].kind != kNull {
			present++
		}
	}
	if present == 0 {
		return rec, &Rejection{AllNull, "every field is null or absent"}
	}
	for i := range vals {
		switch vals[i].kind {
		case kAbsent:
			return rec, &Rejection{MissingField, fieldNames[i] + " is missing"}
		case kNull:
			return rec, &Rejection{NullField, fieldNames[i] + " is null"}
		}
	}
	var ok bool
	ints := [...]struct {
		f   int
		dst *int64
	}{{fClientID, &rec.ClientID}, {fSeconds, &rec.Seconds}, {fProductID, &rec.ProductID}, {fQuantity, &rec.Quantity}}
	for _, it := range ints {
		v := vals[it.f]
		if v.kind != kNumber {
			return rec, &Rejection{WrongType, fieldNames[it.f] + " is not a number"}
		}
		if v.plain {
			*it.dst = v.whole
		} else if *it.dst, ok = parseWhole(v.raw); !ok {
			return rec, &Rejection{WrongType, fieldNames[it.f] + " is not a whole number: " + string(v.raw)}
		}
	}
	money := [...]struct {
		f   int
		dst *Cents
	}{{fPrice, &rec.Price}, {fDiscount, &rec.Discount}, {fTotal, &rec.Total}}
	for _, m := range money {
		v := vals[m.f]
		if v.kind != kNumber {
			return rec, &Rejection{WrongType, fieldNames[m.f] + " is not a number"}
		}
		if v.plain && len(v.raw) <= 12 {
			*m.dst = Cents(v.whole * 100)
		} else if *m.dst, ok = parseCents(v.raw); !ok {
			return rec, &Rejection{WrongType, fieldNames[m.f] + " is not an amount with at most 2 decimals: " + string(v.raw)}
		}
	}
	g := vals[fGender]
	if g.kind != kString {
		return rec, &Rejection{WrongType, "gender is not a string"}
	}
	if len(g.raw) != 1 || (g.raw[0] != 'M' && g.raw[0] != 'F') {
		return rec, &Rejection{InvalidGender, "gender is " + strconv.Quote(string(g.raw)) + ", expected M or F"}
	}
	rec.Gender = g.raw[0]
	d := vals[fDate]
	if d.kind != kString {
		return rec, &Rejection{WrongType, "purchase_datetime is not a string"}
	}
	if !isDate(d.raw) {
		return rec, &Rejection{WrongType, "purchase_datetime is not a YYYY-MM-DD date: " + strconv.Quote(string(d.raw))}
	}
	if string(d.raw) != date {
		return rec, &Rejection{DateMismatch, "purchase_datetime is " + string(d.raw) + ", requested " + date}
	}
	rec.Date = date
	switch {
	case rec.ClientID < 0:
		return rec, &Rejection{NegativeValue, "client_id is negative"}
	case rec.ProductID < 0:
		return rec, &Rejection{NegativeValue, "product_id is negative"}
	case rec.Quantity < 0:
		return rec, &Rejection{NegativeValue, "quantity is negative"}
	case rec.Price < 0:
		return rec, &Rejection{NegativeValue, "price_per_item is negative"}
	case rec.Discount < 0:
		return rec, &Rejection{NegativeValue, "discount_per_item is negative"}
	case rec.Total < 0:
		return rec, &Rejection{NegativeValue, "total_price is negative"}
	case rec.Seconds < 0 || rec.Seconds >= SecondsPerDay:
		return rec, &Rejection{TimeOutOfRange, "purchase_time_as_seconds_from_midnight is " + strconv.FormatInt(rec.Seconds, 10) + ", expected 0..86399"}
	case rec.ClientID > math.MaxInt32 || rec.ProductID > math.MaxInt32 || rec.Quantity > math.MaxInt32:
		return rec, &Rejection{WrongType, "an id or quantity is out of the 32-bit range"}
	case rec.Price > maxCents || rec.Total > maxCents:
		return rec, &Rejection{WrongType, "an amount is out of range"}
	case rec.Discount > rec.Price:
		return rec, &Rejection{DiscountAbovePrice, "discount_per_item " + rec.Discount.String() + " is above price_per_item " + rec.Price.String()}
	case Cents(rec.Quantity)*(rec.Price-rec.Discount) != rec.Total:
		return rec, &Rejection{TotalMismatch, "total_price " + rec.Total.String() + " is not quantity × (price − discount) = " + (Cents(rec.Quantity) * (rec.Price - rec.Discount)).String()}
	case rec.Quantity == 0:
		return rec, &Rejection{ZeroQuantity, "quantity is 0"}
	}
	return rec, nil
}

// maxCents keeps quantity*price far from overflow and within numeric(14,2).
const maxCents = Cents(1e12)

func preview(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

// isDate accepts exactly YYYY-MM-DD, a day that exists in the calendar.
func isDate(s []byte) bool {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return false
	}
	for _, i := range [...]int{0, 1, 2, 3, 5, 6, 8, 9} {
		if !isDigit(s[i]) {
			return false
		}
	}
	y := int(s[0]-'0')*1000 + int(s[1]-'0')*100 + int(s[2]-'0')*10 + int(s[3]-'0')
	m := int(s[5]-'0')*10 + int(s[6]-'0')
	d := int(s[8]-'0')*10 + int(s[9]-'0')
	return m >= 1 && m <= 12 && d >= 1 && d <= daysIn(y, m)
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// parseWhole accepts 12, 12.0, -3, 1.2e3 when the value is a whole number.
func parseWhole(s []byte) (int64, bool) {
	if n, ok := parseDigits(s); ok {
		return n, true
	}
	f, err := strconv.ParseFloat(string(s), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int64(f), true
}

// parseCents accepts numbers with at most two decimal places, exactly.
func parseCents(s []byte) (Cents, bool) {
	// The API's amounts, "6972" or "6972.0", in one pass; anything else
	// (a sign, an exponent, more digits) takes the general way below.
	var n int64
	i := 0
	for ; i < len(s) && i <= 12 && isDigit(s[i]); i++ {
		n = n*10 + int64(s[i]-'0')
	}
	if i > 0 && i <= 12 {
		switch rest := s[i:]; {
		case len(rest) == 0:
			return Cents(n * 100), true
		case len(rest) == 2 && rest[0] == '.' && isDigit(rest[1]):
			return Cents(n*100 + int64(rest[1]-'0')*10), true
		case len(rest) == 3 && rest[0] == '.' && isDigit(rest[1]) && isDigit(rest[2]):
			return Cents(n*100 + int64(rest[1]-'0')*10 + int64(rest[2]-'0')), true
		}
	}
	return parseCentsAny(s)
}

// parseCentsAny is parseCents for any number.
func parseCentsAny(s []byte) (Cents, bool) {
	neg := false
	if len(s) > 0 && s[0] == '-' {
		neg, s = true, s[1:]
	}
	intPart, frac := s, []byte(nil)
	if i := bytes.IndexByte(s, '.'); i >= 0 {
		intPart, frac = s[:i], s[i+1:]
	}
	if bytes.ContainsAny(s, "eE") {
		f, err := strconv.ParseFloat(string(s), 64)
		c := math.Round(f * 100)
		if err != nil || math.Abs(c-f*100) > 1e-6 || math.Abs(c) > float64(maxCents) {
			return 0, false
		}
		if neg {
			c = -c
		}
		return Cents(c), true
	}
	n, ok := parseDigits(intPart)
	if !ok || n > int64(maxCents) {
		return 0, false
	}
	for len(frac) > 2 && frac[len(frac)-1] == '0' {
		frac = frac[:len(frac)-1]
	}
	var f int64
	switch len(frac) {
	case 0:
	case 1, 2:
		for _, c := range frac {
			if c < '0' || c > '9' {
				return 0, false
			}
		}
		f = int64(frac[0]-'0') * 10
		if len(frac) == 2 {
			f += int64(frac[1] - '0')
		}
	default:
		return 0, false
	}
	c := Cents(n*100 + f)
	if neg {
		c = -c
	}
	return c, true
}

// parseDigits parses an optionally negative integer without fraction,
// allowing a fraction of only zeros ("12.0").
func parseDigits(s []byte) (int64, bool) {
	neg := false
	if len(s) > 0 && s[0] == '-' {
		neg, s = true, s[1:]
	}
	var n int64
	i := 0
	for ; i < len(s) && isDigit(s[i]); i++ {
		n = n*10 + int64(s[i]-'0') // wraps past 18 digits, refused below
	}
	if i == 0 || i > 18 {
		return 0, false
	}
	if i < len(s) {
		if s[i] != '.' || i+1 == len(s) {
			return 0, false
		}
		for _, c := range s[i+1:] {
			if c != '0' {
				return 0, false
			}
		}
	}
	if neg {
		n = -n
	}
	return n, true
}

// scanObject reads the top-level members of a JSON object, keeping the
// values of the known fields, and checks the whole object is valid JSON
// (nested values included). It returns the index after the object's
// closing brace, or -1 when it is not valid.
func scanObject(b []byte, vals *[numFields]scanned) int {
	i := skipWS(b, 1)
	if i < len(b) && b[i] == '}' {
		return i + 1
	}
	expect := 0 // the field the API sends next: its fields come in fieldNames' order
	for {
		if i >= len(b) || b[i] != '"' {
			return -1
		}
		var f, kEnd int
		if name := fieldNames[expect]; len(b)-i > len(name)+1 && b[i+1+len(name)] == '"' && string(b[i+1:i+1+len(name)]) == name {
			// The expected name: plain ASCII, so a valid string, and no
			// need to scan it byte by byte and look it up.
			f, kEnd = expect, i+2+len(name)
		} else {
			var esc bool
			if kEnd, esc = scanString(b, i); kEnd < 0 {
				return -1
			}
			key := b[i+1 : kEnd-1]
			if esc {
				key = unescape(b[i:kEnd])
			}
			f = fieldIndex(key)
		}
		if f >= 0 && f+1 < numFields {
			expect = f + 1
		}
		i = skipWS(b, kEnd)
		if i >= len(b) || b[i] != ':' {
			return -1
		}
		i = skipWS(b, i+1)
		if i >= len(b) {
			return -1
		}
		var v scanned
		switch c := b[i]; {
		case c == '"':
			end, vesc := scanString(b, i)
			if end < 0 {
				return -1
			}
			v = scanned{kind: kString, raw: b[i+1 : end-1]}
			if vesc {
				v.raw = unescape(b[i:end])
			}
			i = end
		case c == 'n':
			if i = scanLiteral(b, i, "null"); i < 0 {
				return -1
			}
			v = scanned{kind: kNull}
		case c == '-' || isDigit(c):
			if v, i = scanNumberValue(b, i); i < 0 {
				return -1
			}
		default:
			end := skipValue(b, i)
			if end < 0 {
				return -1
			}
			v, i = scanned{kind: kOther}, end
		}
		if f >= 0 {
			vals[f] = v
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return -1
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return i + 1
		default:
			return -1
		}
	}
}

// fieldIndex maps a key to its field; a switch on the string compiles to
// a search by length and content, cheaper than comparing with every name.
func fieldIndex(key []byte) int {
	switch string(key) {
	case "client_id":
		return fClientID
	case "gender":
		return fGender
	case "purchase_datetime":
		return fDate
	case "purchase_time_as_seconds_from_midnight":
		return fSeconds
	case "product_id":
		return fProductID
	case "quantity":
		return fQuantity
	case "price_per_item":
		return fPrice
	case "discount_per_item":
		return fDiscount
	case "total_price":
		return fTotal
	}
	return -1
}
