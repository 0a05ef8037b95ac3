package marketplace

import (
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// elements splits a JSON array read from r into its top-level elements
// without decoding them: the API sends flat objects, and decoding each one
// twice (once to split, once to read its fields) was the biggest cost of a
// load. Each element is returned verbatim; whether it is valid JSON and a
// valid purchase line is for the caller to decide. The array's own
// structure is checked: a body that ends before the closing bracket, or
// has anything but whitespace after it, is an error. Memory is bounded by
// max: a longer element is skipped, keeping only its start.
type elements struct {
	r        io.Reader
	buf      []byte
	pos, end int
	max      int    // longest element held whole
	prefix   []byte // the start of an element longer than max
	started  bool   // the first element has been read
	done     bool
	eof      bool
	readErr  error
}

var errTruncated = errors.New("body ends before the closing bracket of the array")

// The bytes where next must look closer: in a string, its end or an
// escape; inside an element, a string or a bracket; between elements (a
// scalar element), also a comma or whitespace. Every other byte is passed
// over in a tight loop: a byte-by-byte state machine was the largest
// single cost of a load.
var (
	stringStop = [256]bool{'"': true, '\\': true}
	nestedStop = [256]bool{'"': true, '{': true, '[': true, '}': true, ']': true}
	topStop    = [256]bool{'"': true, '{': true, '[': true, '}': true, ']': true, ',': true, ' ': true, '\t': true, '\n': true, '\r': true}
)

func newElements(r io.Reader, max int) *elements {
	return &elements{r: r, buf: make([]byte, min(64<<10, max+1)), max: max}
}

// fill reads more input, keeping bytes from keep onwards; it returns the
// shift applied to offsets at or after keep.
func (e *elements) fill(keep int) (int, error) {
	if e.eof {
		if e.readErr != nil {
			return 0, e.readErr
		}
		return 0, io.ErrUnexpectedEOF
	}
	shift := keep
	if keep > 0 {
		copy(e.buf, e.buf[keep:e.end])
		e.end -= keep
		e.pos -= keep
	}
	if e.end == len(e.buf) {
		nb := make([]byte, 2*len(e.buf))
		copy(nb, e.buf[:e.end])
		e.buf = nb
	}
	n, err := e.r.Read(e.buf[e.end:])
	e.end += n
	if err != nil {
		e.eof = true
		if !errors.Is(err, io.EOF) {
			e.readErr = err
		}
		if n == 0 {
			return shift, e.fillErr()
		}
	}
	return shift, nil
}

func (e *elements) fillErr() error {
	if e.readErr != nil {
		return e.readErr
	}
	return io.ErrUnexpectedEOF
}

// byteAt returns the byte at e.pos, reading more input when needed, keeping
// the bytes from keep.
func (e *elements) skipWS() error {
	for {
		for e.pos < e.end {
			switch e.buf[e.pos] {
			case ' ', '\t', '\n', '\r':
				e.pos++
			default:
				return nil
			}
		}
		if _, err := e.fill(e.pos); err != nil {
			return err
		}
	}
}

// next returns the next element, valid until the following call, or io.EOF
// after the closing bracket and the end of the body. The opening bracket
// must have been consumed. An element longer than max is returned as its
// first LongElementPrefix bytes with a *LongElement.
func (e *elements) next() ([]byte, error) {
	elem, _, err := e.scanNext(nil)
	return elem, err
}

// scanNext is next with a scanner of objects (see Day.NextScanned):
// scanned tells that scan measured the element returned.
func (e *elements) scanNext(scan func([]byte) int) (elem []byte, scanned bool, err error) {
	if e.done {
		return nil, false, io.EOF
	}
	if err := e.skipWS(); err != nil {
		return nil, false, e.wrap(err)
	}
	switch c := e.buf[e.pos]; {
	case c == ']':
		e.pos++
		e.done = true
		return nil, false, e.trailing()
	case e.started:
		if c != ',' {
			return nil, false, fmt.Errorf("expected ',' or ']' between array elements, found %q", c)
		}
		e.pos++
		if err := e.skipWS(); err != nil {
			return nil, false, e.wrap(err)
		}
	}
	e.started = true
	start := e.pos
	if scan != nil && e.buf[start] == '{' {
		// A valid object ends at the brace that closes it, exactly where
		// the loop below would end it; one over the line limit cannot
		// end within what scan is shown.
		if n := scan(e.buf[start:min(e.end, start+e.max)]); n > 0 {
			e.pos = start + n
			return e.buf[start:e.pos], true, nil
		}
	}
	i := e.pos
	depth := 0
	inString, escaped := false, false
	var skipped int64 // bytes of an over-long element already dropped
	for {
		for i < e.end {
			if inString {
				if escaped {
					escaped = false
					i++
					continue
				}
				// Strings are most of a line's bytes: pass their plain
				// characters in a tight loop.
				for i < e.end && !stringStop[e.buf[i]] {
					i++
				}
				if i == e.end {
					break
				}
				if e.buf[i] == '\\' {
					escaped = true
				} else {
					inString = false
				}
				i++
				continue
			}
			stop := &nestedStop
			if depth == 0 {
				stop = &topStop
			}
			for i < e.end && !stop[e.buf[i]] {
				i++
			}
			if i == e.end {
				break
			}
			switch e.buf[i] {
			case '"':
				inString = true
			case '{', '[':
				depth++
			case '}', ']':
				if depth == 0 { // the array's closing bracket ends a scalar
					goto found
				}
				depth--
				if depth == 0 {
					i++
					goto found
				}
			default: // a comma or whitespace after a scalar
				goto found
			}
			i++
		}
		if skipped == 0 && i-start > e.max {
			// Too long to hold: keep its start, drop the rest as it is scanned.
			e.keepPrefix(start)
		}
		if skipped > 0 || i-start > e.max {
			skipped += int64(i - start)
			start = i
		}
		shift, err := e.fill(start)
		if err != nil {
			return nil, false, e.wrap(err)
		}
		start -= shift
		i -= shift
	}
found:
	if i == start && skipped == 0 {
		return nil, false, fmt.Errorf("empty array element at byte %d", start)
	}
	e.pos = i
	if size := skipped + int64(i-start); skipped > 0 || size > int64(e.max) {
		if skipped == 0 {
			e.keepPrefix(start)
		}
		return e.prefix, false, &LongElement{Size: size, Limit: e.max, Kept: len(e.prefix)}
	}
	return e.buf[start:i], false, nil
}

// keepPrefix keeps the start of an over-long element beginning at start
// (at least e.max+1 bytes of it are in the buffer), cut between characters.
func (e *elements) keepPrefix(start int) {
	n := min(LongElementPrefix, e.max)
	for n > 0 && !utf8.RuneStart(e.buf[start+n]) {
		n--
	}
	e.prefix = append(e.prefix[:0], e.buf[start:start+n]...)
}

// trailing checks that nothing but whitespace follows the array: a second
// array or an HTML page after it means the body is not what the API
// sends, and ignoring the rest would lose or invent data.
func (e *elements) trailing() error {
	err := e.skipWS()
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return io.EOF
	case err != nil:
		return err
	}
	end := min(e.end, e.pos+64)
	return fmt.Errorf("unexpected data after the closing bracket of the array: %s", oneLine(e.buf[e.pos:end]))
}

func (e *elements) wrap(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errTruncated
	}
	return err
}
