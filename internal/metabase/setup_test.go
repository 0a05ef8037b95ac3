package metabase

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	testAdminEmail    = "admin@marketplace.example"
	testAdminPassword = "s3cret-Admin-pass"
	testWarehousePass = "s3cret-Readonly-pass"
)

// testSchema is what the fake's sync "finds": every column a date filter
// needs, plus tables that have nothing to do with the dashboards.
func testSchema(t *testing.T) []fakeTable {
	t.Helper()
	ds, err := Dashboards()
	if err != nil {
		t.Fatal(err)
	}
	cols := map[[2]string][]string{}
	var order [][2]string
	for _, d := range ds {
		for _, c := range d.Cards {
			if dt := c.DateTag; dt != nil {
				k := [2]string{dt.Schema, dt.Table}
				if _, ok := cols[k]; !ok {
					order = append(order, k)
					cols[k] = []string{"id_unused"}
				}
				if !contains(cols[k], dt.Column) {
					cols[k] = append(cols[k], dt.Column)
				}
			}
		}
	}
	out := []fakeTable{{schema: "marketplace", name: "purchases", columns: []string{"purchase_date", "day", "client_id"}}}
	for _, k := range order {
		out = append(out, fakeTable{schema: k[0], name: k[1], columns: cols[k]})
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func testConfig(t *testing.T, url string) *Config {
	t.Helper()
	cfg, err := LoadConfig(map[string]string{
		"MB_URL":                url,
		"MB_ADMIN_EMAIL":        testAdminEmail,
		"MB_ADMIN_PASSWORD":     testAdminPassword,
		"MB_WAREHOUSE_HOST":     "postgres.marketplace.svc",
		"MB_WAREHOUSE_DB":       "marketplace",
		"MB_WAREHOUSE_USER":     "marketplace_readonly",
		"MB_WAREHOUSE_PASSWORD": testWarehousePass,
		"MB_SETUP_TIMEOUT":      "5s",
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg.pollInterval = 5 * time.Millisecond
	return cfg
}

// testLogger collects the log, to check that no password ever reaches it.
func testLogger(t *testing.T) (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

func assertNoSecrets(t *testing.T, where, text string) {
	t.Helper()
	for _, s := range []string{testAdminPassword, testWarehousePass} {
		if strings.Contains(text, s) {
			t.Errorf("%s contains a password: %s", where, text)
		}
	}
}

// managed returns our objects by key: key -> id, for cards and dashboards
// that are not archived.
func (f *fakeMetabase) managed(model string) map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	objs := f.cards
	if model == "dashboard" {
		objs = f.dashboards
	}
	out := map[string]int{}
	for id, o := range objs {
		desc, _ := o["description"].(string)
		if key := markerOf(desc); key != "" && o["archived"] != true {
			if prev, dup := out[key]; dup {
				panic("duplicate " + model + " " + key + ": " + string(rune(prev)))
			}
			out[key] = id
		}
	}
	return out
}

func (f *fakeMetabase) snapshot(t *testing.T, v any) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSetupFreshMetabase(t *testing.T) {
	f, srv := newFakeMetabase(t, testSchema(t))
	f.unhealthyFor = 3 // still migrating its application database
	f.syncPolls = 2    // the schema sync takes a moment
	cfg := testConfig(t, srv.URL)
	log, logBuf := testLogger(t)

	if err := Setup(context.Background(), cfg, log); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	assertNoSecrets(t, "the log", logBuf.String())

	if f.healthCalls != 4 {
		t.Errorf("health was polled %d times, want 4 (3 × 503, then ok)", f.healthCalls)
	}
	if got := f.users[testAdminEmail]; got != testAdminPassword {
		t.Errorf("first-time setup did not create the admin from the config")
	}
	if contains(f.requests, "POST /api/session") {
		t.Errorf("a fresh Metabase needs /api/setup, not a login: %v", f.requests)
	}

	// The warehouse: the read-only role, a sync started.
	var wh map[string]any
	for id, db := range f.databases {
		if db["name"] == "Marketplace" {
			wh = db
			if _, ok := f.synced[id]; !ok {
				t.Errorf("no sync_schema for the warehouse")
			}
		}
	}
	if wh == nil {
		t.Fatalf("warehouse not registered; databases: %v", f.databases)
	}
	det := wh["details"].(map[string]any)
	if wh["engine"] != "postgres" || det["host"] != "postgres.marketplace.svc" || toInt(det["port"]) != 5432 ||
		det["dbname"] != "marketplace" || det["user"] != "marketplace_readonly" || det["password"] != testWarehousePass || det["ssl"] != nil ||
		det["schema-filters-type"] != "inclusion" || det["schema-filters-patterns"] != "marts" {
		t.Errorf("warehouse registered as %v", wh)
	}

	// One collection of ours, holding every dashboard and card.
	var collID int
	for id, c := range f.collections {
		if desc, _ := c["description"].(string); markerOf(desc) == collectionKey {
			if collID != 0 {
				t.Errorf("two collections of ours")
			}
			collID = id
			if c["name"] != "Marketplace analytics" {
				t.Errorf("collection named %v", c["name"])
			}
		}
	}
	if collID == 0 {
		t.Fatal("collection not created")
	}

	defs, _ := Dashboards()
	cards, dashes := f.managed("card"), f.managed("dashboard")
	totalCards := 0
	for _, d := range defs {
		totalCards += len(d.Cards)
	}
	if len(cards) != totalCards || len(dashes) != len(defs) {
		t.Fatalf("made %d cards and %d dashboards, want %d and %d", len(cards), len(dashes), totalCards, len(defs))
	}
	for _, d := range defs {
		dashID := dashes[d.Key]
		dash := f.dashboards[dashID]
		if dash["name"] != d.Name || toInt(dash["collection_id"]) != collID {
			t.Errorf("dashboard %s: %v", d.Key, dash)
		}
		params, _ := dash["parameters"].([]any)
		if (d.DateFilter != "") != (len(params) == 1) {
			t.Errorf("dashboard %s: parameters %v", d.Key, params)
		}
		if len(params) == 1 {
			if p := params[0].(map[string]any); p["type"] != "date/all-options" || p["name"] != d.DateFilter {
				t.Errorf("dashboard %s: date filter %v", d.Key, p)
			}
		}
		dcs := f.dashcards[dashID]
		if len(dcs) != len(d.Cards) {
			t.Errorf("dashboard %s has %d dashcards, want %d", d.Key, len(dcs), len(d.Cards))
			continue
		}
		for i, c := range d.Cards {
			dc := dcs[i]
			card := f.cards[cards[c.Key]]
			if toInt(dc["card_id"]) != cards[c.Key] || toInt(dc["col"]) != c.Position.Col || toInt(dc["row"]) != c.Position.Row ||
				toInt(dc["size_x"]) != c.Position.Width || toInt(dc["size_y"]) != c.Position.Height {
				t.Errorf("dashcard of %s: %v", c.Key, dc)
			}
			if toInt(card["collection_id"]) != collID || card["name"] != c.Name || card["display"] != c.Display {
				t.Errorf("card %s: %v", c.Key, card)
			}
			native := card["dataset_query"].(map[string]any)["native"].(map[string]any)
			if native["query"] != strings.TrimSpace(c.SQL) {
				t.Errorf("card %s: query %q", c.Key, native["query"])
			}
			mappings, _ := dc["parameter_mappings"].([]any)
			if c.DateTag == nil {
				if len(mappings) != 0 {
					t.Errorf("card %s has no date tag but mappings %v", c.Key, mappings)
				}
				continue
			}
			if len(mappings) != 1 {
				t.Errorf("card %s: want the date filter wired, got %v", c.Key, mappings)
				continue
			}
			// The tag is a field filter on the column the definition names.
			tag := native["template-tags"].(map[string]any)[c.DateTag.Tag].(map[string]any)
			fieldID := toInt(tag["dimension"].([]any)[1])
			if got := f.fieldName(t, fieldID); got != c.DateTag.Schema+"."+c.DateTag.Table+"."+c.DateTag.Column {
				t.Errorf("card %s: field filter on %s", c.Key, got)
			}
		}
	}
}

func (f *fakeMetabase) fieldName(t *testing.T, fieldID int) string {
	for id := range f.databases {
		for _, tb := range f.tablesJSON(id) {
			tm := tb.(map[string]any)
			for _, fl := range tm["fields"].([]any) {
				fm := fl.(map[string]any)
				if fm["id"] == fieldID {
					return tm["schema"].(string) + "." + tm["name"].(string) + "." + fm["name"].(string)
				}
			}
		}
	}
	return "(none)"
}

func TestSetupSecondRunUpdatesInPlace(t *testing.T) {
	f, srv := newFakeMetabase(t, testSchema(t))
	cfg := testConfig(t, srv.URL)
	ctx := context.Background()
	if err := Setup(ctx, cfg, nil); err != nil {
		t.Fatalf("first run: %v", err)
	}
	cards1, dashes1 := f.managed("card"), f.managed("dashboard")
	dashcards1 := f.snapshot(t, dashcardIDs(f))
	dbCount := len(f.databases)
	collCount := len(f.collections)

	// Between the runs: a person makes their own card in our collection and
	// their own dashboard at the root, and renames one of our cards.
	var collID int
	for id, c := range f.collections {
		if desc, _ := c["description"].(string); markerOf(desc) == collectionKey {
			collID = id
		}
	}
	f.mu.Lock()
	userCard := map[string]any{"id": 9001, "name": "My revenue question", "description": "mine", "display": "table", "collection_id": collID, "archived": false,
		"dataset_query": map[string]any{"type": "native", "database": 1, "native": map[string]any{"query": "select 1", "template-tags": map[string]any{}}}}
	userDash := map[string]any{"id": 9002, "name": "My dashboard", "description": nil, "collection_id": nil, "archived": false, "parameters": []any{}}
	f.cards[9001] = userCard
	f.dashboards[9002] = userDash
	f.dashcards[9002] = []map[string]any{{"id": 9003, "card_id": 9001, "dashboard_id": 9002, "row": 0, "col": 0, "size_x": 4, "size_y": 4}}
	f.cards[cards1["sales.revenue_kpi"]]["name"] = "Renamed by hand"
	// A card of ours whose definition was since removed from the repo.
	f.cards[9004] = map[string]any{"id": 9004, "name": "Old card", "description": "gone\n\n" + marker("sales.old_card"), "display": "table", "collection_id": collID, "archived": false}
	f.mu.Unlock()
	userBefore := f.snapshot(t, []any{f.cards[9001], f.dashboards[9002], f.dashcards[9002]})

	log, logBuf := testLogger(t)
	if err := Setup(ctx, cfg, log); err != nil {
		t.Fatalf("second run: %v", err)
	}
	assertNoSecrets(t, "the log", logBuf.String())
	if !contains(f.requests, "POST /api/session") {
		t.Errorf("second run should log in")
	}
	cards2, dashes2 := f.managed("card"), f.managed("dashboard")
	if !reflect.DeepEqual(cards1, cards2) || !reflect.DeepEqual(dashes1, dashes2) {
		t.Errorf("ids changed:\ncards %v\n   -> %v\ndashboards %v\n   -> %v", cards1, cards2, dashes1, dashes2)
	}
	if got := f.snapshot(t, dashcardIDs(f)); got != dashcards1 {
		t.Errorf("dashcard ids changed:\n%s\n%s", dashcards1, got)
	}
	if len(f.databases) != dbCount || len(f.collections) != collCount {
		t.Errorf("databases %d -> %d, collections %d -> %d", dbCount, len(f.databases), collCount, len(f.collections))
	}
	if got := f.cards[cards2["sales.revenue_kpi"]]["name"]; got != "Revenue" {
		t.Errorf("hand-renamed card of ours is %q, want it restored to Revenue", got)
	}
	if f.cards[9004]["archived"] != true {
		t.Errorf("card of a removed definition not archived")
	}
	if after := f.snapshot(t, []any{f.cards[9001], f.dashboards[9002], f.dashcards[9002]}); after != userBefore {
		t.Errorf("user-made objects changed:\n%s\n%s", userBefore, after)
	}

	// Ten runs, one of everything.
	for i := 0; i < 8; i++ {
		if err := Setup(ctx, cfg, nil); err != nil {
			t.Fatal(err)
		}
	}
	if c, d := f.managed("card"), f.managed("dashboard"); !reflect.DeepEqual(c, cards1) || !reflect.DeepEqual(d, dashes1) {
		t.Errorf("after ten runs: %d cards, %d dashboards", len(c), len(d))
	}
}

func TestSetupItemsWithoutDescriptions(t *testing.T) {
	f, srv := newFakeMetabase(t, testSchema(t))
	f.itemsWithoutDescription = true
	cfg := testConfig(t, srv.URL)
	for i := 0; i < 3; i++ {
		if err := Setup(context.Background(), cfg, nil); err != nil {
			t.Fatal(err)
		}
	}
	defs, _ := Dashboards()
	n := 0
	for _, d := range defs {
		n += len(d.Cards)
	}
	if c, d := f.managed("card"), f.managed("dashboard"); len(c) != n || len(d) != len(defs) {
		t.Errorf("after three runs: %d cards, %d dashboards; want %d and %d", len(c), len(d), n, len(defs))
	}
}

func dashcardIDs(f *fakeMetabase) map[int][]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[int][]int{}
	for d, dcs := range f.dashcards {
		if d >= 9000 { // made by a "person" in the test
			continue
		}
		for _, dc := range dcs {
			out[d] = append(out[d], toInt(dc["id"]))
		}
	}
	return out
}

func TestSetupWaitsUntilDeadline(t *testing.T) {
	f, srv := newFakeMetabase(t, testSchema(t))
	f.unhealthyFor = -1
	cfg := testConfig(t, srv.URL)
	cfg.SetupTimeout = 200 * time.Millisecond
	start := time.Now()
	err := Setup(context.Background(), cfg, nil)
	if err == nil || IsUsageError(err) || !strings.Contains(err.Error(), "not ready") {
		t.Fatalf("want an ordinary not-ready error, got %v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("gave up after %s, want about 200ms", el)
	}
	if f.healthCalls < 5 {
		t.Errorf("health polled only %d times", f.healthCalls)
	}
	t.Log(err)
}

func TestSetupUnreachableMetabase(t *testing.T) {
	cfg := testConfig(t, "http://127.0.0.1:1")
	cfg.SetupTimeout = 100 * time.Millisecond
	err := Setup(context.Background(), cfg, nil)
	if err == nil || IsUsageError(err) {
		t.Fatalf("want an ordinary error, got %v", err)
	}
}

func TestSetupWrongAdminPassword(t *testing.T) {
	f, srv := newFakeMetabase(t, testSchema(t))
	f.addUser(testAdminEmail, "the-real-password")
	cfg := testConfig(t, srv.URL)
	err := Setup(context.Background(), cfg, nil)
	if !IsUsageError(err) {
		t.Fatalf("want a usage error, got %v", err)
	}
	for _, want := range []string{"MB_ADMIN_EMAIL", "MB_ADMIN_PASSWORD", "did not match stored password"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	assertNoSecrets(t, "the error", err.Error())
	if strings.Contains(err.Error(), "the-real-password") {
		t.Errorf("error leaks a password: %v", err)
	}
	if len(f.cards) != 0 || len(f.dashboards) != 0 {
		t.Errorf("made objects without a session")
	}
}

func TestSetupRejectedByFirstTimeSetup(t *testing.T) {
	_, srv := newFakeMetabase(t, testSchema(t))
	cfg := testConfig(t, srv.URL)
	cfg.AdminPassword = "password" // Metabase: "password is too common."
	err := Setup(context.Background(), cfg, nil)
	if !IsUsageError(err) || !strings.Contains(err.Error(), "too common") {
		t.Fatalf("want a usage error about the password, got %v", err)
	}
}

func TestSetupSyncNeverFindsMarts(t *testing.T) {
	f, srv := newFakeMetabase(t, []fakeTable{{schema: "public", name: "other", columns: []string{"x"}}})
	_ = f
	cfg := testConfig(t, srv.URL)
	cfg.SetupTimeout = 300 * time.Millisecond
	err := Setup(context.Background(), cfg, nil)
	if err == nil || IsUsageError(err) || !strings.Contains(err.Error(), "marts.daily_sales.day") {
		t.Fatalf("want an error naming the missing columns, got %v", err)
	}
}

// TestErrorsScrubSecrets: even if Metabase echoed a request back in an
// error, no password reaches the error message.
func TestErrorsScrubSecrets(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": "bad request: " + string(body)})
	}))
	defer srv.Close()
	c := newClient(srv.URL, testAdminPassword, testWarehousePass)
	err := c.do(context.Background(), http.MethodPost, "/api/database", map[string]any{"details": map[string]any{"password": testWarehousePass}}, nil)
	if err == nil {
		t.Fatal("no error")
	}
	assertNoSecrets(t, "the error", err.Error())
	if !strings.Contains(err.Error(), "xxxxx") || !strings.Contains(err.Error(), "HTTP 400") {
		t.Errorf("error %q", err)
	}
}
