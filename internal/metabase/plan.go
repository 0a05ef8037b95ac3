package metabase

import (
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// The plan step: pure functions from the desired state (configuration and
// dashboard definitions) and the current state (what Metabase answered) to
// the requests that close the gap. Nothing here talks to Metabase, so each
// rule is tested on its own (plan_test.go); setup.go applies the plans.

// Permission values of Metabase 0.56's data permissions graph
// (src/metabase/permissions_rest/schema.clj) and collection graph.
const (
	viewData          = "view-data"
	createQueries     = "create-queries"
	viewUnrestricted  = "unrestricted"
	queryBuilder      = "query-builder"
	queryBuilderSQL   = "query-builder-and-native"
	collectionRead    = "read"
	allUsersMagicType = "all-internal-users"
	allUsersName      = "All Users"
)

// --- warehouse ----------------------------------------------------------------

// martsOnly is the schema filter that keeps Metabase's sync (and so the
// query builder) to the marts schema.
const martsOnly = "marts"

// wantDetails is the warehouse connection as configured, password included.
func wantDetails(cfg *Config) postgresDetails {
	d := postgresDetails{
		Host:                  cfg.WarehouseHost,
		Port:                  cfg.WarehousePort,
		DBName:                cfg.WarehouseDB,
		User:                  cfg.WarehouseUser,
		Password:              cfg.WarehousePassword,
		SSL:                   cfg.ssl,
		SchemaFiltersType:     "inclusion",
		SchemaFiltersPatterns: martsOnly,
	}
	if cfg.WarehouseSSLMode != "" {
		d.SSLMode = cfg.WarehouseSSLMode
	}
	return d
}

// planDatabaseCreate is the POST /api/database body for a warehouse not yet
// registered. ssl is left out unless configured, so that Metabase's own
// "try SSL first" keeps SSL wherever the server offers it.
func planDatabaseCreate(cfg *Config) databaseCreate {
	d := wantDetails(cfg)
	off := false
	d.TunnelEnabled = &off
	return databaseCreate{
		Name:           cfg.WarehouseName,
		Engine:         "postgres",
		Details:        d,
		IsFullSync:     true,
		AutoRunQueries: true,
	}
}

// planDatabaseUpdate is the PUT /api/database/:id body: the details that
// differ from the stored ones, plus the password. Metabase merges what it
// is sent over what it stores, so anything left out keeps its value — in
// particular ssl, which Metabase may have turned on at creation. The
// password always goes (Metabase answers it masked, so a rotated one cannot
// be detected); an unchanged password does not make Metabase re-test the
// connection. changed lists the non-secret details that differ, for the log.
func planDatabaseUpdate(cfg *Config, current postgresDetails) (req databaseUpdate, changed []string) {
	want := wantDetails(cfg)
	var d postgresDetails
	for _, f := range []struct {
		name    string
		differs bool
		set     func()
	}{
		{"host", want.Host != current.Host, func() { d.Host = want.Host }},
		{"port", want.Port != current.Port, func() { d.Port = want.Port }},
		{"dbname", want.DBName != current.DBName, func() { d.DBName = want.DBName }},
		{"user", want.User != current.User, func() { d.User = want.User }},
		{"ssl", want.SSL != nil && (current.SSL == nil || *current.SSL != *want.SSL), func() { d.SSL = want.SSL }},
		{"ssl-mode", want.SSLMode != "" && want.SSLMode != current.SSLMode, func() { d.SSLMode = want.SSLMode }},
		{"schema-filters-type", want.SchemaFiltersType != current.SchemaFiltersType, func() { d.SchemaFiltersType = want.SchemaFiltersType }},
		{"schema-filters-patterns", want.SchemaFiltersPatterns != current.SchemaFiltersPatterns, func() { d.SchemaFiltersPatterns = want.SchemaFiltersPatterns }},
	} {
		if f.differs {
			f.set()
			changed = append(changed, f.name)
		}
	}
	d.Password = want.Password
	return databaseUpdate{Details: d}, changed
}

// --- permissions --------------------------------------------------------------

// groupIDs are the groups whose permissions setup manages.
type groupIDs struct {
	allUsers, analysts ID
}

// findGroups picks All Users (by its magic type, or by name before the type
// existed) and the analysts group (by name) from GET /api/permissions/group.
// A zero id means not found.
func findGroups(groups []group, analystsName string) groupIDs {
	var g groupIDs
	for _, gr := range groups {
		switch {
		case gr.MagicGroupType == allUsersMagicType:
			g.allUsers = gr.ID
		case gr.MagicGroupType == "" && gr.Name == allUsersName && g.allUsers == 0:
			g.allUsers = gr.ID
		}
		if gr.Name == analystsName && gr.MagicGroupType == "" && g.analysts == 0 {
			g.analysts = gr.ID
		}
	}
	return g
}

// wantDataPermissions is the documented default on the warehouse: everyone
// may view data and use the query builder (only marts is synced), only
// analysts may write SQL.
func wantDataPermissions(g groupIDs) map[ID]map[string]string {
	return map[ID]map[string]string{
		g.allUsers: {viewData: viewUnrestricted, createQueries: queryBuilder},
		g.analysts: {viewData: viewUnrestricted, createQueries: queryBuilderSQL},
	}
}

// planDataPermissions returns the PUT /api/permissions/graph body that
// moves the warehouse's permissions to the default, or nil when they are
// there already. Only the managed groups, the warehouse and the permission
// types that differ are sent.
func planDataPermissions(current dataGraph, dbID ID, g groupIDs) *dataGraphUpdate {
	var upd *dataGraphUpdate
	for gid, want := range wantDataPermissions(g) {
		have := current.Groups[gid][dbID]
		for _, kind := range []string{viewData, createQueries} {
			value := want[kind]
			if jsonEqual(have[kind], []byte(`"`+value+`"`)) {
				continue
			}
			if upd == nil {
				upd = &dataGraphUpdate{Revision: current.Revision, Groups: map[ID]map[ID]map[string]string{}}
			}
			if upd.Groups[gid] == nil {
				upd.Groups[gid] = map[ID]map[string]string{dbID: {}}
			}
			upd.Groups[gid][dbID][kind] = value
		}
	}
	return upd
}

// planCollectionPermissions returns the PUT /api/collection/graph body that
// gives All Users and the analysts read access (not write, which a new
// collection inherits from the root) to the managed collection, or nil.
func planCollectionPermissions(current collectionGraph, collID ID, g groupIDs) *collectionGraph {
	key := fmt.Sprint(int(collID))
	var upd *collectionGraph
	for _, gid := range []ID{g.allUsers, g.analysts} {
		if current.Groups[gid][key] == collectionRead {
			continue
		}
		if upd == nil {
			upd = &collectionGraph{Revision: current.Revision, Groups: map[ID]map[string]string{}}
		}
		upd.Groups[gid] = map[string]string{key: collectionRead}
	}
	return upd
}

// --- collection items ---------------------------------------------------------

// owned are the managed cards and dashboards found in the collection, by
// key, and what is to be archived.
type owned struct {
	cards, dashboards map[string]ID
	archive           []item
}

// planItems sorts the collection's items: ours by key (the oldest wins when
// two runs raced and left a duplicate), duplicates and objects whose
// definition was removed from the repository to the trash, and people's
// objects (no marker) left out entirely.
func planItems(items []item, dashboards []Dashboard) owned {
	sorted := append([]item(nil), items...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
	o := owned{cards: map[string]ID{}, dashboards: map[string]ID{}}
	wantCards, wantDashes := map[string]bool{}, map[string]bool{}
	for _, d := range dashboards {
		wantDashes[d.Key] = true
		for _, c := range d.Cards {
			wantCards[c.Key] = true
		}
	}
	for _, it := range sorted {
		key := markerOf(it.Description)
		var m map[string]ID
		var want map[string]bool
		switch {
		case key == "":
			continue
		case it.Model == "card":
			m, want = o.cards, wantCards
		case it.Model == "dashboard":
			m, want = o.dashboards, wantDashes
		default:
			continue
		}
		if _, dup := m[key]; dup || !want[key] {
			o.archive = append(o.archive, it)
			continue
		}
		m[key] = it.ID
	}
	return o
}

// --- cards and dashboards -----------------------------------------------------

// fieldRef names a column the way a date filter refers to it.
type fieldRef struct{ schema, table, column string }

func (f fieldRef) String() string { return f.schema + "." + f.table + "." + f.column }

// neededFields are the columns the dashboards' date filters point at.
func neededFields(dashboards []Dashboard) map[fieldRef]bool {
	need := map[fieldRef]bool{}
	for _, d := range dashboards {
		for _, c := range d.Cards {
			if t := c.DateTag; t != nil {
				need[fieldRef{t.Schema, t.Table, t.Column}] = true
			}
		}
	}
	return need
}

// findFields looks the needed columns up in the synced metadata and
// returns the ids found and the names still missing, sorted.
func findFields(meta databaseMetadata, need map[fieldRef]bool) (map[fieldRef]ID, []string) {
	found := map[fieldRef]ID{}
	for _, t := range meta.Tables {
		for _, f := range t.Fields {
			if ref := (fieldRef{t.Schema, t.Name, f.Name}); need[ref] {
				found[ref] = f.ID
			}
		}
	}
	var missing []string
	for ref := range need {
		if _, ok := found[ref]; !ok {
			missing = append(missing, ref.String())
		}
	}
	sort.Strings(missing)
	return found, missing
}

// stableID derives a UUID-shaped id from a name, so template tags keep their
// ids from run to run and saved filter values stay valid.
func stableID(name string) string {
	h := sha1.Sum([]byte("marketplace-etl/" + name))
	h[6] = (h[6] & 0x0f) | 0x50 // version 5
	h[8] = (h[8] & 0x3f) | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// dateParameterID is the id of every dashboard's date filter; any string
// unique within a dashboard will do, and a fixed one keeps URLs stable.
const dateParameterID = "marketplace_date_range"

// dateTarget is how a dashboard parameter or card parameter points at a
// field-filter template tag.
func dateTarget(tag string) []any { return []any{"dimension", []any{"template-tag", tag}} }

// planCard is the POST/PUT /api/card body of a native SQL question.
func planCard(c Card, dbID, collID ID, fields map[fieldRef]ID) (cardRequest, error) {
	tags := map[string]templateTag{}
	params := []cardParameter{}
	if t := c.DateTag; t != nil {
		fieldID, ok := fields[fieldRef{t.Schema, t.Table, t.Column}]
		if !ok {
			return cardRequest{}, fmt.Errorf("card %s: Metabase has no field %s.%s.%s", c.Key, t.Schema, t.Table, t.Column)
		}
		tagID := stableID(c.Key + "/" + t.Tag)
		tags[t.Tag] = templateTag{
			ID: tagID, Name: t.Tag, DisplayName: "Date", Type: "dimension",
			Dimension: []any{"field", int(fieldID), nil}, WidgetType: "date/all-options",
		}
		params = append(params, cardParameter{ID: tagID, Type: "date/all-options", Target: dateTarget(t.Tag), Name: "Date", Slug: t.Tag})
	}
	vis := c.Visualization
	if vis == nil {
		vis = map[string]any{}
	}
	return cardRequest{
		Name:                  c.Name,
		Description:           describe(c.Description, c.Key),
		Display:               c.Display,
		VisualizationSettings: vis,
		CollectionID:          collID,
		Parameters:            params,
		DatasetQuery: datasetQuery{
			Type:     "native",
			Database: dbID,
			Native:   nativeQuery{Query: strings.TrimSpace(c.SQL), TemplateTags: tags},
		},
	}, nil
}

// planDashboard is the POST body of a new dashboard and the first PUT of an
// existing one (without dashcards).
func planDashboard(d Dashboard, collID ID) dashboardRequest {
	params := []dashboardParameter{}
	if d.DateFilter != "" {
		params = append(params, dashboardParameter{ID: dateParameterID, Name: d.DateFilter, Slug: "date", Type: "date/all-options", SectionID: "date"})
	}
	return dashboardRequest{
		Name:         d.Name,
		Description:  describe(d.Description, d.Key),
		CollectionID: collID,
		Parameters:   params,
	}
}

// planDashcards returns the PUT /api/dashboard/:id body that lays out the
// dashboard's cards, or nil when the layout is already right. The managed
// cards go on the first tab (or the dashboard, when it has no tabs) and
// that tab is managed: other dashcards on it are removed. Tabs a person
// added, with their dashcards, are sent back untouched, because the PUT
// replaces the whole set. Dashcards already showing one of the cards keep
// their ids, so the update is an edit, not a delete and re-create.
func planDashcards(d Dashboard, cardIDs map[string]ID, current dashboardState) (*dashcardsRequest, error) {
	var firstTab *ID
	if len(current.Tabs) > 0 {
		id := current.Tabs[0].ID
		firstTab = &id
	}
	onManagedTab := func(dc currentDashcard) bool {
		return firstTab == nil || dc.DashboardTabID == nil || *dc.DashboardTabID == *firstTab
	}
	ours := map[ID]bool{}
	for _, c := range d.Cards {
		ours[cardIDs[c.Key]] = true
	}
	existing := map[ID]currentDashcard{} // card id -> its first dashcard
	var kept []json.RawMessage
	changed := false
	for _, dc := range current.Dashcards {
		if dc.CardID != nil && ours[*dc.CardID] {
			if _, seen := existing[*dc.CardID]; !seen {
				existing[*dc.CardID] = dc
				continue
			}
		}
		if onManagedTab(dc) {
			changed = true // a stray or duplicate dashcard on the managed tab goes
			continue
		}
		raw, err := withoutKey(dc.raw, "card")
		if err != nil {
			return nil, fmt.Errorf("dashboard %s: dashcard %d: %w", d.Key, dc.ID, err)
		}
		kept = append(kept, raw)
	}
	var dashcards []json.RawMessage
	next := ID(-1)
	for _, c := range d.Cards {
		cardID := cardIDs[c.Key]
		want := dashcardFields{
			CardID:            &cardID,
			DashboardTabID:    firstTab,
			Row:               c.Position.Row,
			Col:               c.Position.Col,
			SizeX:             c.Position.Width,
			SizeY:             c.Position.Height,
			ParameterMappings: []parameterMapping{},
		}
		if c.DateTag != nil {
			want.ParameterMappings = append(want.ParameterMappings, parameterMapping{ParameterID: dateParameterID, CardID: cardID, Target: dateTarget(c.DateTag.Tag)})
		}
		if have, ok := existing[cardID]; ok {
			want.ID = have.ID
			if !sameDashcard(have.dashcardFields, want) {
				changed = true
			}
		} else {
			want.ID = next
			next--
			changed = true
		}
		raw, err := json.Marshal(dashcardRequest{dashcardFields: want, Series: []any{}, VisualizationSettings: map[string]any{}})
		if err != nil {
			return nil, err
		}
		dashcards = append(dashcards, raw)
	}
	if !changed {
		return nil, nil
	}
	tabs := current.Tabs
	if tabs == nil {
		tabs = []dashboardTab{}
	}
	return &dashcardsRequest{Dashcards: append(dashcards, kept...), Tabs: tabs}, nil
}

// dashcardRequest is one managed dashcard in the PUT.
type dashcardRequest struct {
	dashcardFields
	Series                []any          `json:"series"`
	VisualizationSettings map[string]any `json:"visualization_settings"`
}

// sameDashcard compares what setup manages of a dashcard (not its id), by
// JSON value: an empty and a missing mapping list are the same.
func sameDashcard(have, want dashcardFields) bool {
	norm := func(f dashcardFields) string {
		f.ID = 0
		if len(f.ParameterMappings) == 0 {
			f.ParameterMappings = nil
		}
		b, _ := json.Marshal(f)
		var v any
		_ = json.Unmarshal(b, &v)
		out, _ := json.Marshal(v)
		return string(out)
	}
	return norm(have) == norm(want)
}

// withoutKey drops one key from a JSON object.
func withoutKey(raw json.RawMessage, key string) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	delete(m, key)
	return json.Marshal(m)
}
