package metabase

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// client is the small part of Metabase's REST API that setup needs: JSON in,
// JSON out, the session id in the X-Metabase-Session header.
type client struct {
	base    string // without trailing slash
	http    *http.Client
	session string
	// secrets are scrubbed from every error message, in case Metabase echoes
	// part of a request body back.
	secrets []string
}

func newClient(baseURL string, secrets ...string) *client {
	var s []string
	for _, v := range secrets {
		if v != "" {
			s = append(s, v)
		}
	}
	return &client{
		base:    strings.TrimRight(baseURL, "/"),
		http:    &http.Client{Timeout: 2 * time.Minute},
		secrets: s,
	}
}

// APIError is a non-2xx answer from Metabase.
type APIError struct {
	Method, Path string
	Status       int
	Message      string // Metabase's error text, scrubbed and shortened
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.Path, e.Status, e.Message)
}

// do sends in (if not nil) as JSON and decodes a 2xx answer into out (if not
// nil). The request body never appears in errors: it may hold passwords.
func (c *client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding the body of %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("building %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.session != "" {
		req.Header.Set("X-Metabase-Session", c.session)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &APIError{Method: method, Path: path, Status: resp.StatusCode, Message: c.scrub(errorText(raw))}
	}
	if out == nil || len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

func (c *client) scrub(s string) string {
	for _, secret := range c.secrets {
		s = strings.ReplaceAll(s, secret, "xxxxx")
	}
	return s
}

// errorText extracts the human part of Metabase's error bodies, which come
// as plain text ("Unauthenticated"), {"message": "..."} or
// {"errors": {"field": "problem"}}.
func errorText(raw []byte) string {
	var body struct {
		Message string         `json:"message"`
		Errors  map[string]any `json:"errors"`
		Status  string         `json:"status"`
		Cause   string         `json:"cause"`
	}
	text := strings.TrimSpace(string(raw))
	if err := json.Unmarshal(raw, &body); err == nil {
		var parts []string
		if body.Message != "" {
			parts = append(parts, body.Message)
		}
		for k, v := range body.Errors {
			parts = append(parts, fmt.Sprintf("%s: %v", k, v))
		}
		if len(parts) == 0 && body.Cause != "" {
			parts = append(parts, body.Cause)
		}
		if len(parts) == 0 && body.Status != "" {
			parts = append(parts, "status "+body.Status)
		}
		if len(parts) > 0 {
			text = strings.Join(parts, "; ")
		}
	} else {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			text = s
		}
	}
	if len(text) > 300 {
		text = text[:300] + "…"
	}
	if text == "" {
		text = "(empty body)"
	}
	return text
}

// ID is a Metabase object id: a JSON number, or a string of digits where
// Metabase writes ids as object keys (permission graphs). Anything else is an
// error, not a silent 0: a list that mixes in non-numeric ids (the "root"
// collection) is decoded through rawID instead.
type ID int

func (id *ID) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		return nil // encoding/json's convention: null leaves the value alone
	}
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("Metabase id %s: expected an integer", b)
	}
	*id = ID(n)
	return nil
}

// rawID is an id that may be numeric or a name such as "root".
type rawID json.RawMessage

func (r *rawID) UnmarshalJSON(b []byte) error {
	*r = append((*r)[:0], b...)
	return nil
}

// numeric returns the id when it is a number.
func (r rawID) numeric() (ID, bool) {
	var id ID
	if len(r) == 0 || r[0] == '"' || id.UnmarshalJSON(r) != nil {
		return 0, false
	}
	return id, true
}

// getList GETs a list, bare or in the {"data": [...]} envelope.
func getList[T any](ctx context.Context, c *client, path string) ([]T, error) {
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodGet, path, nil, &raw); err != nil {
		return nil, err
	}
	list, err := listOf[T](raw)
	if err != nil {
		return nil, fmt.Errorf("GET %s: decoding the list: %w", path, err)
	}
	return list, nil
}

// listOf decodes either a bare JSON array or the {"data": [...]} envelope
// newer Metabase versions wrap lists in.
func listOf[T any](raw json.RawMessage) ([]T, error) {
	raw = bytes.TrimSpace(raw)
	var out []T
	if len(raw) > 0 && raw[0] == '[' {
		err := json.Unmarshal(raw, &out)
		return out, err
	}
	var env struct {
		Data []T `json:"data"`
	}
	err := json.Unmarshal(raw, &env)
	return env.Data, err
}
