// Package metabase provisions Metabase as code: it completes the first-time
// setup (or logs in), registers the marketplace warehouse through a
// read-only role, and creates or updates one collection of dashboards whose
// cards are native SQL questions on the marts schema. Everything it creates
// carries a stable key in its description, so a second run updates in place
// and objects made by people are never touched.
package metabase

import (
	"context"
	"crypto/sha1"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// collectionKey is the marker key of the one collection setup manages.
const collectionKey = "collection"

// dateParameterID is the id of every dashboard's date filter; any string
// unique within a dashboard will do, and a fixed one keeps URLs stable.
const dateParameterID = "marketplace_date_range"

// Setup applies the dashboards to the Metabase in cfg. A UsageError
// (IsUsageError) means the configuration or the admin credentials are wrong;
// any other error is worth retrying later.
func Setup(ctx context.Context, cfg *Config, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg == nil {
		return usageErrorf("metabase setup: no configuration")
	}
	// A Config may be built by hand, not by LoadConfig: check it here too.
	if err := cfg.validate(); err != nil {
		return err
	}
	dashboards, err := Dashboards()
	if err != nil {
		return fmt.Errorf("loading the dashboard definitions: %w", err)
	}
	interval := cfg.pollInterval
	if interval <= 0 {
		interval = 2 * time.Second
	}
	s := &setup{
		cfg:      cfg,
		log:      log,
		c:        newClient(cfg.URL, cfg.AdminPassword, cfg.WarehousePassword),
		interval: interval,
		deadline: time.Now().Add(cfg.SetupTimeout),
	}
	start := time.Now()
	if err := s.waitHealthy(ctx); err != nil {
		return err
	}
	if err := s.authenticate(ctx); err != nil {
		return err
	}
	dbID, err := s.registerWarehouse(ctx)
	if err != nil {
		return err
	}
	fields, err := s.waitForFields(ctx, dbID, dashboards)
	if err != nil {
		return err
	}
	collID, err := s.ensureCollection(ctx)
	if err != nil {
		return err
	}
	if err := s.applyDashboards(ctx, dbID, collID, fields, dashboards); err != nil {
		return err
	}
	log.Info("metabase setup done", "url", cfg.URL, "collection_id", collID, "dashboards", len(dashboards),
		"created", s.created, "updated", s.updated, "archived", s.archived, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

type setup struct {
	cfg      *Config
	log      *slog.Logger
	c        *client
	interval time.Duration
	deadline time.Time

	created, updated, archived int
}

// sleep waits one poll interval, or fails when ctx ends.
func (s *setup) sleep(ctx context.Context) error {
	t := time.NewTimer(s.interval)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// waitHealthy polls /api/health until Metabase answers {"status":"ok"}: a
// fresh Metabase takes minutes to migrate its own database and answers 503
// meanwhile, and in Kubernetes it may not even be listening yet.
func (s *setup) waitHealthy(ctx context.Context) error {
	var last string
	for attempt := 1; ; attempt++ {
		reqCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var h struct {
			Status string `json:"status"`
		}
		err := s.c.do(reqCtx, http.MethodGet, "/api/health", nil, &h)
		cancel()
		if err == nil && h.Status == "ok" {
			s.log.Info("metabase is ready", "url", s.cfg.URL, "attempts", attempt)
			return nil
		}
		switch {
		case err != nil:
			last = err.Error()
		default:
			last = fmt.Sprintf("status %q", h.Status)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for Metabase at %s: %w", s.cfg.URL, ctx.Err())
		}
		if time.Now().Add(s.interval).After(s.deadline) {
			return fmt.Errorf("Metabase at %s was not ready within MB_SETUP_TIMEOUT=%s (last answer: %s)", s.cfg.URL, s.cfg.SetupTimeout, last)
		}
		if attempt == 1 || attempt%10 == 0 {
			s.log.Info("waiting for metabase", "url", s.cfg.URL, "last", last)
		}
		if err := s.sleep(ctx); err != nil {
			return fmt.Errorf("waiting for Metabase at %s: %w", s.cfg.URL, err)
		}
	}
}

// authenticate completes the first-time setup with the admin from the
// Secret when Metabase has no user yet, and logs in otherwise.
func (s *setup) authenticate(ctx context.Context) error {
	var props struct {
		HasUserSetup bool   `json:"has-user-setup"`
		SetupToken   string `json:"setup-token"`
	}
	if err := s.c.do(ctx, http.MethodGet, "/api/session/properties", nil, &props); err != nil {
		return fmt.Errorf("reading Metabase's session properties: %w", err)
	}
	if !props.HasUserSetup && props.SetupToken != "" {
		body := map[string]any{
			"token": props.SetupToken,
			"user": map[string]any{
				"email":      s.cfg.AdminEmail,
				"password":   s.cfg.AdminPassword,
				"first_name": s.cfg.AdminFirstName,
				"last_name":  s.cfg.AdminLastName,
				"site_name":  s.cfg.SiteName,
			},
			"prefs": map[string]any{
				"site_name":      s.cfg.SiteName,
				"site_locale":    "en",
				"allow_tracking": false,
			},
		}
		var sess struct {
			ID string `json:"id"`
		}
		err := s.c.do(ctx, http.MethodPost, "/api/setup", body, &sess)
		var apiErr *APIError
		switch {
		case err == nil && sess.ID != "":
			s.c.session = sess.ID
			s.log.Info("completed metabase first-time setup", "admin", s.cfg.AdminEmail)
			return nil
		case err == nil:
			return errors.New("completing Metabase's first-time setup: the answer held no session id")
		case errors.As(err, &apiErr) && apiErr.Status == http.StatusForbidden:
			// Someone (another replica of this job, a person) finished the
			// setup between our two requests: log in instead.
			s.log.Info("metabase was set up meanwhile, logging in", "detail", apiErr.Message)
		case errors.As(err, &apiErr) && apiErr.Status == http.StatusBadRequest:
			return usageErrorf("Metabase refused the first-time setup with MB_ADMIN_EMAIL=%q and MB_ADMIN_PASSWORD: %s", s.cfg.AdminEmail, apiErr.Message)
		default:
			return fmt.Errorf("completing Metabase's first-time setup: %w", err)
		}
	}
	return s.login(ctx)
}

func (s *setup) login(ctx context.Context) error {
	var sess struct {
		ID string `json:"id"`
	}
	err := s.c.do(ctx, http.MethodPost, "/api/session",
		map[string]string{"username": s.cfg.AdminEmail, "password": s.cfg.AdminPassword}, &sess)
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusUnauthorized {
		return usageErrorf("Metabase rejected the admin credentials MB_ADMIN_EMAIL=%q / MB_ADMIN_PASSWORD (%s)", s.cfg.AdminEmail, apiErr.Message)
	}
	if err != nil {
		return fmt.Errorf("logging in to Metabase as %s: %w", s.cfg.AdminEmail, err)
	}
	if sess.ID == "" {
		return fmt.Errorf("logging in to Metabase as %s: the answer held no session id", s.cfg.AdminEmail)
	}
	s.c.session = sess.ID
	s.log.Info("logged in to metabase", "admin", s.cfg.AdminEmail)
	return nil
}

// registerWarehouse creates or updates the Metabase database named
// MB_WAREHOUSE_NAME and starts a schema sync, returning its id.
func (s *setup) registerWarehouse(ctx context.Context) (ID, error) {
	var raw json.RawMessage
	if err := s.c.do(ctx, http.MethodGet, "/api/database", nil, &raw); err != nil {
		return 0, fmt.Errorf("listing Metabase databases: %w", err)
	}
	dbs, err := listOf[struct {
		ID   ID     `json:"id"`
		Name string `json:"name"`
	}](raw)
	if err != nil {
		return 0, fmt.Errorf("decoding Metabase's database list: %w", err)
	}
	body := map[string]any{
		"name":   s.cfg.WarehouseName,
		"engine": "postgres",
		"details": map[string]any{
			"host":             s.cfg.WarehouseHost,
			"port":             s.cfg.WarehousePort,
			"dbname":           s.cfg.WarehouseDB,
			"user":             s.cfg.WarehouseUser,
			"password":         s.cfg.WarehousePassword,
			"ssl":              s.cfg.WarehouseSSL,
			"tunnel-enabled":   false,
			"advanced-options": false,
		},
		"is_full_sync":     true,
		"is_on_demand":     false,
		"auto_run_queries": true,
	}
	var db struct {
		ID ID `json:"id"`
	}
	var id ID
	for _, d := range dbs {
		if d.Name == s.cfg.WarehouseName && d.ID > 0 {
			id = d.ID
			break
		}
	}
	where := fmt.Sprintf("%s:%d/%s as %s", s.cfg.WarehouseHost, s.cfg.WarehousePort, s.cfg.WarehouseDB, s.cfg.WarehouseUser)
	if id == 0 {
		// Metabase tests the connection before saving, so a wrong host or
		// role fails here, with Metabase's reason.
		if err := s.c.do(ctx, http.MethodPost, "/api/database", body, &db); err != nil {
			return 0, fmt.Errorf("adding the warehouse %q (%s) to Metabase: %w", s.cfg.WarehouseName, where, err)
		}
		id = db.ID
		s.created++
		s.log.Info("registered warehouse in metabase", "database_id", id, "name", s.cfg.WarehouseName, "host", s.cfg.WarehouseHost, "db", s.cfg.WarehouseDB, "user", s.cfg.WarehouseUser)
	} else {
		if err := s.c.do(ctx, http.MethodPut, fmt.Sprintf("/api/database/%d", id), body, &db); err != nil {
			return 0, fmt.Errorf("updating the warehouse %q (%s) in Metabase: %w", s.cfg.WarehouseName, where, err)
		}
		s.updated++
		s.log.Info("updated warehouse in metabase", "database_id", id, "name", s.cfg.WarehouseName, "host", s.cfg.WarehouseHost, "db", s.cfg.WarehouseDB, "user", s.cfg.WarehouseUser)
	}
	if id <= 0 {
		return 0, errors.New("registering the warehouse in Metabase: the answer held no database id")
	}
	if err := s.c.do(ctx, http.MethodPost, fmt.Sprintf("/api/database/%d/sync_schema", id), map[string]any{}, nil); err != nil {
		return 0, fmt.Errorf("starting Metabase's schema sync of the warehouse: %w", err)
	}
	return id, nil
}

// fieldRef names a column the way a date filter refers to it.
type fieldRef struct{ schema, table, column string }

func (f fieldRef) String() string { return f.schema + "." + f.table + "." + f.column }

// waitForFields waits until Metabase's (asynchronous) sync knows every
// column a date filter points at, and returns their field ids: a field
// filter is bound to a Metabase field id, not to a column name.
func (s *setup) waitForFields(ctx context.Context, dbID ID, dashboards []Dashboard) (map[fieldRef]ID, error) {
	need := map[fieldRef]bool{}
	for _, d := range dashboards {
		for _, c := range d.Cards {
			if t := c.DateTag; t != nil {
				need[fieldRef{t.Schema, t.Table, t.Column}] = true
			}
		}
	}
	if len(need) == 0 {
		return map[fieldRef]ID{}, nil
	}
	for attempt := 1; ; attempt++ {
		var meta struct {
			Tables []struct {
				Schema string `json:"schema"`
				Name   string `json:"name"`
				Fields []struct {
					ID   ID     `json:"id"`
					Name string `json:"name"`
				} `json:"fields"`
			} `json:"tables"`
		}
		if err := s.c.do(ctx, http.MethodGet, fmt.Sprintf("/api/database/%d/metadata?include_hidden=true", dbID), nil, &meta); err != nil {
			return nil, fmt.Errorf("reading the warehouse's metadata from Metabase: %w", err)
		}
		found := map[fieldRef]ID{}
		for _, t := range meta.Tables {
			for _, f := range t.Fields {
				ref := fieldRef{t.Schema, t.Name, f.Name}
				if need[ref] {
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
		if len(missing) == 0 {
			s.log.Info("metabase has synced the marts", "fields", len(found))
			return found, nil
		}
		sort.Strings(missing)
		if time.Now().Add(s.interval).After(s.deadline) {
			return nil, fmt.Errorf("Metabase's sync of the warehouse did not find %s within MB_SETUP_TIMEOUT=%s: have the migrations run, and may MB_WAREHOUSE_USER read schema marts?",
				strings.Join(missing, ", "), s.cfg.SetupTimeout)
		}
		if attempt == 1 || attempt%10 == 0 {
			s.log.Info("waiting for metabase to sync the warehouse", "missing", strings.Join(missing, ","))
		}
		if err := s.sleep(ctx); err != nil {
			return nil, fmt.Errorf("waiting for Metabase's schema sync: %w", err)
		}
	}
}

// ensureCollection finds the collection by its marker (not its name, which
// a person may share or change) and creates or updates it.
func (s *setup) ensureCollection(ctx context.Context) (ID, error) {
	var raw json.RawMessage
	if err := s.c.do(ctx, http.MethodGet, "/api/collection", nil, &raw); err != nil {
		return 0, fmt.Errorf("listing Metabase collections: %w", err)
	}
	colls, err := listOf[struct {
		ID          ID     `json:"id"`
		Description string `json:"description"`
	}](raw)
	if err != nil {
		return 0, fmt.Errorf("decoding Metabase's collection list: %w", err)
	}
	body := map[string]any{
		"name":        s.cfg.CollectionName,
		"description": describe("Dashboards provisioned by marketplace-etl metabase-setup from internal/metabase/dashboards in its repository. Changes made here by hand are overwritten on the next run; save your own questions elsewhere.", collectionKey),
	}
	var id ID
	for _, c := range colls {
		if c.ID > 0 && markerOf(c.Description) == collectionKey && (id == 0 || c.ID < id) {
			id = c.ID
		}
	}
	if id == 0 {
		body["parent_id"] = nil
		var coll struct {
			ID ID `json:"id"`
		}
		if err := s.c.do(ctx, http.MethodPost, "/api/collection", body, &coll); err != nil {
			return 0, fmt.Errorf("creating the Metabase collection %q: %w", s.cfg.CollectionName, err)
		}
		s.created++
		s.log.Info("created metabase collection", "collection_id", coll.ID, "name", s.cfg.CollectionName)
		return coll.ID, nil
	}
	body["archived"] = false
	if err := s.c.do(ctx, http.MethodPut, fmt.Sprintf("/api/collection/%d", id), body, nil); err != nil {
		return 0, fmt.Errorf("updating the Metabase collection %q: %w", s.cfg.CollectionName, err)
	}
	s.updated++
	return id, nil
}

// item is an entry of a collection's item list.
type item struct {
	ID          ID     `json:"id"`
	Model       string `json:"model"`
	Name        string `json:"name"`
	Description string `json:"description"`
}

// ownItems lists the cards and dashboards in the collection that carry our
// marker, by key; extra copies of a key (left by two runs racing) come back
// separately so they can be archived.
func (s *setup) ownItems(ctx context.Context, collID ID) (cards, dashboards map[string]ID, extra []item, err error) {
	var raw json.RawMessage
	path := fmt.Sprintf("/api/collection/%d/items?models=card&models=dashboard", collID)
	if err := s.c.do(ctx, http.MethodGet, path, nil, &raw); err != nil {
		return nil, nil, nil, fmt.Errorf("listing the items of the Metabase collection: %w", err)
	}
	items, err := listOf[item](raw)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("decoding the items of the Metabase collection: %w", err)
	}
	sort.Slice(items, func(i, j int) bool { return items[i].ID < items[j].ID })
	cards, dashboards = map[string]ID{}, map[string]ID{}
	for _, it := range items {
		if it.Description == "" && (it.Model == "card" || it.Model == "dashboard") {
			// Not every Metabase version puts descriptions in the item list;
			// read the object itself (only GET: it may be a person's).
			var full struct {
				Description string `json:"description"`
			}
			if err := s.c.do(ctx, http.MethodGet, fmt.Sprintf("/api/%s/%d", it.Model, it.ID), nil, &full); err != nil {
				return nil, nil, nil, fmt.Errorf("reading %s %d of the Metabase collection: %w", it.Model, it.ID, err)
			}
			it.Description = full.Description
		}
		key := markerOf(it.Description)
		if key == "" {
			continue // made by a person: not ours to touch
		}
		var m map[string]ID
		switch it.Model {
		case "card":
			m = cards
		case "dashboard":
			m = dashboards
		default:
			continue
		}
		if _, dup := m[key]; dup {
			extra = append(extra, it)
			continue
		}
		m[key] = it.ID
	}
	return cards, dashboards, extra, nil
}

func (s *setup) applyDashboards(ctx context.Context, dbID, collID ID, fields map[fieldRef]ID, dashboards []Dashboard) error {
	haveCards, haveDashes, extra, err := s.ownItems(ctx, collID)
	if err != nil {
		return err
	}
	wantCards := map[string]bool{}
	wantDashes := map[string]bool{}
	for _, d := range dashboards {
		wantDashes[d.Key] = true
		cardIDs := map[string]ID{}
		for _, c := range d.Cards {
			wantCards[c.Key] = true
			id, err := s.upsertCard(ctx, haveCards[c.Key], c, dbID, collID, fields)
			if err != nil {
				return err
			}
			cardIDs[c.Key] = id
		}
		if err := s.upsertDashboard(ctx, haveDashes[d.Key], d, collID, cardIDs); err != nil {
			return err
		}
	}
	// Cards and dashboards we made whose definitions were removed from the
	// repository, and duplicates, are archived (not deleted): a person can
	// still restore them from the trash.
	for key, id := range haveDashes {
		if !wantDashes[key] {
			extra = append(extra, item{ID: id, Model: "dashboard", Description: marker(key)})
		}
	}
	for key, id := range haveCards {
		if !wantCards[key] {
			extra = append(extra, item{ID: id, Model: "card", Description: marker(key)})
		}
	}
	for _, it := range extra {
		path := fmt.Sprintf("/api/%s/%d", it.Model, it.ID)
		if err := s.c.do(ctx, http.MethodPut, path, map[string]any{"archived": true}, nil); err != nil {
			return fmt.Errorf("archiving the stale %s %s (id %d): %w", it.Model, markerOf(it.Description), it.ID, err)
		}
		s.archived++
		s.log.Info("archived stale metabase object", "model", it.Model, "id", it.ID, "key", markerOf(it.Description))
	}
	return nil
}

// stableID derives a UUID-shaped id from a name, so template tags keep their
// ids from run to run and saved filter values stay valid.
func stableID(name string) string {
	h := sha1.Sum([]byte("marketplace-etl/" + name))
	h[6] = (h[6] & 0x0f) | 0x50 // version 5
	h[8] = (h[8] & 0x3f) | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// cardBody is the POST/PUT /api/card body of a native SQL question.
func cardBody(c Card, dbID, collID ID, fields map[fieldRef]ID) (map[string]any, error) {
	tags := map[string]any{}
	params := []any{}
	if t := c.DateTag; t != nil {
		fieldID, ok := fields[fieldRef{t.Schema, t.Table, t.Column}]
		if !ok {
			return nil, fmt.Errorf("card %s: Metabase has no field %s.%s.%s", c.Key, t.Schema, t.Table, t.Column)
		}
		tagID := stableID(c.Key + "/" + t.Tag)
		tags[t.Tag] = map[string]any{
			"id":           tagID,
			"name":         t.Tag,
			"display-name": "Date",
			"type":         "dimension",
			"dimension":    []any{"field", int(fieldID), nil},
			"widget-type":  "date/all-options",
			"required":     false,
		}
		params = append(params, map[string]any{
			"id":     tagID,
			"type":   "date/all-options",
			"target": []any{"dimension", []any{"template-tag", t.Tag}},
			"name":   "Date",
			"slug":   t.Tag,
		})
	}
	vis := c.Visualization
	if vis == nil {
		vis = map[string]any{}
	}
	return map[string]any{
		"name":                   c.Name,
		"description":            describe(c.Description, c.Key),
		"display":                c.Display,
		"visualization_settings": vis,
		"collection_id":          int(collID),
		"parameters":             params,
		"dataset_query": map[string]any{
			"type":     "native",
			"database": int(dbID),
			"native": map[string]any{
				"query":         strings.TrimSpace(c.SQL),
				"template-tags": tags,
			},
		},
	}, nil
}

func (s *setup) upsertCard(ctx context.Context, id ID, c Card, dbID, collID ID, fields map[fieldRef]ID) (ID, error) {
	body, err := cardBody(c, dbID, collID, fields)
	if err != nil {
		return 0, err
	}
	if id > 0 {
		body["archived"] = false
		if err := s.c.do(ctx, http.MethodPut, fmt.Sprintf("/api/card/%d", id), body, nil); err != nil {
			return 0, fmt.Errorf("updating the Metabase card %s (id %d): %w", c.Key, id, err)
		}
		s.updated++
		s.log.Debug("updated metabase card", "key", c.Key, "card_id", id)
		return id, nil
	}
	var card struct {
		ID ID `json:"id"`
	}
	if err := s.c.do(ctx, http.MethodPost, "/api/card", body, &card); err != nil {
		return 0, fmt.Errorf("creating the Metabase card %s: %w", c.Key, err)
	}
	if card.ID <= 0 {
		return 0, fmt.Errorf("creating the Metabase card %s: the answer held no id", c.Key)
	}
	s.created++
	s.log.Info("created metabase card", "key", c.Key, "card_id", card.ID)
	return card.ID, nil
}

func (s *setup) upsertDashboard(ctx context.Context, id ID, d Dashboard, collID ID, cardIDs map[string]ID) error {
	params := []any{}
	if d.DateFilter != "" {
		params = append(params, map[string]any{
			"id":        dateParameterID,
			"name":      d.DateFilter,
			"slug":      "date",
			"type":      "date/all-options",
			"sectionId": "date",
		})
	}
	body := map[string]any{
		"name":          d.Name,
		"description":   describe(d.Description, d.Key),
		"collection_id": int(collID),
		"parameters":    params,
	}
	if id == 0 {
		var dash struct {
			ID ID `json:"id"`
		}
		if err := s.c.do(ctx, http.MethodPost, "/api/dashboard", body, &dash); err != nil {
			return fmt.Errorf("creating the Metabase dashboard %s: %w", d.Key, err)
		}
		if dash.ID <= 0 {
			return fmt.Errorf("creating the Metabase dashboard %s: the answer held no id", d.Key)
		}
		id = dash.ID
		s.created++
		s.log.Info("created metabase dashboard", "key", d.Key, "dashboard_id", id)
	} else {
		s.updated++
	}

	// Reuse the ids of dashcards already showing a card, so the update is an
	// edit, not a delete and re-create; new ones get negative ids (Metabase
	// ≥ 0.47's PUT /api/dashboard/:id treats the dashcards array as the
	// complete new state).
	var current struct {
		Dashcards    []dashcardRef `json:"dashcards"`
		OrderedCards []dashcardRef `json:"ordered_cards"` // before 0.47
	}
	if err := s.c.do(ctx, http.MethodGet, fmt.Sprintf("/api/dashboard/%d", id), nil, &current); err != nil {
		return fmt.Errorf("reading the Metabase dashboard %s (id %d): %w", d.Key, id, err)
	}
	existing := map[ID]ID{} // card id -> dashcard id
	for _, dc := range append(current.Dashcards, current.OrderedCards...) {
		if dc.CardID > 0 {
			if _, seen := existing[dc.CardID]; !seen {
				existing[dc.CardID] = dc.ID
			}
		}
	}
	dashcards := make([]any, 0, len(d.Cards))
	next := -1
	for _, c := range d.Cards {
		cardID := cardIDs[c.Key]
		dcID, ok := existing[cardID]
		if !ok {
			dcID = ID(next)
			next--
		}
		mappings := []any{}
		if c.DateTag != nil {
			mappings = append(mappings, map[string]any{
				"parameter_id": dateParameterID,
				"card_id":      int(cardID),
				"target":       []any{"dimension", []any{"template-tag", c.DateTag.Tag}},
			})
		}
		dashcards = append(dashcards, map[string]any{
			"id":                     int(dcID),
			"card_id":                int(cardID),
			"col":                    c.Position.Col,
			"row":                    c.Position.Row,
			"size_x":                 c.Position.Width,
			"size_y":                 c.Position.Height,
			"series":                 []any{},
			"visualization_settings": map[string]any{},
			"parameter_mappings":     mappings,
		})
	}
	body["archived"] = false
	body["dashcards"] = dashcards
	if err := s.c.do(ctx, http.MethodPut, fmt.Sprintf("/api/dashboard/%d", id), body, nil); err != nil {
		return fmt.Errorf("updating the Metabase dashboard %s (id %d): %w", d.Key, id, err)
	}
	s.log.Info("metabase dashboard ready", "key", d.Key, "cards", len(d.Cards), "url", dashboardURL(s.cfg.URL, id))
	return nil
}

type dashcardRef struct {
	ID     ID `json:"id"`
	CardID ID `json:"card_id"`
}

// dashboardURL is where a person finds a dashboard, for the logs.
func dashboardURL(base string, id ID) string {
	u, err := url.JoinPath(base, "dashboard", fmt.Sprint(id))
	if err != nil {
		return ""
	}
	return u
}
