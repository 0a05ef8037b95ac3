package metabase

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeMetabase is an in-process fake of the Metabase 0.56 endpoints setup
// calls, written from their handlers in Metabase's source:
// src/metabase/setup/api.clj (POST /api/setup, which forces
// anon-tracking-enabled on), src/metabase/session/api.clj (POST and DELETE
// /api/session, GET /api/session/properties), src/metabase/settings/api.clj
// (GET/PUT /api/setting/:key), src/metabase/warehouses/api.clj (POST
// /api/database tries SSL first and keeps it when it works; PUT merges the
// details it is sent over the stored ones and re-tests the connection only
// when they changed; a masked password keeps the stored one),
// src/metabase/permissions_rest/api.clj and schema.clj (groups, the data
// permissions graph with its revision and 409 on a stale one, the closed
// set of permission types), src/metabase/collections_rest/api.clj (the
// collection graph: a new collection inherits its parent's permissions),
// src/metabase/queries/api/card.clj (GET /api/card/:id counts a view unless
// ?ignore_view=true) and src/metabase/dashboards_rest/api.clj (every GET
// /api/dashboard/:id counts a view; PUT with dashcards replaces the whole
// set, needs a dashboard_tab_id on every dashcard once the dashboard has
// tabs, and deletes the tabs it is not sent, with their dashcards). It keeps
// the same paths, methods, required body fields, list envelopes and error
// bodies, and is stricter than Metabase where that catches client bugs (an
// unknown endpoint or an unknown field id fails the test).
type fakeMetabase struct {
	t  testing.TB
	mu sync.Mutex

	// unhealthyFor is how many /api/health calls answer 503 before "ok";
	// negative means never ready.
	unhealthyFor int
	healthCalls  int
	// syncPolls is how many metadata reads after sync_schema still show no
	// tables, since Metabase syncs in the background.
	syncPolls int
	// itemsWithoutDescription makes collection items omit descriptions, as
	// some Metabase versions do.
	itemsWithoutDescription bool

	setupToken string
	users      map[string]string // email -> password
	sessions   map[string]bool
	nextID     int
	sessionSeq int

	schema      []fakeTable
	databases   map[int]map[string]any
	synced      map[int]int // database id -> metadata reads since sync_schema
	collections map[int]map[string]any
	cards       map[int]map[string]any
	dashboards  map[int]map[string]any
	dashcards   map[int][]map[string]any // dashboard id -> dashcards

	requests []string // "METHOD /path" of every request, in order

	// sslServer is what the warehouse's PostgreSQL offers: "" (no SSL),
	// "optional" or "required" (hostssl only in pg_hba.conf).
	sslServer string
	// dbPuts are the bodies of PUT /api/database/:id, in order.
	dbPuts []map[string]any
	// connectionTests counts Metabase's connection tests.
	connectionTests int

	settings map[string]any
	// envSettings are settings Metabase's own environment sets, which the
	// API refuses to change.
	envSettings map[string]bool

	groups        map[int]map[string]any
	perms         map[int]map[int]map[string]any // group -> database -> type -> value
	permsRevision int
	permsPuts     []map[string]any
	collPerms     map[int]map[string]string // group -> collection id or "root" -> read/write/none
	collRevision  int
	collPermsPuts []map[string]any
	tabs          map[int][]map[string]any // dashboard id -> tabs
	// failDashboard makes every write of the dashboard with this name
	// answer 500, to test that the others are still applied.
	failDashboard string
	// conflictOnce makes the next permissions graph PUT meet a revision
	// someone else wrote in between (409).
	conflictOnce   bool
	cardViews      int
	dashboardViews int
	logouts        int
}

const (
	fakeAllUsers = 1
	fakeAdmins   = 2
)

type fakeTable struct {
	schema, name string
	columns      []string
}

func newFakeMetabase(t testing.TB, schema []fakeTable) (*fakeMetabase, *httptest.Server) {
	f := &fakeMetabase{
		t:           t,
		setupToken:  "a3b9c1d2-0000-4000-8000-5e7c0de70ce1",
		users:       map[string]string{},
		sessions:    map[string]bool{},
		nextID:      100,
		schema:      schema,
		databases:   map[int]map[string]any{},
		synced:      map[int]int{},
		collections: map[int]map[string]any{},
		cards:       map[int]map[string]any{},
		dashboards:  map[int]map[string]any{},
		dashcards:   map[int][]map[string]any{},
		settings:    map[string]any{"anon-tracking-enabled": true},
		groups: map[int]map[string]any{
			fakeAllUsers: {"id": fakeAllUsers, "name": "All Users", "magic_group_type": "all-internal-users", "member_count": 1},
			fakeAdmins:   {"id": fakeAdmins, "name": "Administrators", "magic_group_type": "admin", "member_count": 1},
		},
		perms:     map[int]map[int]map[string]any{fakeAllUsers: {}, fakeAdmins: {}},
		collPerms: map[int]map[string]string{fakeAllUsers: {"root": "write"}, fakeAdmins: {"root": "write"}},
		tabs:      map[int][]map[string]any{},
	}
	// Metabase ships with a sample database; setup must ignore it.
	f.databases[1] = map[string]any{"id": 1, "name": "Sample Database", "engine": "h2", "details": map[string]any{}}
	f.grantNewDatabase(1)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeMetabase) id() int { f.nextID++; return f.nextID }

// addUser makes Metabase already set up, with this admin.
func (f *fakeMetabase) addUser(email, password string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users[email] = password
	f.setupToken = ""
	// Every user has a personal collection, listed by GET /api/collection.
	id := f.id()
	f.collections[id] = map[string]any{"id": id, "name": "Admin's Personal Collection", "personal_owner_id": 1, "archived": false, "description": nil, "location": "/"}
}

var (
	pathID    = regexp.MustCompile(`^/api/(database|collection|card|dashboard|permissions/graph/db)/(\d+)(/[a-z_]+)?$`)
	tagsInSQL = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_]+)\s*\}\}`)
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func badRequest(w http.ResponseWriter, field, problem string) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"errors": map[string]any{field: problem}, "specific-errors": map[string]any{field: []string{problem}}})
}

func (f *fakeMetabase) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := strings.TrimSuffix(r.URL.Path, "/")
	f.requests = append(f.requests, r.Method+" "+path)

	var body map[string]any
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			writeJSON(w, http.StatusBadRequest, map[string]any{"message": "expected a JSON body, got Content-Type " + ct})
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"message": "malformed JSON: " + err.Error()})
			return
		}
	}

	// Endpoints open without a session.
	switch r.Method + " " + path {
	case "GET /api/health":
		f.healthCalls++
		if f.unhealthyFor < 0 || f.healthCalls <= f.unhealthyFor {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "initializing", "progress": 0.4})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
		return
	case "GET /api/session/properties":
		var token any
		if f.setupToken != "" {
			token = f.setupToken
		}
		writeJSON(w, http.StatusOK, map[string]any{"has-user-setup": len(f.users) > 0, "setup-token": token, "version": map[string]any{"tag": "v0.50.20"}, "site-locale": "en"})
		return
	case "POST /api/setup":
		f.postSetup(w, body)
		return
	case "POST /api/session":
		user, _ := body["username"].(string)
		pass, _ := body["password"].(string)
		if user == "" || pass == "" {
			badRequest(w, "username", "value must be a non-blank string.")
			return
		}
		if stored, ok := f.users[user]; !ok || stored != pass {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"errors": map[string]any{"password": "did not match stored password"}})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": f.newSession()})
		return
	}

	if !f.sessions[r.Header.Get("X-Metabase-Session")] {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte("Unauthenticated"))
		return
	}

	if key, ok := strings.CutPrefix(path, "/api/setting/"); ok {
		f.setting(w, r, key, body)
		return
	}
	switch r.Method + " " + path {
	case "DELETE /api/session":
		delete(f.sessions, r.Header.Get("X-Metabase-Session"))
		f.logouts++
		w.WriteHeader(http.StatusNoContent)
		return
	case "GET /api/permissions/group":
		var list []any
		for _, id := range sortedKeys(f.groups) {
			list = append(list, f.groups[id])
		}
		writeJSON(w, http.StatusOK, list)
		return
	case "POST /api/permissions/group":
		f.postGroup(w, body)
		return
	case "PUT /api/permissions/graph":
		f.putPermissionsGraph(w, r, body)
		return
	case "GET /api/collection/graph":
		writeJSON(w, http.StatusOK, f.collectionGraphJSON())
		return
	case "PUT /api/collection/graph":
		f.putCollectionGraph(w, r, body)
		return
	case "GET /api/database":
		var list []any
		for _, id := range sortedKeys(f.databases) {
			list = append(list, f.databases[id])
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": list, "total": len(list)})
		return
	case "POST /api/database":
		if !f.checkDatabase(w, body) {
			return
		}
		details := map[string]any{}
		mergeInto(details, body["details"].(map[string]any))
		// Metabase tries SSL first unless ssl is already on, and keeps it
		// when the connection works.
		withSSL := map[string]any{}
		mergeInto(withSSL, details)
		withSSL["ssl"] = true
		if details["ssl"] != true && f.testConnection(withSSL) == "" {
			details = withSSL
		} else if msg := f.testConnection(details); msg != "" {
			writeJSON(w, http.StatusBadRequest, map[string]any{"message": msg, "errors": map[string]any{"host": msg}})
			return
		}
		id := f.id()
		db := map[string]any{"id": id}
		mergeInto(db, body)
		db["details"] = details
		f.databases[id] = db
		f.grantNewDatabase(id)
		writeJSON(w, http.StatusOK, maskedDB(db))
		return
	case "GET /api/collection":
		list := []any{map[string]any{"id": "root", "name": "Our analytics", "can_write": true, "effective_ancestors": []any{}}}
		for _, id := range sortedKeys(f.collections) {
			if c := f.collections[id]; c["archived"] != true {
				list = append(list, c)
			}
		}
		writeJSON(w, http.StatusOK, list)
		return
	case "POST /api/collection":
		if name, _ := body["name"].(string); strings.TrimSpace(name) == "" {
			badRequest(w, "name", "value must be a non-blank string.")
			return
		}
		id := f.id()
		c := map[string]any{"id": id, "archived": false, "location": "/", "personal_owner_id": nil}
		mergeInto(c, body)
		f.collections[id] = c
		// A new collection inherits its parent's (here the root's)
		// permissions, group by group.
		for _, perms := range f.collPerms {
			perms[strconv.Itoa(id)] = perms["root"]
		}
		writeJSON(w, http.StatusOK, c)
		return
	case "POST /api/card":
		f.postCard(w, body)
		return
	case "POST /api/dashboard":
		if f.failDashboard != "" && body["name"] == f.failDashboard {
			writeJSON(w, http.StatusInternalServerError, map[string]any{"message": "boom"})
			return
		}
		if name, _ := body["name"].(string); strings.TrimSpace(name) == "" {
			badRequest(w, "name", "value must be a non-blank string.")
			return
		}
		if !f.checkCollection(w, body) || !f.checkParameters(w, body) {
			return
		}
		id := f.id()
		d := map[string]any{"id": id, "archived": false, "parameters": []any{}, "description": nil}
		mergeInto(d, body)
		f.dashboards[id] = d
		writeJSON(w, http.StatusOK, f.dashboardJSON(id))
		return
	}

	m := pathID.FindStringSubmatch(path)
	if m == nil {
		f.notFound(w, r)
		return
	}
	id, _ := strconv.Atoi(m[2])
	switch r.Method + " " + m[1] + m[3] {
	case "GET database":
		db, ok := f.databases[id]
		if !ok {
			f.notFound(w, r)
			return
		}
		writeJSON(w, http.StatusOK, maskedDB(db))
	case "PUT database":
		f.putDatabase(w, r, id, body)
	case "GET permissions/graph/db":
		if _, ok := f.databases[id]; !ok {
			f.notFound(w, r)
			return
		}
		groups := map[string]any{}
		for gid, dbs := range f.perms {
			if p, ok := dbs[id]; ok {
				groups[strconv.Itoa(gid)] = map[string]any{strconv.Itoa(id): p}
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"revision": f.permsRevision, "groups": groups})
	case "POST database/sync_schema":
		if _, ok := f.databases[id]; !ok {
			f.notFound(w, r)
			return
		}
		f.synced[id] = 0
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	case "GET database/metadata":
		db, ok := f.databases[id]
		if !ok {
			f.notFound(w, r)
			return
		}
		tables := []any{}
		if polls, ok := f.synced[id]; ok {
			f.synced[id] = polls + 1
			if polls >= f.syncPolls {
				tables = f.tablesJSON(id)
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "name": db["name"], "engine": db["engine"], "tables": tables})
	case "PUT collection":
		c, ok := f.collections[id]
		if !ok {
			f.notFound(w, r)
			return
		}
		mergeInto(c, body)
		writeJSON(w, http.StatusOK, c)
	case "GET collection/items":
		if _, ok := f.collections[id]; !ok {
			f.notFound(w, r)
			return
		}
		models := r.URL.Query()["models"]
		want := func(m string) bool {
			if len(models) == 0 {
				return true
			}
			for _, x := range models {
				if x == m {
					return true
				}
			}
			return false
		}
		data := []any{}
		for _, set := range []struct {
			model string
			objs  map[int]map[string]any
		}{{"card", f.cards}, {"dashboard", f.dashboards}} {
			if !want(set.model) {
				continue
			}
			for _, oid := range sortedKeys(set.objs) {
				o := set.objs[oid]
				if o["archived"] == true || toInt(o["collection_id"]) != id {
					continue
				}
				it := map[string]any{"id": oid, "model": set.model, "name": o["name"], "description": o["description"], "collection_position": nil, "display": o["display"]}
				if f.itemsWithoutDescription {
					delete(it, "description")
				}
				data = append(data, it)
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"total": len(data), "data": data, "models": models, "limit": nil, "offset": nil})
	case "GET card":
		c, ok := f.cards[id]
		if !ok {
			f.notFound(w, r)
			return
		}
		if r.URL.Query().Get("ignore_view") != "true" {
			f.cardViews++
		}
		writeJSON(w, http.StatusOK, c)
	case "PUT card":
		c, ok := f.cards[id]
		if !ok {
			f.notFound(w, r)
			return
		}
		if _, has := body["dataset_query"]; has && !f.checkQuery(w, body["dataset_query"]) {
			return
		}
		if _, has := body["collection_id"]; has && !f.checkCollection(w, body) {
			return
		}
		mergeInto(c, body)
		writeJSON(w, http.StatusOK, c)
	case "GET dashboard":
		if _, ok := f.dashboards[id]; !ok {
			f.notFound(w, r)
			return
		}
		f.dashboardViews++ // 0.56 records a view on every dashboard GET
		writeJSON(w, http.StatusOK, f.dashboardJSON(id))
	case "PUT dashboard":
		f.putDashboard(w, r, id, body)
	default:
		f.notFound(w, r)
	}
}

func (f *fakeMetabase) notFound(w http.ResponseWriter, r *http.Request) {
	f.t.Errorf("fake Metabase: unexpected request %s %s", r.Method, r.URL.Path)
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte("API endpoint does not exist."))
}

func (f *fakeMetabase) newSession() string {
	f.sessionSeq++
	s := fmt.Sprintf("5e55102d-0000-4000-8000-%012d", f.sessionSeq)
	f.sessions[s] = true
	return s
}

func (f *fakeMetabase) postSetup(w http.ResponseWriter, body map[string]any) {
	if len(f.users) > 0 {
		writeJSON(w, http.StatusForbidden, map[string]any{"message": "The /api/setup route can only be used to create the first user, however a user currently exists."})
		return
	}
	if token, _ := body["token"].(string); token == "" || token != f.setupToken {
		badRequest(w, "token", "Token does not match the setup token.")
		return
	}
	user, _ := body["user"].(map[string]any)
	prefs, _ := body["prefs"].(map[string]any)
	email, _ := user["email"].(string)
	password, _ := user["password"].(string)
	siteName, _ := prefs["site_name"].(string)
	switch {
	case !strings.Contains(email, "@"):
		badRequest(w, "email", "value must be a valid email address.")
		return
	case len(password) < 6 || password == "password":
		badRequest(w, "password", "password is too common.")
		return
	case strings.TrimSpace(siteName) == "":
		badRequest(w, "site_name", "value must be a non-blank string.")
		return
	}
	f.users[email] = password
	f.setupToken = ""
	// 0.56 ignores prefs.allow_tracking and turns tracking on.
	f.settings["anon-tracking-enabled"] = true
	cid := f.id()
	f.collections[cid] = map[string]any{"id": cid, "name": "Admin's Personal Collection", "personal_owner_id": 1, "archived": false, "description": nil, "location": "/"}
	writeJSON(w, http.StatusOK, map[string]any{"id": f.newSession()})
}

func (f *fakeMetabase) checkDatabase(w http.ResponseWriter, body map[string]any) bool {
	name, _ := body["name"].(string)
	engine, _ := body["engine"].(string)
	details, _ := body["details"].(map[string]any)
	switch {
	case strings.TrimSpace(name) == "":
		badRequest(w, "name", "value must be a non-blank string.")
	case engine != "postgres":
		badRequest(w, "engine", "value must be a valid database engine.")
	case details == nil:
		badRequest(w, "details", "value must be a map.")
	default:
		for _, k := range []string{"host", "port", "dbname", "user", "password"} {
			if v, ok := details[k]; !ok || v == "" || v == nil {
				// Metabase tries to connect and reports the failure this way.
				writeJSON(w, http.StatusBadRequest, map[string]any{"message": "Connection failed: missing " + k, "errors": map[string]any{k: "check your connection details"}})
				return false
			}
		}
		return true
	}
	return false
}

// maskedDB is a database as Metabase returns it: secrets replaced.
func maskedDB(db map[string]any) map[string]any {
	out := map[string]any{}
	mergeInto(out, db)
	if d, ok := db["details"].(map[string]any); ok {
		md := map[string]any{}
		mergeInto(md, d)
		md["password"] = "**MetabasePass**"
		out["details"] = md
	}
	return out
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// inSync tells whether the sync of the database covers a schema: with
// schema-filters-type "inclusion" only the schemas named in
// schema-filters-patterns (comma-separated) are synced.
func (f *fakeMetabase) inSync(dbID int, schema string) bool {
	details, _ := f.databases[dbID]["details"].(map[string]any)
	if details["schema-filters-type"] != "inclusion" {
		return true
	}
	patterns, _ := details["schema-filters-patterns"].(string)
	for _, p := range strings.Split(patterns, ",") {
		if strings.TrimSpace(p) == schema {
			return true
		}
	}
	return false
}

// tablesJSON numbers the warehouse's columns per database deterministically.
func (f *fakeMetabase) tablesJSON(dbID int) []any {
	var out []any
	n := dbID * 1000
	for ti, t := range f.schema {
		if !f.inSync(dbID, t.schema) {
			n += len(t.columns)
			continue
		}
		var fields []any
		for _, c := range t.columns {
			n++
			fields = append(fields, map[string]any{"id": n, "name": c, "table_id": dbID*100 + ti, "base_type": "type/Date"})
		}
		out = append(out, map[string]any{"id": dbID*100 + ti, "db_id": dbID, "schema": t.schema, "name": t.name, "fields": fields})
	}
	return out
}

// fieldExists reports whether a field id belongs to a synced database.
func (f *fakeMetabase) fieldExists(dbID, fieldID int) bool {
	if polls, ok := f.synced[dbID]; !ok || polls <= f.syncPolls {
		return false
	}
	for _, t := range f.tablesJSON(dbID) {
		for _, fl := range t.(map[string]any)["fields"].([]any) {
			if fl.(map[string]any)["id"] == fieldID {
				return true
			}
		}
	}
	return false
}

func (f *fakeMetabase) checkCollection(w http.ResponseWriter, body map[string]any) bool {
	cid, ok := body["collection_id"]
	if !ok || cid == nil {
		return true // root collection
	}
	if _, exists := f.collections[toInt(cid)]; !exists {
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "Not found."})
		return false
	}
	return true
}

func (f *fakeMetabase) checkQuery(w http.ResponseWriter, q any) bool {
	dq, _ := q.(map[string]any)
	if dq == nil {
		badRequest(w, "dataset_query", "value must be a map.")
		return false
	}
	if dq["type"] != "native" {
		badRequest(w, "dataset_query", "only native queries are expected from metabase-setup")
		return false
	}
	dbID := toInt(dq["database"])
	if _, ok := f.databases[dbID]; !ok {
		badRequest(w, "dataset_query", fmt.Sprintf("database %v does not exist", dq["database"]))
		return false
	}
	native, _ := dq["native"].(map[string]any)
	query, _ := native["query"].(string)
	if strings.TrimSpace(query) == "" {
		badRequest(w, "dataset_query", "native query must be a non-blank string.")
		return false
	}
	tags, _ := native["template-tags"].(map[string]any)
	used := map[string]bool{}
	for _, m := range tagsInSQL.FindAllStringSubmatch(query, -1) {
		used[m[1]] = true
	}
	for name, raw := range tags {
		tag, _ := raw.(map[string]any)
		if tag["name"] != name || tag["id"] == nil || tag["display-name"] == nil {
			badRequest(w, "template-tags", "tag "+name+" needs id, name (equal to its key) and display-name")
			return false
		}
		if !used[name] {
			badRequest(w, "template-tags", "tag "+name+" is not used in the query")
			return false
		}
		if tag["type"] == "dimension" {
			dim, _ := tag["dimension"].([]any)
			if len(dim) < 2 || dim[0] != "field" || !f.fieldExists(dbID, toInt(dim[1])) {
				badRequest(w, "template-tags", fmt.Sprintf("tag %s: dimension %v is not a field of database %d", name, tag["dimension"], dbID))
				return false
			}
			if wt, _ := tag["widget-type"].(string); wt == "" {
				badRequest(w, "template-tags", "tag "+name+": a field filter needs a widget-type")
				return false
			}
		}
		delete(used, name)
	}
	for name := range used {
		// Metabase would show a broken question: a variable without a tag.
		badRequest(w, "template-tags", "{{"+name+"}} has no template tag")
		return false
	}
	return true
}

func (f *fakeMetabase) postCard(w http.ResponseWriter, body map[string]any) {
	name, _ := body["name"].(string)
	display, _ := body["display"].(string)
	_, hasVis := body["visualization_settings"].(map[string]any)
	switch {
	case strings.TrimSpace(name) == "":
		badRequest(w, "name", "value must be a non-blank string.")
		return
	case display == "":
		badRequest(w, "display", "value must be a non-blank string.")
		return
	case !hasVis:
		badRequest(w, "visualization_settings", "value must be a map.")
		return
	}
	if !f.checkQuery(w, body["dataset_query"]) || !f.checkCollection(w, body) {
		return
	}
	id := f.id()
	c := map[string]any{"id": id, "archived": false, "description": nil, "collection_id": nil, "entity_id": fmt.Sprintf("card%017d", id)}
	mergeInto(c, body)
	f.cards[id] = c
	writeJSON(w, http.StatusOK, c)
}

func (f *fakeMetabase) checkParameters(w http.ResponseWriter, body map[string]any) bool {
	params, ok := body["parameters"]
	if !ok {
		return true
	}
	list, ok := params.([]any)
	if !ok {
		badRequest(w, "parameters", "value must be an array of parameters.")
		return false
	}
	for _, p := range list {
		pm, _ := p.(map[string]any)
		if id, _ := pm["id"].(string); id == "" || pm["type"] == nil || pm["slug"] == nil || pm["name"] == nil {
			badRequest(w, "parameters", "each parameter needs id, name, slug and type")
			return false
		}
	}
	return true
}

func (f *fakeMetabase) dashboardJSON(id int) map[string]any {
	d := map[string]any{}
	mergeInto(d, f.dashboards[id])
	dcs := []any{}
	for _, dc := range f.dashcards[id] {
		out := map[string]any{}
		mergeInto(out, dc)
		out["card"] = f.cards[toInt(dc["card_id"])]
		dcs = append(dcs, out)
	}
	d["dashcards"] = dcs
	tabs := []any{}
	for _, t := range f.tabs[id] {
		tabs = append(tabs, t)
	}
	d["tabs"] = tabs
	return d
}

// putDashboard follows 0.56's update-dashboard!: scalar fields are updated
// when present; "dashcards", when present, is the complete new set
// (positive ids edit existing dashcards, negative ids create, missing ones
// are deleted) and "tabs" the complete new list of tabs (missing ones are
// deleted with their dashcards, negative ids are created and dashcards may
// refer to them). Once the dashboard has tabs, every dashcard needs one.
func (f *fakeMetabase) putDashboard(w http.ResponseWriter, r *http.Request, id int, body map[string]any) {
	d, ok := f.dashboards[id]
	if !ok {
		f.notFound(w, r)
		return
	}
	if f.failDashboard != "" && d["name"] == f.failDashboard {
		writeJSON(w, http.StatusInternalServerError, map[string]any{"message": "boom"})
		return
	}
	if !f.checkParameters(w, body) || !f.checkCollection(w, body) {
		return
	}
	params := d["parameters"]
	if p, has := body["parameters"]; has {
		params = p
	}
	paramIDs := map[string]bool{}
	if list, ok := params.([]any); ok {
		for _, p := range list {
			if pm, ok := p.(map[string]any); ok {
				paramIDs[fmt.Sprint(pm["id"])] = true
			}
		}
	}
	if raw, has := body["dashcards"]; has {
		list, ok := raw.([]any)
		if !ok {
			badRequest(w, "dashcards", "value must be an array.")
			return
		}
		if len(f.tabs[id]) > 0 {
			for _, x := range list {
				if dc, _ := x.(map[string]any); dc["dashboard_tab_id"] == nil {
					writeJSON(w, http.StatusBadRequest, map[string]any{"message": "This dashboard has tab, makes sure every card has a tab"})
					return
				}
			}
		}
		// Tabs: the ones sent are the new list.
		var sentTabs []any
		if t, ok := body["tabs"].([]any); ok {
			sentTabs = t
		}
		newTabs := []map[string]any{}
		tabIDs := map[int]int{} // id in the request -> real id
		currentTabs := map[int]bool{}
		for _, t := range f.tabs[id] {
			currentTabs[toInt(t["id"])] = true
		}
		for _, x := range sentTabs {
			t, _ := x.(map[string]any)
			tid := toInt(t["id"])
			name, _ := t["name"].(string)
			switch {
			case tid == 0 || strings.TrimSpace(name) == "":
				badRequest(w, "tabs", "each tab needs an integer id and a name")
				return
			case tid > 0 && !currentTabs[tid]:
				badRequest(w, "tabs", fmt.Sprintf("tab %d does not belong to dashboard %d", tid, id))
				return
			case tid < 0:
				tabIDs[tid] = f.id()
			default:
				tabIDs[tid] = tid
			}
			newTabs = append(newTabs, map[string]any{"id": tabIDs[tid], "name": name, "dashboard_id": id, "position": len(newTabs)})
		}
		existing := map[int]bool{}
		for _, dc := range f.dashcards[id] {
			if tab := toInt(dc["dashboard_tab_id"]); tab == 0 || tabIDs[tab] != 0 {
				existing[toInt(dc["id"])] = true // dashcards of deleted tabs are gone
			}
		}
		var newCards []map[string]any
		seen := map[int]bool{}
		for _, x := range list {
			dc, _ := x.(map[string]any)
			dcID, okID := dc["id"].(float64)
			cardID := toInt(dc["card_id"])
			card, cardOK := f.cards[cardID]
			tab := toInt(dc["dashboard_tab_id"])
			switch {
			case !okID || dcID == 0:
				badRequest(w, "dashcards", "each dashcard needs an integer id (negative for new ones)")
				return
			case dcID > 0 && !existing[int(dcID)]:
				badRequest(w, "dashcards", fmt.Sprintf("dashcard %v does not belong to dashboard %d", dcID, id))
				return
			case seen[int(dcID)]:
				badRequest(w, "dashcards", fmt.Sprintf("dashcard id %v given twice", dcID))
				return
			case dc["card_id"] != nil && !cardOK:
				badRequest(w, "dashcards", fmt.Sprintf("card %v does not exist", dc["card_id"]))
				return
			case tab != 0 && tabIDs[tab] == 0:
				badRequest(w, "dashcards", fmt.Sprintf("dashcard %v is on tab %d, which is not in tabs", dcID, tab))
				return
			case toInt(dc["size_x"]) < 1 || toInt(dc["size_y"]) < 1 || toInt(dc["col"]) < 0 || toInt(dc["row"]) < 0 ||
				toInt(dc["col"])+toInt(dc["size_x"]) > 24:
				badRequest(w, "dashcards", "size_x, size_y, row and col must place the card on the 24-column grid")
				return
			}
			seen[int(dcID)] = true
			mappings, _ := dc["parameter_mappings"].([]any)
			for _, mx := range mappings {
				mp, _ := mx.(map[string]any)
				target, _ := json.Marshal(mp["target"])
				tagName := ""
				var tgt []any
				_ = json.Unmarshal(target, &tgt)
				if len(tgt) == 2 && tgt[0] == "dimension" {
					if inner, ok := tgt[1].([]any); ok && len(inner) == 2 && inner[0] == "template-tag" {
						tagName, _ = inner[1].(string)
					}
				}
				var tags map[string]any
				if q, ok := card["dataset_query"].(map[string]any); ok {
					tags, _ = q["native"].(map[string]any)["template-tags"].(map[string]any)
				}
				switch {
				case !paramIDs[fmt.Sprint(mp["parameter_id"])]:
					badRequest(w, "parameter_mappings", fmt.Sprintf("parameter %v is not a parameter of the dashboard", mp["parameter_id"]))
					return
				case toInt(mp["card_id"]) != cardID:
					badRequest(w, "parameter_mappings", "card_id of a mapping must be the dashcard's card")
					return
				case tags[tagName] == nil:
					badRequest(w, "parameter_mappings", fmt.Sprintf("target %s is not a template tag of card %d", target, cardID))
					return
				}
			}
			out := map[string]any{}
			mergeInto(out, dc)
			delete(out, "card")
			if dcID < 0 {
				out["id"] = f.id()
			} else {
				out["id"] = int(dcID)
			}
			if tab != 0 {
				out["dashboard_tab_id"] = tabIDs[tab]
			} else {
				out["dashboard_tab_id"] = nil
			}
			out["dashboard_id"] = id
			newCards = append(newCards, out)
		}
		f.dashcards[id] = newCards
		f.tabs[id] = newTabs
	}
	for k, v := range body {
		if k != "dashcards" && k != "tabs" {
			d[k] = v
		}
	}
	writeJSON(w, http.StatusOK, f.dashboardJSON(id))
}

// setting serves GET and PUT /api/setting/:key.
func (f *fakeMetabase) setting(w http.ResponseWriter, r *http.Request, key string, body map[string]any) {
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, f.settings[key])
	case http.MethodPut:
		if f.envSettings[key] {
			writeJSON(w, http.StatusBadRequest, map[string]any{"message": "You cannot update `" + key + "` through the API because it is set by an environment variable."})
			return
		}
		v, ok := body["value"]
		if !ok {
			badRequest(w, "value", "value is required.")
			return
		}
		f.settings[key] = v
		w.WriteHeader(http.StatusNoContent)
	default:
		f.notFound(w, r)
	}
}

// testConnection is Metabase's connection test against the warehouse the
// fake stands for: "" when it connects, else PostgreSQL's refusal.
func (f *fakeMetabase) testConnection(details map[string]any) string {
	f.connectionTests++
	ssl := details["ssl"] == true
	switch {
	case ssl && f.sslServer == "":
		return "The server does not support SSL."
	case !ssl && f.sslServer == "required":
		return fmt.Sprintf("FATAL: no pg_hba.conf entry for host \"10.0.0.7\", user \"%v\", database \"%v\", no encryption", details["user"], details["dbname"])
	}
	return ""
}

// putDatabase merges the details sent over the stored ones (a masked
// password keeps the stored one) and re-tests the connection only when
// the merged details differ.
func (f *fakeMetabase) putDatabase(w http.ResponseWriter, r *http.Request, id int, body map[string]any) {
	db, ok := f.databases[id]
	if !ok {
		f.notFound(w, r)
		return
	}
	f.dbPuts = append(f.dbPuts, body)
	for k := range body {
		switch k {
		case "name", "engine", "details", "is_full_sync", "is_on_demand", "auto_run_queries", "description", "settings":
		default:
			badRequest(w, k, "not a field of PUT /api/database/:id")
			return
		}
	}
	if sent, has := body["details"]; has {
		sentDetails, ok := sent.(map[string]any)
		if !ok {
			badRequest(w, "details", "value must be a map.")
			return
		}
		merged := map[string]any{}
		mergeInto(merged, db["details"].(map[string]any))
		for k, v := range sentDetails {
			if k == "password" && v == "**MetabasePass**" {
				continue
			}
			merged[k] = v
		}
		if jsonText(merged) != jsonText(db["details"]) {
			if msg := f.testConnection(merged); msg != "" {
				writeJSON(w, http.StatusBadRequest, map[string]any{"message": msg, "errors": map[string]any{"host": msg}})
				return
			}
		}
		db["details"] = merged
	}
	for k, v := range body {
		if k != "details" {
			db[k] = v
		}
	}
	writeJSON(w, http.StatusOK, maskedDB(db))
}

// grantNewDatabase gives a new database the permissions 0.56 gives it:
// All Users may view everything, write SQL and download; admins all.
func (f *fakeMetabase) grantNewDatabase(dbID int) {
	for gid := range f.groups {
		p := map[string]any{"view-data": "unrestricted", "create-queries": "no"}
		switch gid {
		case fakeAllUsers:
			p = map[string]any{"view-data": "unrestricted", "create-queries": "query-builder-and-native", "download": map[string]any{"schemas": "full"}}
		case fakeAdmins:
			p = map[string]any{"view-data": "unrestricted", "create-queries": "query-builder-and-native", "download": map[string]any{"schemas": "full"},
				"data-model": map[string]any{"schemas": "all"}, "details": "yes"}
		}
		if f.perms[gid] == nil {
			f.perms[gid] = map[int]map[string]any{}
		}
		f.perms[gid][dbID] = p
	}
}

func (f *fakeMetabase) postGroup(w http.ResponseWriter, body map[string]any) {
	name, _ := body["name"].(string)
	if strings.TrimSpace(name) == "" {
		badRequest(w, "name", "value must be a non-blank string.")
		return
	}
	for _, g := range f.groups {
		if g["name"] == name {
			writeJSON(w, http.StatusBadRequest, map[string]any{"message": "A group with that name already exists."})
			return
		}
	}
	id := f.id()
	f.groups[id] = map[string]any{"id": id, "name": name, "magic_group_type": nil, "member_count": 0}
	f.perms[id] = map[int]map[string]any{}
	for dbID := range f.databases {
		f.perms[id][dbID] = map[string]any{"view-data": "unrestricted", "create-queries": "no"}
	}
	f.collPerms[id] = map[string]string{}
	for cid := range f.collPerms[fakeAllUsers] {
		f.collPerms[id][cid] = "none"
	}
	writeJSON(w, http.StatusOK, f.groups[id])
}

var (
	fakePermTypes = map[string][]string{
		"view-data":      {"unrestricted", "blocked", "legacy-no-self-service"},
		"create-queries": {"query-builder-and-native", "query-builder", "no"},
		"details":        {"yes", "no"},
	}
	staleRevision = map[string]any{"message": "Looks like someone else edited the permissions and your data is out of date. Please fetch new data and try again."}
)

// putPermissionsGraph applies the groups -> databases -> types sent, with
// the revision check and the schema's closed set of types.
func (f *fakeMetabase) putPermissionsGraph(w http.ResponseWriter, r *http.Request, body map[string]any) {
	f.permsPuts = append(f.permsPuts, body)
	if f.conflictOnce {
		f.conflictOnce = false
		f.permsRevision++
	}
	if rev, ok := body["revision"].(float64); !ok || int(rev) != f.permsRevision {
		writeJSON(w, http.StatusConflict, staleRevision)
		return
	}
	groups, ok := body["groups"].(map[string]any)
	if !ok {
		badRequest(w, "groups", "Invalid permissions graph: it must be keyed by group id, then by database id.")
		return
	}
	type change struct {
		gid, dbID int
		kind      string
		value     any
	}
	var changes []change
	for gk, dbs := range groups {
		gid, err := strconv.Atoi(gk)
		if err != nil || f.groups[gid] == nil {
			badRequest(w, "groups", "Invalid permissions graph: it must be keyed by group id.")
			return
		}
		if gid == fakeAdmins {
			writeJSON(w, http.StatusBadRequest, map[string]any{"message": "You cannot create or revoke permissions for the 'Admin' group."})
			return
		}
		for dk, p := range dbs.(map[string]any) {
			dbID, err := strconv.Atoi(dk)
			if err != nil || f.databases[dbID] == nil {
				badRequest(w, "groups", "Invalid permissions graph: permissions for a group must be keyed by database id.")
				return
			}
			for kind, v := range p.(map[string]any) {
				allowed, known := fakePermTypes[kind]
				if _, isMap := v.(map[string]any); !known && kind != "download" && kind != "data-model" {
					badRequest(w, "groups", "Invalid DB permissions: unrecognized permissions for a database.")
					return
				} else if known && !isMap && !contains(allowed, fmt.Sprint(v)) {
					badRequest(w, "groups", fmt.Sprintf("Invalid DB permissions: %v is not a value of %s.", v, kind))
					return
				}
				changes = append(changes, change{gid, dbID, kind, v})
			}
		}
	}
	for _, c := range changes {
		if f.perms[c.gid][c.dbID] == nil {
			f.perms[c.gid][c.dbID] = map[string]any{}
		}
		f.perms[c.gid][c.dbID][c.kind] = c.value
	}
	f.permsRevision++
	if r.URL.Query().Get("skip-graph") == "true" {
		writeJSON(w, http.StatusOK, map[string]any{"revision": f.permsRevision})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"revision": f.permsRevision, "groups": f.perms})
}

func (f *fakeMetabase) collectionGraphJSON() map[string]any {
	groups := map[string]any{}
	for gid, p := range f.collPerms {
		groups[strconv.Itoa(gid)] = p
	}
	return map[string]any{"revision": f.collRevision, "groups": groups}
}

// putCollectionGraph overwrites the parts of the graph present in the
// request and leaves the rest unchanged.
func (f *fakeMetabase) putCollectionGraph(w http.ResponseWriter, r *http.Request, body map[string]any) {
	f.collPermsPuts = append(f.collPermsPuts, body)
	if rev, ok := body["revision"].(float64); !ok || int(rev) != f.collRevision {
		writeJSON(w, http.StatusConflict, staleRevision)
		return
	}
	groups, _ := body["groups"].(map[string]any)
	for gk, colls := range groups {
		gid, err := strconv.Atoi(gk)
		if err != nil || f.groups[gid] == nil {
			badRequest(w, "groups", "the collection graph is keyed by group id")
			return
		}
		for ck, v := range colls.(map[string]any) {
			cid, err := strconv.Atoi(ck)
			if ck != "root" && (err != nil || f.collections[cid] == nil) {
				badRequest(w, "groups", fmt.Sprintf("collection %s does not exist", ck))
				return
			}
			if !contains([]string{"read", "write", "none"}, fmt.Sprint(v)) {
				badRequest(w, "groups", fmt.Sprintf("%v is not read, write or none", v))
				return
			}
			f.collPerms[gid][ck] = v.(string)
		}
	}
	f.collRevision++
	if r.URL.Query().Get("skip_graph") == "true" {
		writeJSON(w, http.StatusOK, map[string]any{"revision": f.collRevision})
		return
	}
	writeJSON(w, http.StatusOK, f.collectionGraphJSON())
}

// mergeInto copies src's keys into dst, normalising JSON numbers to int so
// stored ids compare equal to the ids the fake hands out.
func mergeInto(dst, src map[string]any) {
	for k, v := range src {
		if n, ok := v.(float64); ok && n == float64(int(n)) {
			v = int(n)
		}
		dst[k] = v
	}
}

func toInt(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case float64:
		return int(n)
	case json.Number:
		i, _ := n.Int64()
		return int(i)
	}
	return 0
}

func sortedKeys[V any](m map[int]V) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	return keys
}
