package metabase

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The typed API calls on their own: method, path, query, session header and
// body as Metabase 0.56's handlers take them.

type recorded struct{ method, uri, session, body string }

func recordingClient(t *testing.T, answer string) (*client, *[]recorded) {
	t.Helper()
	var got []recorded
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, recorded{r.Method, r.URL.RequestURI(), r.Header.Get("X-Metabase-Session"), string(b)})
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	c := newClient(srv.URL)
	c.session = "sess-1"
	return c, &got
}

func TestAPICalls(t *testing.T) {
	ctx := context.Background()
	off := false
	cases := []struct {
		name   string
		answer string
		call   func(c *client) error
		want   recorded
	}{
		{"logout", ``, func(c *client) error { return c.logout(ctx) },
			recorded{"DELETE", "/api/session", "sess-1", ""}},
		{"tracking", ``, func(c *client) error { return c.setSetting(ctx, anonTrackingSetting, false) },
			recorded{"PUT", "/api/setting/anon-tracking-enabled", "sess-1", `{"value":false}`}},
		{"card read without a view", `{"description": "d"}`, func(c *client) error { _, err := c.description(ctx, "card", 7); return err },
			recorded{"GET", "/api/card/7?ignore_view=true", "sess-1", ""}},
		{"data graph", `{"revision": 4}`, func(c *client) error {
			return c.putDataGraph(ctx, dataGraphUpdate{Revision: 3, Groups: map[ID]map[ID]map[string]string{1: {5: {createQueries: queryBuilder}}}})
		}, recorded{"PUT", "/api/permissions/graph?skip-graph=true", "sess-1", `{"revision":3,"groups":{"1":{"5":{"create-queries":"query-builder"}}}}`}},
		{"collection graph", `{"revision": 9}`, func(c *client) error {
			return c.putCollectionGraph(ctx, collectionGraph{Revision: 8, Groups: map[ID]map[string]string{1: {"40": collectionRead}}})
		}, recorded{"PUT", "/api/collection/graph?skip_graph=true", "sess-1", `{"revision":8,"groups":{"1":{"40":"read"}}}`}},
		{"group", `{"id": 12, "name": "Analysts"}`, func(c *client) error { _, err := c.createGroup(ctx, "Analysts"); return err },
			recorded{"POST", "/api/permissions/group", "sess-1", `{"name":"Analysts"}`}},
		{"database update", `{}`, func(c *client) error {
			return c.updateDatabase(ctx, 5, databaseUpdate{Details: postgresDetails{Host: "pg", Password: "pw"}})
		}, recorded{"PUT", "/api/database/5", "sess-1", `{"details":{"host":"pg","password":"pw"}}`}},
		{"collection", `{}`, func(c *client) error {
			return c.updateCollection(ctx, 40, collectionRequest{Name: "n", Description: "d", Archived: &off})
		}, recorded{"PUT", "/api/collection/40", "sess-1", `{"name":"n","description":"d","archived":false}`}},
	}
	for _, tc := range cases {
		c, got := recordingClient(t, tc.answer)
		if err := tc.call(c); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if len(*got) != 1 || (*got)[0] != tc.want {
			t.Errorf("%s: sent %+v, want %+v", tc.name, *got, tc.want)
		}
	}
}

// A POST whose answer holds no id is an error, not object 0.
func TestAPICreateNeedsAnID(t *testing.T) {
	c, _ := recordingClient(t, `{"name": "x"}`)
	if _, err := c.createCard(context.Background(), cardRequest{}); err == nil {
		t.Error("no error for an answer without an id")
	}
	c, _ = recordingClient(t, `{"id": "root"}`)
	if _, err := c.createCollection(context.Background(), collectionRequest{}); err == nil {
		t.Error("no error for a non-numeric id")
	}
}
