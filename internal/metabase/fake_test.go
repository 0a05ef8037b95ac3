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

// fakeMetabase is an in-process stand-in for the Metabase endpoints setup
// uses, written from Metabase's API documentation (api/setup, api/session,
// api/database, api/collection, api/card, api/dashboard, Metabase ≥ 0.47):
// the same paths, methods, required body fields, list envelopes and error
// bodies. It is stricter than Metabase where that catches client bugs (an
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
}

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
	}
	// Metabase ships with a sample database; setup must ignore it.
	f.databases[1] = map[string]any{"id": 1, "name": "Sample Database", "engine": "h2", "details": map[string]any{}}
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
	pathID    = regexp.MustCompile(`^/api/(database|collection|card|dashboard)/(\d+)(/[a-z_]+)?$`)
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

	switch r.Method + " " + path {
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
		id := f.id()
		db := map[string]any{"id": id}
		mergeInto(db, body)
		f.databases[id] = db
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
		writeJSON(w, http.StatusOK, c)
		return
	case "POST /api/card":
		f.postCard(w, body)
		return
	case "POST /api/dashboard":
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
	case "PUT database":
		db, ok := f.databases[id]
		if !ok {
			f.notFound(w, r)
			return
		}
		if !f.checkDatabase(w, body) {
			return
		}
		mergeInto(db, body)
		writeJSON(w, http.StatusOK, maskedDB(db))
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

// fieldID numbers the warehouse's columns per database deterministically.
func (f *fakeMetabase) tablesJSON(dbID int) []any {
	var out []any
	n := dbID * 1000
	for ti, t := range f.schema {
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
	d["tabs"] = []any{}
	return d
}

// putDashboard follows Metabase ≥ 0.47: scalar fields are updated when
// present; "dashcards", when present, is the complete new set (positive ids
// edit existing dashcards, negative ids create, missing ones are deleted).
func (f *fakeMetabase) putDashboard(w http.ResponseWriter, r *http.Request, id int, body map[string]any) {
	d, ok := f.dashboards[id]
	if !ok {
		f.notFound(w, r)
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
	var newCards []map[string]any
	if raw, has := body["dashcards"]; has {
		list, ok := raw.([]any)
		if !ok {
			badRequest(w, "dashcards", "value must be an array.")
			return
		}
		existing := map[int]bool{}
		for _, dc := range f.dashcards[id] {
			existing[toInt(dc["id"])] = true
		}
		seen := map[int]bool{}
		for _, x := range list {
			dc, _ := x.(map[string]any)
			dcID, okID := dc["id"].(float64)
			cardID := toInt(dc["card_id"])
			card, cardOK := f.cards[cardID]
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
			case !cardOK:
				badRequest(w, "dashcards", fmt.Sprintf("card %v does not exist", dc["card_id"]))
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
				tags := card["dataset_query"].(map[string]any)["native"].(map[string]any)["template-tags"].(map[string]any)
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
			if dcID < 0 {
				out["id"] = f.id()
			} else {
				out["id"] = int(dcID)
			}
			out["dashboard_id"] = id
			newCards = append(newCards, out)
		}
		f.dashcards[id] = newCards
	}
	for k, v := range body {
		if k != "dashcards" && k != "tabs" {
			d[k] = v
		}
	}
	writeJSON(w, http.StatusOK, f.dashboardJSON(id))
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
