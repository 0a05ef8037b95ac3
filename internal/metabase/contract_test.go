package metabase

import (
	"context"
	"strconv"
	"strings"
	"testing"
)

// Contract tests of what an administrator expects from a run, against the
// fake of Metabase 0.56's endpoints (fake_test.go names the handler each
// behaviour comes from).

func runSetup(t *testing.T, f *fakeMetabase, cfg *Config) {
	t.Helper()
	log, buf := testLogger(t)
	if err := Setup(context.Background(), cfg, log); err != nil {
		t.Fatalf("Setup: %v\n%s", err, buf)
	}
	assertNoSecrets(t, "the log", buf.String())
}

func (f *fakeMetabase) warehouse(t *testing.T) (int, map[string]any) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, db := range f.databases {
		if db["name"] == "Marketplace" {
			return id, db["details"].(map[string]any)
		}
	}
	t.Fatal("warehouse not registered")
	return 0, nil
}

func (f *fakeMetabase) ourCollection(t *testing.T) int {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, c := range f.collections {
		if desc, _ := c["description"].(string); markerOf(desc) == collectionKey {
			return id
		}
	}
	t.Fatal("collection not created")
	return 0
}

func (f *fakeMetabase) groupID(t *testing.T, name string) int {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, g := range f.groups {
		if g["name"] == name {
			return id
		}
	}
	return 0
}

func (f *fakeMetabase) count(req string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.requests {
		if r == req {
			n++
		}
	}
	return n
}

// Permissions (PUT /api/permissions/graph, PUT /api/collection/graph,
// POST /api/permissions/group): everyone may view the dashboards and use
// the query builder on the warehouse, only analysts may write SQL, and
// nothing else changes.
func TestContractPermissions(t *testing.T) {
	f, srv := newFakeMetabase(t, testSchema(t))
	f.addUser(testAdminEmail, testAdminPassword)
	// A group of the customer's own, with its own permissions.
	f.mu.Lock()
	f.groups[500] = map[string]any{"id": 500, "name": "Sales", "magic_group_type": nil}
	f.perms[500] = map[int]map[string]any{1: {"view-data": "unrestricted", "create-queries": "query-builder-and-native"}}
	f.collPerms[500] = map[string]string{"root": "read"}
	f.mu.Unlock()
	cfg := testConfig(t, srv.URL)
	runSetup(t, f, cfg)

	dbID, _ := f.warehouse(t)
	collID := f.ourCollection(t)
	analysts := f.groupID(t, "Analysts")
	if analysts == 0 {
		t.Fatal("no Analysts group created")
	}
	f.mu.Lock()
	checks := []struct {
		what      string
		got, want any
	}{
		{"All Users view-data", f.perms[fakeAllUsers][dbID]["view-data"], "unrestricted"},
		{"All Users create-queries (no SQL)", f.perms[fakeAllUsers][dbID]["create-queries"], "query-builder"},
		{"All Users download (left to Metabase)", jsonText(f.perms[fakeAllUsers][dbID]["download"]), `{"schemas":"full"}`},
		{"Analysts view-data", f.perms[analysts][dbID]["view-data"], "unrestricted"},
		{"Analysts create-queries", f.perms[analysts][dbID]["create-queries"], "query-builder-and-native"},
		{"Admins untouched", f.perms[fakeAdmins][dbID]["create-queries"], "query-builder-and-native"},
		{"Sales group on the sample database", jsonText(f.perms[500][1]), `{"create-queries":"query-builder-and-native","view-data":"unrestricted"}`},
		{"sample database untouched", f.perms[fakeAllUsers][1]["create-queries"], "query-builder-and-native"},
		{"All Users on the collection", f.collPerms[fakeAllUsers][strconv.Itoa(collID)], "read"},
		{"Analysts on the collection", f.collPerms[analysts][strconv.Itoa(collID)], "read"},
		{"All Users on the root", f.collPerms[fakeAllUsers]["root"], "write"},
		{"Admins on the collection", f.collPerms[fakeAdmins][strconv.Itoa(collID)], "write"},
		{"Sales on the root", f.collPerms[500]["root"], "read"},
	}
	for _, put := range append(append([]map[string]any{}, f.permsPuts...), f.collPermsPuts...) {
		if _, touched := put["groups"].(map[string]any)["500"]; touched {
			t.Errorf("a graph PUT touched the customer's group: %s", jsonText(put))
		}
	}
	puts, collPuts := len(f.permsPuts), len(f.collPermsPuts)
	firstPut := jsonText(f.permsPuts[0])
	f.mu.Unlock()
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
	if puts != 1 || collPuts != 1 {
		t.Errorf("%d data and %d collection graph PUTs, want one of each", puts, collPuts)
	}
	// Only the differences, with the revision read.
	want := `{"groups":{"1":{"` + strconv.Itoa(dbID) + `":{"create-queries":"query-builder"}},"` + strconv.Itoa(analysts) +
		`":{"` + strconv.Itoa(dbID) + `":{"create-queries":"query-builder-and-native"}}},"revision":0}`
	if firstPut != want {
		t.Errorf("data graph PUT\n got %s\nwant %s", firstPut, want)
	}

	// Second run: nothing to change, so no PUT (each would add a revision)
	// and no second group.
	runSetup(t, f, cfg)
	f.mu.Lock()
	if len(f.permsPuts) != puts || len(f.collPermsPuts) != collPuts || len(f.groups) != 4 {
		t.Errorf("second run: %d data PUTs, %d collection PUTs, %d groups", len(f.permsPuts)-puts, len(f.collPermsPuts)-collPuts, len(f.groups))
	}
	// A person gives everyone SQL again; someone else edits permissions
	// between our read and our write.
	f.perms[fakeAllUsers][dbID]["create-queries"] = "query-builder-and-native"
	f.permsRevision++
	f.conflictOnce = true
	f.mu.Unlock()
	runSetup(t, f, cfg)
	f.mu.Lock()
	defer f.mu.Unlock()
	if got := f.perms[fakeAllUsers][dbID]["create-queries"]; got != "query-builder" {
		t.Errorf("after a 409 and a re-plan: All Users create-queries %v", got)
	}
}

// SSL (POST and PUT /api/database): Metabase keeps SSL where it works, and a
// later run never turns it off or sends details that did not change.
func TestContractWarehouseSSL(t *testing.T) {
	f, srv := newFakeMetabase(t, testSchema(t))
	f.sslServer = "required" // hostssl only
	cfg := testConfig(t, srv.URL)
	runSetup(t, f, cfg)
	_, details := f.warehouse(t)
	if details["ssl"] != true {
		t.Fatalf("created with ssl %v, want Metabase's SSL-first to keep true", details["ssl"])
	}
	for i := 0; i < 2; i++ {
		runSetup(t, f, cfg) // with "ssl": false this run would fail: no pg_hba.conf entry … no encryption
	}
	f.mu.Lock()
	for _, put := range f.dbPuts {
		if got := jsonText(put); got != `{"details":{"password":"`+testWarehousePass+`"}}` {
			t.Errorf("PUT /api/database/:id with nothing changed sent %s, want the password only", strings.ReplaceAll(got, testWarehousePass, "xxxxx"))
		}
	}
	if details := f.databases[f.dbIDLocked("Marketplace")]["details"].(map[string]any); details["ssl"] != true {
		t.Errorf("ssl is %v after later runs", details["ssl"])
	}
	tests := f.connectionTests
	f.mu.Unlock()

	// A changed setting goes out alone (and is re-tested); asking for a
	// verified mode sends ssl and ssl-mode.
	cfg.WarehouseHost = "pg-replica.marketplace.svc"
	cfg.WarehouseSSLMode = "verify-full"
	runSetup(t, f, cfg)
	f.mu.Lock()
	defer f.mu.Unlock()
	last := jsonText(f.dbPuts[len(f.dbPuts)-1])
	if want := `{"details":{"host":"pg-replica.marketplace.svc","password":"` + testWarehousePass + `","ssl-mode":"verify-full"}}`; last != want {
		t.Errorf("PUT after a change\n got %s\nwant %s", strings.ReplaceAll(last, testWarehousePass, "xxxxx"), strings.ReplaceAll(want, testWarehousePass, "xxxxx"))
	}
	if f.connectionTests != tests+1 {
		t.Errorf("%d connection tests for the changed details, want 1", f.connectionTests-tests)
	}
}

func (f *fakeMetabase) dbIDLocked(name string) int {
	for id, db := range f.databases {
		if db["name"] == name {
			return id
		}
	}
	return 0
}

// Sync scope (schema-filters-type/-patterns in the database details): only
// marts is synced, so the raw schema is neither queryable in the query
// builder nor scanned.
func TestContractOnlyMartsSynced(t *testing.T) {
	f, srv := newFakeMetabase(t, testSchema(t))
	runSetup(t, f, testConfig(t, srv.URL))
	dbID, _ := f.warehouse(t)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, tb := range f.tablesJSON(dbID) {
		if schema := tb.(map[string]any)["schema"]; schema != "marts" {
			t.Errorf("Metabase syncs %v.%v", schema, tb.(map[string]any)["name"])
		}
	}
}

// Tabs (PUT /api/dashboard/:id with tabs and dashcards): a person's tab on a
// managed dashboard survives runs, with its cards; ours stay on the first.
func TestContractDashboardTabs(t *testing.T) {
	f, srv := newFakeMetabase(t, testSchema(t))
	cfg := testConfig(t, srv.URL)
	runSetup(t, f, cfg)
	dashID := f.managed("dashboard")["sales"]
	before := f.snapshot(t, dashcardIDs(f)[dashID])

	// What Metabase does when a person adds a tab: the cards go to "Tab 1",
	// the new tab gets their question and a text card.
	f.mu.Lock()
	f.tabs[dashID] = []map[string]any{{"id": 800, "name": "Tab 1", "position": 0}, {"id": 801, "name": "My analysis", "position": 1}}
	for _, dc := range f.dashcards[dashID] {
		dc["dashboard_tab_id"] = 800
	}
	f.dashcards[dashID][0]["row"] = 40 // and moved one of ours, so the run must PUT the layout
	f.cards[9001] = map[string]any{"id": 9001, "name": "My question", "description": nil, "display": "table", "archived": false, "collection_id": nil,
		"dataset_query": map[string]any{"type": "native", "database": 1, "native": map[string]any{"query": "select 1", "template-tags": map[string]any{}}}}
	f.dashcards[dashID] = append(f.dashcards[dashID],
		map[string]any{"id": 802, "card_id": 9001, "dashboard_tab_id": 801, "dashboard_id": dashID, "row": 0, "col": 0, "size_x": 12, "size_y": 6, "parameter_mappings": []any{}},
		map[string]any{"id": 803, "card_id": nil, "dashboard_tab_id": 801, "dashboard_id": dashID, "row": 6, "col": 0, "size_x": 12, "size_y": 2,
			"visualization_settings": map[string]any{"text": "What I found"}})
	f.mu.Unlock()

	for i := 0; i < 2; i++ {
		runSetup(t, f, cfg)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if got := jsonText(f.tabs[dashID]); !strings.Contains(got, `"id":800`) || !strings.Contains(got, `"name":"My analysis"`) || len(f.tabs[dashID]) != 2 {
		t.Errorf("tabs after the runs: %s", got)
	}
	var ours []int
	mine := map[int]bool{}
	for _, dc := range f.dashcards[dashID] {
		switch toInt(dc["dashboard_tab_id"]) {
		case 800:
			ours = append(ours, toInt(dc["id"]))
		case 801:
			mine[toInt(dc["id"])] = true
		default:
			t.Errorf("dashcard without a tab: %v", dc)
		}
	}
	if f.dashcards[dashID][0]["row"] == 40 {
		t.Errorf("the moved card was not put back")
	}
	if got := jsonText(ours); got != before {
		t.Errorf("our dashcards on the first tab %s, want the same ids as before %s", got, before)
	}
	if !mine[802] || !mine[803] || len(mine) != 2 {
		t.Errorf("the person's dashcards: %v", mine)
	}
}

// Failures (every dashboard attempted): one dashboard failing does not stop
// the others; the error names it and is not a usage error (exit 1).
func TestContractEveryDashboardAttempted(t *testing.T) {
	f, srv := newFakeMetabase(t, testSchema(t))
	f.failDashboard = "Clients"
	err := Setup(context.Background(), testConfig(t, srv.URL), nil)
	if err == nil || IsUsageError(err) || !strings.Contains(err.Error(), "dashboard clients") || !strings.Contains(err.Error(), "HTTP 500") {
		t.Fatalf("want an ordinary error naming dashboard clients, got %v", err)
	}
	defs, _ := Dashboards()
	dashes := f.managed("dashboard")
	for _, d := range defs {
		if _, ok := dashes[d.Key]; ok == (d.Key == "clients") {
			t.Errorf("dashboard %s: made %v", d.Key, ok)
		}
	}
	if f.logouts != 1 {
		t.Errorf("a failed run logged out %d times, want 1", f.logouts)
	}
}

// Usage data (GET /api/card/:id?ignore_view=true, dashboards read from
// their PUT, DELETE /api/session): runs record no views and leave no
// sessions behind.
func TestContractNoViewsNoSessions(t *testing.T) {
	f, srv := newFakeMetabase(t, testSchema(t))
	f.itemsWithoutDescription = true // forces reads of single cards and dashboards
	cfg := testConfig(t, srv.URL)
	for i := 0; i < 3; i++ {
		runSetup(t, f, cfg)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cardViews != 0 {
		t.Errorf("%d card views recorded", f.cardViews)
	}
	if f.logouts != 3 || len(f.sessions) != 0 {
		t.Errorf("%d logouts, %d sessions left", f.logouts, len(f.sessions))
	}
	// Without the item-list fallback no dashboard is read by GET at all.
	f.itemsWithoutDescription = false
	f.dashboardViews = 0
	f.mu.Unlock()
	runSetup(t, f, cfg)
	f.mu.Lock()
	if f.dashboardViews != 0 {
		t.Errorf("%d dashboard views recorded", f.dashboardViews)
	}
}

// Tracking (PUT /api/setting/anon-tracking-enabled): off after the first
// setup although /api/setup turns it on, written only when it differs.
func TestContractTracking(t *testing.T) {
	f, srv := newFakeMetabase(t, testSchema(t))
	cfg := testConfig(t, srv.URL)
	runSetup(t, f, cfg)
	if got := f.settings["anon-tracking-enabled"]; got != false {
		t.Errorf("anon-tracking-enabled is %v after setup, want false", got)
	}
	runSetup(t, f, cfg)
	if n := f.count("PUT /api/setting/anon-tracking-enabled"); n != 1 {
		t.Errorf("setting written %d times in two runs, want once", n)
	}
	cfg.AnonTracking = true
	runSetup(t, f, cfg)
	if got := f.settings["anon-tracking-enabled"]; got != true {
		t.Errorf("MB_ANON_TRACKING=true: setting is %v", got)
	}
}

// A setting Metabase's own environment forces is reported (exit 1) after
// everything else was applied.
func TestContractTrackingForcedByMetabaseEnv(t *testing.T) {
	f, srv := newFakeMetabase(t, testSchema(t))
	f.envSettings = map[string]bool{"anon-tracking-enabled": true}
	err := Setup(context.Background(), testConfig(t, srv.URL), nil)
	if err == nil || IsUsageError(err) || !strings.Contains(err.Error(), "anon-tracking-enabled to false (MB_ANON_TRACKING)") ||
		!strings.Contains(err.Error(), "environment variable") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("want one line naming the setting, got %v", err)
	}
	defs, _ := Dashboards()
	if got := len(f.managed("dashboard")); got != len(defs) {
		t.Errorf("%d dashboards applied, want all %d", got, len(defs))
	}
}
