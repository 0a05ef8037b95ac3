package marketplace

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func split(t testing.TB, body string, oneByte bool) ([]string, error) {
	var r io.Reader = strings.NewReader(strings.TrimLeft(body, " \t\r\n")[1:]) // Open consumes '['
	if oneByte {
		r = iotest.OneByteReader(r)
	}
	e := newElements(r)
	e.buf = make([]byte, 4) // force refills and growth mid-element
	var out []string
	for {
		el, err := e.next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, string(el))
	}
}

func TestElementsSplitsLikeEncodingJSON(t *testing.T) {
	for _, body := range []string{
		`[]`, ` [ ] `, `[{"a":1}]`, `[{"a":"x,]}"} , {"b":[1,{"c":"\"]"}]},null,17,"s",true]`,
		"[\n{\"a\": 1},\n{\"a\": 2}\n]",
	} {
		got, err := split(t, body, true)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		want := reference(t, body)
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("%s: got %q, want %q", body, got, want)
		}
	}
}

func TestElementsTruncated(t *testing.T) {
	for _, body := range []string{`[`, `[{"a":1}`, `[{"a":1},`, `[{"a":"x`, `[{"a":{"b":1}`} {
		if _, err := split(t, body, false); !errors.Is(err, errTruncated) {
			t.Errorf("%s: got %v, want errTruncated", body, err)
		}
	}
	if _, err := split(t, `[{"a":1} {"b":2}]`, false); err == nil {
		t.Error("missing comma accepted")
	}
}

func reference(t testing.TB, body string) []string {
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
		out = append(out, string(bytes.TrimSpace(raw)))
	}
	return out
}

// FuzzElements: on any valid JSON array the splitter yields exactly the
// elements encoding/json finds, and it never panics on anything else.
func FuzzElements(f *testing.F) {
	f.Add(`[{"client_id": 1, "gender": "M"}, {"x": "]"}]`)
	f.Add(`[1, "a\"b", [2, {}], null]`)
	f.Add(`[{"a":`)
	f.Fuzz(func(t *testing.T, body string) {
		trimmed := strings.TrimLeft(body, " \t\r\n")
		if !strings.HasPrefix(trimmed, "[") {
			return
		}
		got, err := split(t, body, false)
		if !json.Valid([]byte(body)) {
			return
		}
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		if want := reference(t, body); strings.Join(got, "\x00") != strings.Join(want, "\x00") {
			t.Fatalf("%q: got %q, want %q", body, got, want)
		}
	})
}
