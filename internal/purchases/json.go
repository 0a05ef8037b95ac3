package purchases

import (
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
)

// The scanner below validates JSON exactly as RFC 8259 defines it (plus
// its rule that text exchanged between systems is UTF-8) in the same pass
// that reads the fields, without allocating: a separate json.Valid per
// line would cost about as much again as the whole parse.

func skipWS(b []byte, i int) int {
	for i < len(b) && b[i] <= ' ' && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// trimWS drops JSON whitespace (only these four bytes, unlike
// bytes.TrimSpace) around an element.
func trimWS(b []byte) []byte {
	b = b[skipWS(b, 0):]
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// scanString checks the string starting with the quote at i. It returns
// the index after its closing quote and whether it holds escapes, or -1
// when it is not a valid JSON string: unterminated, a raw control
// character, an unknown escape, or bytes that are not UTF-8.
func scanString(b []byte, i int) (int, bool) {
	esc := false
	for j := i + 1; j < len(b); {
		// Most of a string is printable ASCII: pass it in a tight loop.
		for j < len(b) && plainString[b[j]] {
			j++
		}
		if j == len(b) {
			break
		}
		c := b[j]
		switch {
		case c == '"':
			return j + 1, esc
		case c == '\\':
			esc = true
			if j+1 >= len(b) {
				return -1, esc
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if j+6 > len(b) || !isHex(b[j+2]) || !isHex(b[j+3]) || !isHex(b[j+4]) || !isHex(b[j+5]) {
					return -1, esc
				}
				j += 6
			default:
				return -1, esc
			}
		case c < 0x20:
			return -1, esc
		case c < utf8.RuneSelf:
			j++
		default:
			r, size := utf8.DecodeRune(b[j:])
			if r == utf8.RuneError && size == 1 {
				return -1, esc
			}
			j += size
		}
	}
	return -1, esc
}

// plainString marks the bytes a string holds as they are: printable
// ASCII but the quote and the backslash.
var plainString = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scanNumber returns the index after the number at i, or -1 when it does
// not follow the grammar -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
// (no leading zeros, no bare "1." or ".5", no "+1").
func scanNumber(b []byte, i int) int {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return i
}

// scanNumberValue scans the number at i as scanNumber does, and returns it
// with the index after it, or -1. A plain integer (scanned.plain) is read
// in the same pass.
func scanNumberValue(b []byte, i int) (scanned, int) {
	var n int64
	j := i
	for ; j < len(b) && isDigit(b[j]); j++ {
		n = n*10 + int64(b[j]-'0') // wraps past 18 digits: not plain then
	}
	if d := j - i; d > 0 && d <= 18 && (b[i] != '0' || d == 1) && (j == len(b) || (b[j] != '.' && b[j] != 'e' && b[j] != 'E')) {
		return scanned{kind: kNumber, raw: b[i:j], plain: true, whole: n}, j
	}
	end := scanNumber(b, i)
	if end < 0 {
		return scanned{}, -1
	}
	return scanned{kind: kNumber, raw: b[i:end]}, end
}

// scanLiteral returns the index after lit at i, or -1.
func scanLiteral(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// skipKey checks an object member's name and colon at i; it returns the
// index of the member's value, or -1.
func skipKey(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	end, _ := scanString(b, i)
	if end < 0 {
		return -1
	}
	i = skipWS(b, end)
	if i >= len(b) || b[i] != ':' {
		return -1
	}
	return skipWS(b, i+1)
}

// skipValue checks the JSON value starting at i and returns the index
// after it, or -1 when it is not valid. Nesting is followed with an
// explicit stack, so a deeply nested line cannot exhaust the goroutine
// stack (the line's length bounds the depth).
func skipValue(b []byte, i int) int {
	var open []byte // the brackets of the containers entered, '{' or '['
	for {
		if i >= len(b) {
			return -1
		}
		switch c := b[i]; c {
		case '{', '[':
			j := skipWS(b, i+1)
			if j < len(b) && b[j] == c+2 { // '}' is '{'+2, ']' is '['+2
				i = j + 1
				break
			}
			open = append(open, c)
			i = j
			if c == '{' {
				if i = skipKey(b, i); i < 0 {
					return -1
				}
			}
			continue
		case '"':
			i, _ = scanString(b, i)
		case 't':
			i = scanLiteral(b, i, "true")
		case 'f':
			i = scanLiteral(b, i, "false")
		case 'n':
			i = scanLiteral(b, i, "null")
		default:
			i = scanNumber(b, i)
		}
		if i < 0 {
			return -1
		}
		// A value ended at i: close containers, or go on to the next member.
		for {
			if len(open) == 0 {
				return i
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return -1
			}
			top := open[len(open)-1]
			if b[i] == top+2 {
				open = open[:len(open)-1]
				i++
				continue
			}
			if b[i] != ',' {
				return -1
			}
			i = skipWS(b, i+1)
			if top == '{' {
				if i = skipKey(b, i); i < 0 {
					return -1
				}
			}
			break
		}
	}
}

// validJSON tells whether b is exactly one JSON value with optional
// whitespace around it.
func validJSON(b []byte) bool {
	end := skipValue(b, skipWS(b, 0))
	return end >= 0 && skipWS(b, end) == len(b)
}

// invalidDetail says what is wrong with an element that is not valid
// JSON. It runs only for rejected lines, so it may be slow.
func invalidDetail(b []byte) string {
	err := json.Unmarshal(b, new(json.RawMessage))
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return "not valid JSON (RFC 8259): " + se.Error() + " at byte " + strconv.FormatInt(se.Offset, 10)
	case !utf8.Valid(b):
		return "not valid JSON (RFC 8259): a string holds bytes that are not UTF-8"
	}
	return "not valid JSON (RFC 8259)"
}

// unescape decodes a JSON string (quotes included) that holds escapes.
func unescape(quoted []byte) []byte {
	var s string
	if json.Unmarshal(quoted, &s) != nil {
		return quoted
	}
	return []byte(s)
}
