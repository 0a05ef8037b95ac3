package metabase

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// The typed part of Metabase's REST API that setup calls. Every request and
// response shape below is taken from Metabase 0.56's handlers (the source
// file is named at each call); fields Metabase sends that setup does not
// read are left out of the responses.

// --- /api/health, /api/session, /api/setup, /api/setting -------------------

// health: GET /api/health (src/metabase/server/routes.clj): {"status":"ok"},
// or 503 {"status":"initializing"} while Metabase migrates its database.
func (c *client) health(ctx context.Context) (string, error) {
	var h struct {
		Status string `json:"status"`
	}
	err := c.do(ctx, http.MethodGet, "/api/health", nil, &h)
	return h.Status, err
}

type sessionProperties struct {
	HasUserSetup bool   `json:"has-user-setup"`
	SetupToken   string `json:"setup-token"`
}

// sessionProperties: GET /api/session/properties (src/metabase/session/api.clj).
func (c *client) sessionProperties(ctx context.Context) (sessionProperties, error) {
	var p sessionProperties
	err := c.do(ctx, http.MethodGet, "/api/session/properties", nil, &p)
	return p, err
}

// setupRequest is the body of POST /api/setup (src/metabase/setup/api.clj).
// 0.56 ignores prefs.allow_tracking (it sets anon-tracking-enabled to true
// whatever is sent), so tracking is set through /api/setting instead.
type setupRequest struct {
	Token string     `json:"token"`
	User  setupUser  `json:"user"`
	Prefs setupPrefs `json:"prefs"`
}

type setupUser struct {
	Email     string `json:"email"`
	Password  string `json:"password"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	SiteName  string `json:"site_name"`
}

type setupPrefs struct {
	SiteName   string `json:"site_name"`
	SiteLocale string `json:"site_locale"`
}

type sessionResponse struct {
	ID string `json:"id"`
}

// setup: POST /api/setup; 403 once a user exists, 400 for a refused admin.
func (c *client) setup(ctx context.Context, req setupRequest) (string, error) {
	var s sessionResponse
	err := c.do(ctx, http.MethodPost, "/api/setup", req, &s)
	return s.ID, err
}

// login: POST /api/session {"username","password"} (src/metabase/session/api.clj);
// 401 {"errors":{"password":"did not match stored password"}} when refused.
func (c *client) login(ctx context.Context, username, password string) (string, error) {
	var s sessionResponse
	err := c.do(ctx, http.MethodPost, "/api/session", map[string]string{"username": username, "password": password}, &s)
	return s.ID, err
}

// logout: DELETE /api/session ends the session in the header (204), so runs
// do not leave sessions behind.
func (c *client) logout(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, "/api/session", nil, nil)
}

// setting: GET /api/setting/:key (src/metabase/settings/api.clj) answers the
// bare JSON value.
func (c *client) setting(ctx context.Context, key string) (json.RawMessage, error) {
	var v json.RawMessage
	err := c.do(ctx, http.MethodGet, "/api/setting/"+url.PathEscape(key), nil, &v)
	return v, err
}

// setSetting: PUT /api/setting/:key {"value": v} (204).
func (c *client) setSetting(ctx context.Context, key string, value any) error {
	return c.do(ctx, http.MethodPut, "/api/setting/"+url.PathEscape(key), map[string]any{"value": value}, nil)
}

// --- /api/database ----------------------------------------------------------

// postgresDetails are the connection details of a postgres database
// (src/metabase/driver/postgres.clj connection properties). omitempty
// matters: PUT /api/database/:id merges the details it is sent over the
// stored ones, so an update sends only what changed.
type postgresDetails struct {
	Host     string `json:"host,omitempty"`
	Port     int    `json:"port,omitempty"`
	DBName   string `json:"dbname,omitempty"`
	User     string `json:"user,omitempty"`
	Password string `json:"password,omitempty"`
	// SSL and SSLMode are sent only when configured: on create Metabase
	// tries SSL first and keeps ssl=true when it works.
	SSL                   *bool  `json:"ssl,omitempty"`
	SSLMode               string `json:"ssl-mode,omitempty"`
	SchemaFiltersType     string `json:"schema-filters-type,omitempty"`
	SchemaFiltersPatterns string `json:"schema-filters-patterns,omitempty"`
	TunnelEnabled         *bool  `json:"tunnel-enabled,omitempty"`
}

// UnmarshalJSON accepts the port as a number or a string: the admin UI
// stores what was typed.
func (d *postgresDetails) UnmarshalJSON(b []byte) error {
	type plain postgresDetails
	var aux struct {
		plain
		Port json.RawMessage `json:"port"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*d = postgresDetails(aux.plain)
	if len(aux.Port) > 0 && string(aux.Port) != "null" {
		var port ID
		if err := port.UnmarshalJSON(aux.Port); err != nil {
			return fmt.Errorf("database details: port %s: expected an integer", aux.Port)
		}
		d.Port = int(port)
	}
	return nil
}

// databaseCreate is the body of POST /api/database (src/metabase/warehouses/api.clj).
type databaseCreate struct {
	Name           string          `json:"name"`
	Engine         string          `json:"engine"`
	Details        postgresDetails `json:"details"`
	IsFullSync     bool            `json:"is_full_sync"`
	IsOnDemand     bool            `json:"is_on_demand"`
	AutoRunQueries bool            `json:"auto_run_queries"`
}

// databaseUpdate is the body of PUT /api/database/:id: only details.
type databaseUpdate struct {
	Details postgresDetails `json:"details"`
}

// database is GET /api/database/:id; details.password comes back masked
// as "**MetabasePass**".
type database struct {
	ID      ID              `json:"id"`
	Name    string          `json:"name"`
	Engine  string          `json:"engine"`
	Details postgresDetails `json:"details"`
}

// databases: GET /api/database, {"data": [...]} (a bare array before 0.41).
func (c *client) databases(ctx context.Context) ([]database, error) {
	// The list's details are not needed (and not always present): ids and
	// names only.
	type entry struct {
		ID   ID     `json:"id"`
		Name string `json:"name"`
	}
	list, err := getList[entry](ctx, c, "/api/database")
	if err != nil {
		return nil, err
	}
	out := make([]database, len(list))
	for i, e := range list {
		out[i] = database{ID: e.ID, Name: e.Name}
	}
	return out, nil
}

func (c *client) database(ctx context.Context, id ID) (database, error) {
	var db database
	err := c.do(ctx, http.MethodGet, fmt.Sprintf("/api/database/%d", id), nil, &db)
	return db, err
}

// createDatabase: Metabase tests the connection before saving, so a wrong
// host or role fails here with Metabase's reason (400).
func (c *client) createDatabase(ctx context.Context, req databaseCreate) (database, error) {
	var db database
	err := c.do(ctx, http.MethodPost, "/api/database", req, &db)
	return db, err
}

// updateDatabase re-tests the connection only when the merged details differ.
func (c *client) updateDatabase(ctx context.Context, id ID, req databaseUpdate) error {
	return c.do(ctx, http.MethodPut, fmt.Sprintf("/api/database/%d", id), req, nil)
}

// syncSchema: POST /api/database/:id/sync_schema starts an asynchronous sync.
func (c *client) syncSchema(ctx context.Context, id ID) error {
	return c.do(ctx, http.MethodPost, fmt.Sprintf("/api/database/%d/sync_schema", id), struct{}{}, nil)
}

type databaseMetadata struct {
	Tables []struct {
		Schema string `json:"schema"`
		Name   string `json:"name"`
		Fields []struct {
			ID   ID     `json:"id"`
			Name string `json:"name"`
		} `json:"fields"`
	} `json:"tables"`
}

// metadata: GET /api/database/:id/metadata: the synced tables and fields.
func (c *client) metadata(ctx context.Context, id ID) (databaseMetadata, error) {
	var m databaseMetadata
	err := c.do(ctx, http.MethodGet, fmt.Sprintf("/api/database/%d/metadata?include_hidden=true", id), nil, &m)
	return m, err
}

// --- /api/collection --------------------------------------------------------

type collectionEntry struct {
	ID          rawID  `json:"id"`
	Description string `json:"description"`
}

// collections: GET /api/collection (src/metabase/collections_rest/api.clj), a
// bare array starting with {"id":"root"}.
func (c *client) collections(ctx context.Context) ([]collectionEntry, error) {
	return getList[collectionEntry](ctx, c, "/api/collection")
}

// collectionRequest is the body of POST /api/collection and PUT /api/collection/:id.
type collectionRequest struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Archived    *bool  `json:"archived,omitempty"`
}

func (c *client) createCollection(ctx context.Context, req collectionRequest) (ID, error) {
	return c.create(ctx, "/api/collection", req)
}

func (c *client) updateCollection(ctx context.Context, id ID, req collectionRequest) error {
	return c.do(ctx, http.MethodPut, fmt.Sprintf("/api/collection/%d", id), req, nil)
}

// item is an entry of GET /api/collection/:id/items, {"data": [...]}.
type item struct {
	ID          ID     `json:"id"`
	Model       string `json:"model"`
	Name        string `json:"name"`
	Description string `json:"description"`
}

func (c *client) collectionItems(ctx context.Context, id ID) ([]item, error) {
	return getList[item](ctx, c, fmt.Sprintf("/api/collection/%d/items?models=card&models=dashboard", id))
}

// description reads one card's or dashboard's description when the item
// list leaves it out. A card is read with ?ignore_view=true so the read is
// not counted as a view; a dashboard GET always counts one in 0.56, which is
// why this is only the fallback.
func (c *client) description(ctx context.Context, model string, id ID) (string, error) {
	path := fmt.Sprintf("/api/%s/%d", model, id)
	if model == "card" {
		path += "?ignore_view=true"
	}
	var out struct {
		Description string `json:"description"`
	}
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.Description, err
}

// archive: PUT /api/card/:id or /api/dashboard/:id {"archived": true} moves
// it to the trash.
func (c *client) archive(ctx context.Context, model string, id ID) error {
	return c.do(ctx, http.MethodPut, fmt.Sprintf("/api/%s/%d", model, id), map[string]bool{"archived": true}, nil)
}

// --- /api/card --------------------------------------------------------------

// cardRequest is the body of POST /api/card and PUT /api/card/:id
// (src/metabase/queries/api/card.clj) for a native SQL question.
type cardRequest struct {
	Name                  string          `json:"name"`
	Description           string          `json:"description"`
	Display               string          `json:"display"`
	VisualizationSettings map[string]any  `json:"visualization_settings"`
	CollectionID          ID              `json:"collection_id"`
	Parameters            []cardParameter `json:"parameters"`
	DatasetQuery          datasetQuery    `json:"dataset_query"`
	Archived              *bool           `json:"archived,omitempty"`
}

type datasetQuery struct {
	Type     string      `json:"type"`
	Database ID          `json:"database"`
	Native   nativeQuery `json:"native"`
}

type nativeQuery struct {
	Query        string                 `json:"query"`
	TemplateTags map[string]templateTag `json:"template-tags"`
}

// templateTag is a field filter: {{name}} becomes a condition on Dimension.
type templateTag struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	DisplayName string `json:"display-name"`
	Type        string `json:"type"`
	Dimension   []any  `json:"dimension"`
	WidgetType  string `json:"widget-type"`
	Required    bool   `json:"required"`
}

type cardParameter struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Target []any  `json:"target"`
	Name   string `json:"name"`
	Slug   string `json:"slug"`
}

func (c *client) createCard(ctx context.Context, req cardRequest) (ID, error) {
	return c.create(ctx, "/api/card", req)
}

// create POSTs a new object and returns its id; an answer without one is
// an error.
func (c *client) create(ctx context.Context, path string, req any) (ID, error) {
	var out struct {
		ID ID `json:"id"`
	}
	if err := c.do(ctx, http.MethodPost, path, req, &out); err != nil {
		return 0, err
	}
	if out.ID <= 0 {
		return 0, fmt.Errorf("POST %s: the answer held no id", path)
	}
	return out.ID, nil
}

func (c *client) updateCard(ctx context.Context, id ID, req cardRequest) error {
	return c.do(ctx, http.MethodPut, fmt.Sprintf("/api/card/%d", id), req, nil)
}

// --- /api/dashboard ---------------------------------------------------------

// dashboardRequest is the body of POST /api/dashboard and of the first
// PUT /api/dashboard/:id (src/metabase/dashboards_rest/api.clj), without
// dashcards: that PUT leaves dashcards and tabs alone and answers the
// dashboard with them, which is how setup reads a dashboard without a GET
// (every GET counts as a view).
type dashboardRequest struct {
	Name         string               `json:"name"`
	Description  string               `json:"description"`
	CollectionID ID                   `json:"collection_id"`
	Parameters   []dashboardParameter `json:"parameters"`
	Archived     *bool                `json:"archived,omitempty"`
}

type dashboardParameter struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Slug      string `json:"slug"`
	Type      string `json:"type"`
	SectionID string `json:"sectionId"`
}

// dashboardState is a dashboard as POST and PUT /api/dashboard answer it.
type dashboardState struct {
	ID        ID                `json:"id"`
	Dashcards []currentDashcard `json:"dashcards"`
	Tabs      []dashboardTab    `json:"tabs"`
}

type dashboardTab struct {
	ID   ID     `json:"id"`
	Name string `json:"name"`
}

// dashcardFields are the fields of a dashcard setup compares and writes.
type dashcardFields struct {
	ID                ID                 `json:"id"`
	CardID            *ID                `json:"card_id"` // nil for text and heading cards
	DashboardTabID    *ID                `json:"dashboard_tab_id,omitempty"`
	Row               int                `json:"row"`
	Col               int                `json:"col"`
	SizeX             int                `json:"size_x"`
	SizeY             int                `json:"size_y"`
	ParameterMappings []parameterMapping `json:"parameter_mappings"`
}

type parameterMapping struct {
	ParameterID string `json:"parameter_id"`
	CardID      ID     `json:"card_id"`
	Target      []any  `json:"target"`
}

// currentDashcard keeps the dashcard's JSON as Metabase sent it, so a
// person's dashcard on their own tab goes back unchanged, with fields this
// code does not know about.
type currentDashcard struct {
	dashcardFields
	raw json.RawMessage
}

func (d *currentDashcard) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &d.dashcardFields); err != nil {
		return err
	}
	d.raw = append(json.RawMessage(nil), b...)
	return nil
}

// dashcardsRequest is the body of the second PUT /api/dashboard/:id. Since
// 0.47 dashcards is the complete new set (missing ones are deleted, negative
// ids are created) and, once a dashboard has tabs, tabs must be sent too
// (leaving them out deletes them with their cards) and every dashcard needs
// a dashboard_tab_id.
type dashcardsRequest struct {
	Dashcards []json.RawMessage `json:"dashcards"`
	Tabs      []dashboardTab    `json:"tabs"`
}

func (c *client) createDashboard(ctx context.Context, req dashboardRequest) (dashboardState, error) {
	var out dashboardState
	err := c.do(ctx, http.MethodPost, "/api/dashboard", req, &out)
	return out, err
}

func (c *client) updateDashboard(ctx context.Context, id ID, req any) (dashboardState, error) {
	var out dashboardState
	err := c.do(ctx, http.MethodPut, fmt.Sprintf("/api/dashboard/%d", id), req, &out)
	return out, err
}

// --- permissions ------------------------------------------------------------

// group is an entry of GET /api/permissions/group
// (src/metabase/permissions_rest/api.clj). magic_group_type marks All Users
// ("all-internal-users") and Administrators ("admin").
type group struct {
	ID             ID     `json:"id"`
	Name           string `json:"name"`
	MagicGroupType string `json:"magic_group_type"`
}

func (c *client) groups(ctx context.Context) ([]group, error) {
	return getList[group](ctx, c, "/api/permissions/group")
}

// createGroup: POST /api/permissions/group {"name"}.
func (c *client) createGroup(ctx context.Context, name string) (group, error) {
	var g group
	err := c.do(ctx, http.MethodPost, "/api/permissions/group", map[string]string{"name": name}, &g)
	return g, err
}

// dataGraph is GET /api/permissions/graph/db/:id: group id -> database id ->
// permission type ("view-data", "create-queries", "download", ...) -> value,
// a string or, when granted per schema, an object.
type dataGraph struct {
	Revision int                                      `json:"revision"`
	Groups   map[ID]map[ID]map[string]json.RawMessage `json:"groups"`
}

// dataGraphUpdate is the body of PUT /api/permissions/graph: only the
// groups, databases and permission types to change, with the revision read.
type dataGraphUpdate struct {
	Revision int                             `json:"revision"`
	Groups   map[ID]map[ID]map[string]string `json:"groups"`
}

func (c *client) dataGraph(ctx context.Context, dbID ID) (dataGraph, error) {
	var g dataGraph
	err := c.do(ctx, http.MethodGet, fmt.Sprintf("/api/permissions/graph/db/%d", dbID), nil, &g)
	return g, err
}

// putDataGraph answers 409 when the revision is stale.
func (c *client) putDataGraph(ctx context.Context, req dataGraphUpdate) error {
	return c.do(ctx, http.MethodPut, "/api/permissions/graph?skip-graph=true", req, nil)
}

// collectionGraph is GET /api/collection/graph: group id -> collection id
// (or "root") -> "read", "write" or "none".
type collectionGraph struct {
	Revision int                      `json:"revision"`
	Groups   map[ID]map[string]string `json:"groups"`
}

func (c *client) collectionGraph(ctx context.Context) (collectionGraph, error) {
	var g collectionGraph
	err := c.do(ctx, http.MethodGet, "/api/collection/graph", nil, &g)
	return g, err
}

// putCollectionGraph: PUT /api/collection/graph overwrites the parts of the
// graph present in the request and leaves the rest; 409 on a stale revision.
func (c *client) putCollectionGraph(ctx context.Context, req collectionGraph) error {
	return c.do(ctx, http.MethodPut, "/api/collection/graph?skip_graph=true", req, nil)
}

// jsonEqual compares two JSON texts by value.
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}
