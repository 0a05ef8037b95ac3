package marketplace

import (
	"errors"
	"fmt"
	"io"
)

// elements splits a JSON array read from r into its top-level elements
// without decoding them: the API sends flat objects, and decoding each one
// twice (once to split, once to read its fields) was the biggest cost of a
// load. Each element is returned verbatim; whether it is a valid purchase
// line is for the caller to decide. The array's own structure is checked:
// a body that ends before the closing bracket is an error.
type elements struct {
	r        io.Reader
	buf      []byte
	pos, end int
	started  bool // the first element has been read
	done     bool
	eof      bool
	readErr  error
}

var errTruncated = errors.New("body ends before the closing bracket of the array")

func newElements(r io.Reader) *elements {
	return &elements{r: r, buf: make([]byte, 64<<10)}
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
// after the closing bracket. The opening bracket must have been consumed.
func (e *elements) next() ([]byte, error) {
	if e.done {
		return nil, io.EOF
	}
	if err := e.skipWS(); err != nil {
		return nil, e.wrap(err)
	}
	switch c := e.buf[e.pos]; {
	case c == ']':
		e.pos++
		e.done = true
		return nil, io.EOF
	case e.started:
		if c != ',' {
			return nil, fmt.Errorf("expected ',' or ']' between array elements, found %q", c)
		}
		e.pos++
		if err := e.skipWS(); err != nil {
			return nil, e.wrap(err)
		}
	}
	e.started = true
	start := e.pos
	i := e.pos
	depth := 0
	inString, escaped := false, false
	for {
		for ; i < e.end; i++ {
			c := e.buf[i]
			if inString {
				switch {
				case escaped:
					escaped = false
				case c == '\\':
					escaped = true
				case c == '"':
					inString = false
				}
				continue
			}
			switch c {
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
			case ',':
				if depth == 0 {
					goto found
				}
			case ' ', '\t', '\n', '\r':
				if depth == 0 {
					goto found
				}
			}
		}
		shift, err := e.fill(start)
		if err != nil {
			return nil, e.wrap(err)
		}
		start -= shift
		i -= shift
	}
found:
	if i == start {
		return nil, fmt.Errorf("empty array element at byte %d", start)
	}
	e.pos = i
	return e.buf[start:i], nil
}

func (e *elements) wrap(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errTruncated
	}
	return err
}
