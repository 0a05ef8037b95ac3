package metabase

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// The plan step on its own: desired and current state in, requests out.

func planConfig(t *testing.T, env map[string]string) *Config {
	t.Helper()
	e := baseEnv()
	for k, v := range env {
		e[k] = v
	}
	cfg, err := LoadConfig(e)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func boolPtr(b bool) *bool { return &b }

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPlanDatabaseCreate(t *testing.T) {
	got := asJSON(t, planDatabaseCreate(planConfig(t, nil)))
	want := `{"name":"Marketplace","engine":"postgres","details":{"host":"postgres","port":5432,"dbname":"marketplace","user":"marketplace_readonly","password":"Readonly-pass-1","schema-filters-type":"inclusion","schema-filters-patterns":"marts","tunnel-enabled":false},"is_full_sync":true,"is_on_demand":false,"auto_run_queries":true}`
	if got != want {
		t.Errorf("create body\n got %s\nwant %s (no ssl key: Metabase tries SSL first)", got, want)
	}
	got = asJSON(t, planDatabaseCreate(planConfig(t, map[string]string{"MB_WAREHOUSE_SSLMODE": "verify-full"})).Details)
	if !strings.Contains(got, `"ssl":true,"ssl-mode":"verify-full"`) {
		t.Errorf("create details with MB_WAREHOUSE_SSLMODE: %s", got)
	}
}

func TestPlanDatabaseUpdate(t *testing.T) {
	stored := postgresDetails{
		Host: "postgres", Port: 5432, DBName: "marketplace", User: "marketplace_readonly", Password: "**MetabasePass**",
		SSL: boolPtr(true), SchemaFiltersType: "inclusion", SchemaFiltersPatterns: "marts",
	}
	cases := []struct {
		name    string
		env     map[string]string
		current postgresDetails
		body    string
		changed []string
	}{
		{
			name: "unchanged: the password only, ssl as Metabase chose it", current: stored,
			body: `{"details":{"password":"Readonly-pass-1"}}`,
		},
		{
			name: "a new host", env: map[string]string{"MB_WAREHOUSE_HOST": "pg.example"}, current: stored,
			body: `{"details":{"host":"pg.example","password":"Readonly-pass-1"}}`, changed: []string{"host"},
		},
		{
			name: "registered before schema filters", current: postgresDetails{Host: "postgres", Port: 5432, DBName: "marketplace", User: "marketplace_readonly", SSL: boolPtr(false)},
			body:    `{"details":{"password":"Readonly-pass-1","schema-filters-type":"inclusion","schema-filters-patterns":"marts"}}`,
			changed: []string{"schema-filters-type", "schema-filters-patterns"},
		},
		{
			name: "SSL asked for where it was off", env: map[string]string{"MB_WAREHOUSE_SSLMODE": "require"},
			current: postgresDetails{Host: "postgres", Port: 5432, DBName: "marketplace", User: "marketplace_readonly", SSL: boolPtr(false), SchemaFiltersType: "inclusion", SchemaFiltersPatterns: "marts"},
			body:    `{"details":{"password":"Readonly-pass-1","ssl":true,"ssl-mode":"require"}}`, changed: []string{"ssl", "ssl-mode"},
		},
		{
			name: "SSL turned off only when asked", env: map[string]string{"MB_WAREHOUSE_SSL": "false"}, current: stored,
			body: `{"details":{"password":"Readonly-pass-1","ssl":false}}`, changed: []string{"ssl"},
		},
	}
	for _, c := range cases {
		req, changed := planDatabaseUpdate(planConfig(t, c.env), c.current)
		if got := asJSON(t, req); got != c.body || !reflect.DeepEqual(changed, c.changed) {
			t.Errorf("%s:\n got %s %v\nwant %s %v", c.name, got, changed, c.body, c.changed)
		}
	}
}

// The admin UI may store the port as a string; a bad one is an error, not 0.
func TestDetailsPort(t *testing.T) {
	var d postgresDetails
	must(t, json.Unmarshal([]byte(`{"host": "pg", "port": "5433", "ssl": true}`), &d))
	if d.Port != 5433 || d.Host != "pg" || d.SSL == nil || !*d.SSL {
		t.Errorf("decoded %+v", d)
	}
	if err := json.Unmarshal([]byte(`{"port": "pg"}`), &d); err == nil {
		t.Error("a non-numeric port decoded without an error")
	}
}

func TestFindGroups(t *testing.T) {
	groups := []group{
		{ID: 1, Name: "All Users", MagicGroupType: "all-internal-users"},
		{ID: 2, Name: "Administrators", MagicGroupType: "admin"},
		{ID: 7, Name: "Analysts"},
		{ID: 9, Name: "Sales"},
	}
	if g := findGroups(groups, "Analysts"); g != (groupIDs{allUsers: 1, analysts: 7}) {
		t.Errorf("got %+v", g)
	}
	// Before magic_group_type: All Users by name.
	if g := findGroups([]group{{ID: 1, Name: "All Users"}, {ID: 2, Name: "Administrators"}}, "Analysts"); g != (groupIDs{allUsers: 1}) {
		t.Errorf("got %+v", g)
	}
	// With tenants the magic group is renamed; the type still finds it.
	if g := findGroups([]group{{ID: 1, Name: "All internal users", MagicGroupType: "all-internal-users"}, {ID: 3, Name: "All Users"}}, "x"); g.allUsers != 1 {
		t.Errorf("got %+v", g)
	}
}

func TestPlanDataPermissions(t *testing.T) {
	g := groupIDs{allUsers: 1, analysts: 7}
	var fresh dataGraph
	// What 0.56 gives a new database and a new group.
	must(t, json.Unmarshal([]byte(`{"revision": 12, "groups": {
		"1": {"5": {"view-data": "unrestricted", "create-queries": "query-builder-and-native", "download": {"schemas": "full"}}},
		"2": {"5": {"view-data": "unrestricted", "create-queries": "query-builder-and-native"}},
		"7": {"5": {"view-data": "unrestricted", "create-queries": "no"}},
		"9": {"5": {"view-data": "unrestricted", "create-queries": "no"}}}}`), &fresh))
	upd := planDataPermissions(fresh, 5, g)
	want := `{"revision":12,"groups":{"1":{"5":{"create-queries":"query-builder"}},"7":{"5":{"create-queries":"query-builder-and-native"}}}}`
	if got := asJSON(t, upd); got != want {
		t.Errorf("plan on a fresh graph\n got %s\nwant %s", got, want)
	}

	var done dataGraph
	must(t, json.Unmarshal([]byte(`{"revision": 13, "groups": {
		"1": {"5": {"view-data": "unrestricted", "create-queries": "query-builder", "download": {"schemas": "full"}}},
		"7": {"5": {"view-data": "unrestricted", "create-queries": "query-builder-and-native"}}}}`), &done))
	if upd := planDataPermissions(done, 5, g); upd != nil {
		t.Errorf("nothing to do, got %s", asJSON(t, upd))
	}

	// Granted per schema by a person, or missing: back to the default.
	var granular dataGraph
	must(t, json.Unmarshal([]byte(`{"revision": 3, "groups": {
		"1": {"5": {"view-data": {"marts": "unrestricted"}, "create-queries": {"marts": "query-builder"}}}}}`), &granular))
	want = `{"revision":3,"groups":{"1":{"5":{"create-queries":"query-builder","view-data":"unrestricted"}},"7":{"5":{"create-queries":"query-builder-and-native","view-data":"unrestricted"}}}}`
	if got := asJSON(t, planDataPermissions(granular, 5, g)); got != want {
		t.Errorf("plan on a granular graph\n got %s\nwant %s", got, want)
	}
}

func TestPlanCollectionPermissions(t *testing.T) {
	g := groupIDs{allUsers: 1, analysts: 7}
	var inherited collectionGraph
	must(t, json.Unmarshal([]byte(`{"revision": 4, "groups": {
		"1": {"root": "write", "40": "write", "41": "write"},
		"2": {"root": "write", "40": "write"},
		"7": {"root": "none", "40": "none"}}}`), &inherited))
	want := `{"revision":4,"groups":{"1":{"40":"read"},"7":{"40":"read"}}}`
	if got := asJSON(t, planCollectionPermissions(inherited, 40, g)); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	var done collectionGraph
	must(t, json.Unmarshal([]byte(`{"revision": 5, "groups": {"1": {"root": "write", "40": "read"}, "7": {"40": "read"}}}`), &done))
	if upd := planCollectionPermissions(done, 40, g); upd != nil {
		t.Errorf("nothing to do, got %s", asJSON(t, upd))
	}
}

func TestPlanItems(t *testing.T) {
	defs := []Dashboard{{Key: "sales", Cards: []Card{{Key: "sales.revenue"}, {Key: "sales.lines"}}}}
	items := []item{
		{ID: 30, Model: "card", Description: "x\n\n" + marker("sales.revenue")}, // a duplicate left by a race
		{ID: 12, Model: "card", Description: marker("sales.revenue")},
		{ID: 13, Model: "card", Description: marker("sales.old")}, // definition removed
		{ID: 14, Model: "card", Description: "a person's question"},
		{ID: 15, Model: "dashboard", Description: marker("sales")},
		{ID: 16, Model: "dashboard", Description: marker("gone")},
		{ID: 17, Model: "dataset", Description: marker("sales.lines")}, // not a card: not ours
	}
	o := planItems(items, defs)
	if !reflect.DeepEqual(o.cards, map[string]ID{"sales.revenue": 12}) || !reflect.DeepEqual(o.dashboards, map[string]ID{"sales": 15}) {
		t.Errorf("owned %v %v", o.cards, o.dashboards)
	}
	var archived []ID
	for _, it := range o.archive {
		archived = append(archived, it.ID)
	}
	if !reflect.DeepEqual(archived, []ID{13, 16, 30}) {
		t.Errorf("archive %v, want 13, 16, 30", archived)
	}
}

func testDashboard() Dashboard {
	return Dashboard{Key: "sales", Name: "Sales", DateFilter: "Period", Cards: []Card{
		{Key: "sales.revenue", Position: Position{Col: 0, Row: 0, Width: 6, Height: 3}, DateTag: &DateTag{Tag: "day"}},
		{Key: "sales.table", Position: Position{Col: 0, Row: 3, Width: 24, Height: 8}},
	}}
}

func decodeState(t *testing.T, text string) dashboardState {
	t.Helper()
	var st dashboardState
	must(t, json.Unmarshal([]byte(text), &st))
	return st
}

func TestPlanDashcardsNewDashboard(t *testing.T) {
	cardIDs := map[string]ID{"sales.revenue": 51, "sales.table": 52}
	req, err := planDashcards(testDashboard(), cardIDs, decodeState(t, `{"id": 60, "dashcards": [], "tabs": []}`))
	must(t, err)
	want := `{"dashcards":[` +
		`{"id":-1,"card_id":51,"row":0,"col":0,"size_x":6,"size_y":3,"parameter_mappings":[{"parameter_id":"marketplace_date_range","card_id":51,"target":["dimension",["template-tag","day"]]}],"series":[],"visualization_settings":{}},` +
		`{"id":-2,"card_id":52,"row":3,"col":0,"size_x":24,"size_y":8,"parameter_mappings":[],"series":[],"visualization_settings":{}}],"tabs":[]}`
	if got := asJSON(t, req); got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
}

// current60 is the answer of a PUT /api/dashboard/60 after the first run.
const current60 = `{"id": 60, "tabs": [], "dashcards": [
	{"id": 70, "card_id": 51, "dashboard_tab_id": null, "row": 0, "col": 0, "size_x": 6, "size_y": 3,
	 "parameter_mappings": [{"parameter_id": "marketplace_date_range", "card_id": 51, "target": ["dimension", ["template-tag", "day"]]}],
	 "card": {"id": 51, "name": "Revenue"}, "visualization_settings": {}, "series": []},
	{"id": 71, "card_id": 52, "dashboard_tab_id": null, "row": 3, "col": 0, "size_x": 24, "size_y": 8, "parameter_mappings": [],
	 "card": {"id": 52}, "visualization_settings": {}, "series": []}]}`

func TestPlanDashcardsUnchanged(t *testing.T) {
	cardIDs := map[string]ID{"sales.revenue": 51, "sales.table": 52}
	req, err := planDashcards(testDashboard(), cardIDs, decodeState(t, current60))
	must(t, err)
	if req != nil {
		t.Errorf("layout is right, want no PUT, got %s", asJSON(t, req))
	}
	// A card moved by hand goes back, keeping its dashcard id.
	moved := strings.Replace(current60, `"row": 3, "col": 0`, `"row": 5, "col": 0`, 1)
	req, err = planDashcards(testDashboard(), cardIDs, decodeState(t, moved))
	must(t, err)
	if req == nil || !strings.Contains(asJSON(t, req), `{"id":71,"card_id":52,"row":3,"col":0`) {
		t.Errorf("moved card: got %s", asJSON(t, req))
	}
}

func TestPlanDashcardsWithTabs(t *testing.T) {
	cardIDs := map[string]ID{"sales.revenue": 51, "sales.table": 52}
	// A person added tabs: the existing cards went to "Tab 1", their own
	// question and a text card to "Mine"; one of our cards was also copied
	// to their tab, and a stray text card left on the managed tab.
	current := decodeState(t, `{"id": 60,
	"tabs": [{"id": 80, "name": "Tab 1", "position": 0}, {"id": 81, "name": "Mine", "position": 1}],
	"dashcards": [
	{"id": 70, "card_id": 51, "dashboard_tab_id": 80, "row": 0, "col": 0, "size_x": 6, "size_y": 3,
	 "parameter_mappings": [{"parameter_id": "marketplace_date_range", "card_id": 51, "target": ["dimension", ["template-tag", "day"]]}]},
	{"id": 71, "card_id": 52, "dashboard_tab_id": 80, "row": 3, "col": 0, "size_x": 24, "size_y": 8, "parameter_mappings": []},
	{"id": 72, "card_id": null, "dashboard_tab_id": 80, "row": 20, "col": 0, "size_x": 4, "size_y": 1, "visualization_settings": {"text": "stray"}},
	{"id": 73, "card_id": 99, "dashboard_tab_id": 81, "row": 0, "col": 0, "size_x": 12, "size_y": 6, "card": {"id": 99}, "inline_parameters": []},
	{"id": 74, "card_id": null, "dashboard_tab_id": 81, "row": 6, "col": 0, "size_x": 12, "size_y": 2, "visualization_settings": {"text": "notes"}}]}`)
	req, err := planDashcards(testDashboard(), cardIDs, current)
	must(t, err)
	if req == nil {
		t.Fatal("the stray dashcard on the managed tab must go: want a PUT")
	}
	got := asJSON(t, req)
	for _, want := range []string{
		`"tabs":[{"id":80,"name":"Tab 1"},{"id":81,"name":"Mine"}]`,
		`{"id":70,"card_id":51,"dashboard_tab_id":80,`,
		`{"id":71,"card_id":52,"dashboard_tab_id":80,`,
		`{"card_id":99,"col":0,"dashboard_tab_id":81,"id":73,"inline_parameters":[],"row":0,"size_x":12,"size_y":6}`,
		`{"card_id":null,"col":0,"dashboard_tab_id":81,"id":74,"row":6,"size_x":12,"size_y":2,"visualization_settings":{"text":"notes"}}`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("PUT body lacks %s:\n%s", want, got)
		}
	}
	if strings.Contains(got, `"id":72`) {
		t.Errorf("stray dashcard on the managed tab kept: %s", got)
	}
	if len(req.Dashcards) != 4 {
		t.Errorf("want 4 dashcards (2 ours, 2 the person's), got %d", len(req.Dashcards))
	}
}

func TestIDDecoding(t *testing.T) {
	var id ID
	for in, want := range map[string]ID{`12`: 12, `"34"`: 34} {
		if err := json.Unmarshal([]byte(in), &id); err != nil || id != want {
			t.Errorf("%s: %d, %v", in, id, err)
		}
	}
	for _, bad := range []string{`"root"`, `1.5`, `{}`, `"12a"`} {
		if err := json.Unmarshal([]byte(bad), &id); err == nil {
			t.Errorf("%s decoded as %d without an error", bad, id)
		}
	}
	var colls []collectionEntry
	must(t, json.Unmarshal([]byte(`[{"id": "root"}, {"id": 5, "description": "x"}]`), &colls))
	if _, ok := colls[0].ID.numeric(); ok {
		t.Error("root read as a number")
	}
	if n, ok := colls[1].ID.numeric(); !ok || n != 5 {
		t.Errorf("got %d %v", n, ok)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
