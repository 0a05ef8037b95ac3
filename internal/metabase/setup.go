// Package metabase provisions Metabase as code: it completes the first-time
// setup (or logs in), registers the marketplace warehouse through a
// read-only role with only the marts schema synced, sets the warehouse's and
// the collection's permissions to a documented default, and creates or
// updates one collection of dashboards whose cards are native SQL questions
// on the marts schema. Everything it creates carries a stable key in its
// description, so a second run updates in place and objects made by people
// are never touched.
//
// plan.go decides (pure: desired and current state in, requests out),
// api.go holds the typed API calls, and this file applies them in order.
package metabase

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// collectionKey is the marker key of the one collection setup manages.
const collectionKey = "collection"

// anonTrackingSetting is the setting Metabase reads for anonymous usage
// tracking (POST /api/setup's prefs.allow_tracking is ignored by 0.56).
const anonTrackingSetting = "anon-tracking-enabled"

// Setup applies the dashboards to the Metabase in cfg. A UsageError
// (IsUsageError) means the configuration or the admin credentials are wrong;
// any other error is worth retrying later. Every dashboard is attempted even
// when one fails; the error then names each failure.
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
	defer s.logout()

	s.attempt("tracking setting", s.applyTracking(ctx))
	dbID, err := s.applyWarehouse(ctx)
	if err != nil {
		return s.stop(err)
	}
	fields, err := s.waitForFields(ctx, dbID, dashboards)
	if err != nil {
		return s.stop(err)
	}
	collID, err := s.applyCollection(ctx)
	if err != nil {
		return s.stop(err)
	}
	s.attempt("permissions", s.applyPermissions(ctx, dbID, collID))
	s.applyDashboards(ctx, dbID, collID, fields, dashboards)

	if len(s.failures) > 0 {
		log.Error("metabase setup finished with failures", "failures", len(s.failures),
			"created", s.created, "updated", s.updated, "archived", s.archived, "took", time.Since(start).Round(time.Millisecond))
		return &stepsError{s.failures}
	}
	log.Info("metabase setup done", "url", cfg.URL, "collection_id", collID, "dashboards", len(dashboards),
		"created", s.created, "updated", s.updated, "unchanged", s.unchanged, "archived", s.archived, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

type setup struct {
	cfg      *Config
	log      *slog.Logger
	c        *client
	interval time.Duration
	deadline time.Time

	created, updated, unchanged, archived int
	// failures are the steps that failed without stopping the run.
	failures []error
}

// stepsError is the failures of a run that went on after them, on one line.
type stepsError struct{ failures []error }

func (e *stepsError) Error() string {
	msgs := make([]string, len(e.failures))
	for i, err := range e.failures {
		msgs[i] = err.Error()
	}
	return fmt.Sprintf("metabase setup: %d step(s) failed: %s", len(e.failures), strings.Join(msgs, "; "))
}

func (e *stepsError) Unwrap() []error { return e.failures }

// stop is the error of a step the run cannot go on after, with the
// failures recorded before it.
func (s *setup) stop(err error) error {
	if len(s.failures) == 0 {
		return err
	}
	return &stepsError{append(s.failures, err)}
}

// attempt records the failure of a step the run goes on after.
func (s *setup) attempt(step string, err error) {
	if err != nil {
		s.log.Error("metabase setup step failed", "step", step, "err", err)
		s.failures = append(s.failures, err)
	}
}

// poll calls check until it reports done, an error, the context ends or
// MB_SETUP_TIMEOUT passes; what says what is not done yet (in the log and
// the errors), and check's last message why.
func (s *setup) poll(ctx context.Context, what string, check func(ctx context.Context) (done bool, last string, err error)) error {
	for attempt := 1; ; attempt++ {
		done, last, err := check(ctx)
		if err != nil || done {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
		if time.Now().Add(s.interval).After(s.deadline) {
			return fmt.Errorf("%s within MB_SETUP_TIMEOUT=%s (last: %s)", what, s.cfg.SetupTimeout, last)
		}
		if attempt == 1 || attempt%10 == 0 {
			s.log.Info("waiting for metabase", "pending", what, "last", last)
		}
		t := time.NewTimer(s.interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}

// waitHealthy polls /api/health until Metabase answers {"status":"ok"}: a
// fresh Metabase takes minutes to migrate its own database and answers 503
// meanwhile, and in Kubernetes it may not even be listening yet.
func (s *setup) waitHealthy(ctx context.Context) error {
	attempts := 0
	err := s.poll(ctx, fmt.Sprintf("Metabase at %s was not ready", s.cfg.URL), func(ctx context.Context) (bool, string, error) {
		attempts++
		reqCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		status, err := s.c.health(reqCtx)
		switch {
		case err != nil:
			return false, err.Error(), nil
		case status != "ok":
			return false, fmt.Sprintf("status %q", status), nil
		}
		return true, "", nil
	})
	if err == nil {
		s.log.Info("metabase is ready", "url", s.cfg.URL, "attempts", attempts)
	}
	return err
}

// authenticate completes the first-time setup with the admin from the
// Secret when Metabase has no user yet, and logs in otherwise.
func (s *setup) authenticate(ctx context.Context) error {
	props, err := s.c.sessionProperties(ctx)
	if err != nil {
		return fmt.Errorf("reading Metabase's session properties: %w", err)
	}
	if !props.HasUserSetup && props.SetupToken != "" {
		session, err := s.c.setup(ctx, setupRequest{
			Token: props.SetupToken,
			User: setupUser{
				Email: s.cfg.AdminEmail, Password: s.cfg.AdminPassword,
				FirstName: s.cfg.AdminFirstName, LastName: s.cfg.AdminLastName, SiteName: s.cfg.SiteName,
			},
			Prefs: setupPrefs{SiteName: s.cfg.SiteName, SiteLocale: "en"},
		})
		var apiErr *APIError
		switch {
		case err == nil && session != "":
			s.c.session = session
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
	session, err := s.c.login(ctx, s.cfg.AdminEmail, s.cfg.AdminPassword)
	var apiErr *APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusUnauthorized:
		return usageErrorf("Metabase rejected the admin credentials MB_ADMIN_EMAIL=%q / MB_ADMIN_PASSWORD (%s)", s.cfg.AdminEmail, apiErr.Message)
	case err != nil:
		return fmt.Errorf("logging in to Metabase as %s: %w", s.cfg.AdminEmail, err)
	case session == "":
		return fmt.Errorf("logging in to Metabase as %s: the answer held no session id", s.cfg.AdminEmail)
	}
	s.c.session = session
	s.log.Info("logged in to metabase", "admin", s.cfg.AdminEmail)
	return nil
}

// logout ends the session, even when the run failed or was cancelled.
func (s *setup) logout() {
	if s.c.session == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.c.logout(ctx); err != nil {
		s.log.Warn("logging out of metabase", "err", err)
		return
	}
	s.c.session = ""
}

// applyTracking keeps anon-tracking-enabled at MB_ANON_TRACKING, writing it
// only when it differs.
func (s *setup) applyTracking(ctx context.Context) error {
	have, err := s.c.setting(ctx, anonTrackingSetting)
	if err != nil {
		return fmt.Errorf("reading Metabase's %s setting: %w", anonTrackingSetting, err)
	}
	want, _ := json.Marshal(s.cfg.AnonTracking)
	if jsonEqual(have, want) || (!s.cfg.AnonTracking && jsonEqual(have, []byte("null"))) {
		return nil
	}
	if err := s.c.setSetting(ctx, anonTrackingSetting, s.cfg.AnonTracking); err != nil {
		return fmt.Errorf("setting Metabase's %s to %t (MB_ANON_TRACKING): %w", anonTrackingSetting, s.cfg.AnonTracking, err)
	}
	s.updated++
	s.log.Info("set metabase setting", "setting", anonTrackingSetting, "value", s.cfg.AnonTracking)
	return nil
}

// applyWarehouse creates or updates the Metabase database named
// MB_WAREHOUSE_NAME and starts a schema sync, returning its id.
func (s *setup) applyWarehouse(ctx context.Context) (ID, error) {
	dbs, err := s.c.databases(ctx)
	if err != nil {
		return 0, fmt.Errorf("listing Metabase databases: %w", err)
	}
	var id ID
	for _, d := range dbs {
		if d.Name == s.cfg.WarehouseName && d.ID > 0 {
			id = d.ID
			break
		}
	}
	where := fmt.Sprintf("%s:%d/%s as %s", s.cfg.WarehouseHost, s.cfg.WarehousePort, s.cfg.WarehouseDB, s.cfg.WarehouseUser)
	logAttrs := []any{"name", s.cfg.WarehouseName, "host", s.cfg.WarehouseHost, "db", s.cfg.WarehouseDB, "user", s.cfg.WarehouseUser}
	if id == 0 {
		db, err := s.c.createDatabase(ctx, planDatabaseCreate(s.cfg))
		if err != nil {
			return 0, fmt.Errorf("adding the warehouse %q (%s) to Metabase: %w", s.cfg.WarehouseName, where, err)
		}
		if db.ID <= 0 {
			return 0, errors.New("registering the warehouse in Metabase: the answer held no database id")
		}
		id = db.ID
		s.created++
		s.log.Info("registered warehouse in metabase", append([]any{"database_id", id}, logAttrs...)...)
	} else {
		current, err := s.c.database(ctx, id)
		if err != nil {
			return 0, fmt.Errorf("reading the warehouse %q (id %d) from Metabase: %w", s.cfg.WarehouseName, id, err)
		}
		req, changed := planDatabaseUpdate(s.cfg, current.Details)
		if err := s.c.updateDatabase(ctx, id, req); err != nil {
			return 0, fmt.Errorf("updating the warehouse %q (%s) in Metabase: %w", s.cfg.WarehouseName, where, err)
		}
		if len(changed) > 0 {
			s.updated++
			s.log.Info("updated warehouse in metabase", append([]any{"database_id", id, "changed", strings.Join(changed, ",")}, logAttrs...)...)
		} else {
			s.unchanged++
		}
	}
	if err := s.c.syncSchema(ctx, id); err != nil {
		return 0, fmt.Errorf("starting Metabase's schema sync of the warehouse: %w", err)
	}
	return id, nil
}

// waitForFields waits until Metabase's (asynchronous) sync knows every
// column a date filter points at, and returns their field ids: a field
// filter is bound to a Metabase field id, not to a column name.
func (s *setup) waitForFields(ctx context.Context, dbID ID, dashboards []Dashboard) (map[fieldRef]ID, error) {
	need := neededFields(dashboards)
	var found map[fieldRef]ID
	err := s.poll(ctx, "Metabase's sync of the warehouse did not find the marts' date columns", func(ctx context.Context) (bool, string, error) {
		meta, err := s.c.metadata(ctx, dbID)
		if err != nil {
			return false, "", fmt.Errorf("reading the warehouse's metadata from Metabase: %w", err)
		}
		var missing []string
		found, missing = findFields(meta, need)
		if len(missing) > 0 {
			return false, "missing " + strings.Join(missing, ", ") +
				" (have the migrations run, and may MB_WAREHOUSE_USER read schema marts?)", nil
		}
		return true, "", nil
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("metabase has synced the marts", "fields", len(found))
	return found, nil
}

// applyCollection finds the collection by its marker (not its name, which
// a person may share or change) and creates or updates it.
func (s *setup) applyCollection(ctx context.Context) (ID, error) {
	colls, err := s.c.collections(ctx)
	if err != nil {
		return 0, fmt.Errorf("listing Metabase collections: %w", err)
	}
	req := collectionRequest{
		Name:        s.cfg.CollectionName,
		Description: describe("Dashboards provisioned by marketplace-etl metabase-setup from internal/metabase/dashboards in its repository. Changes made here by hand are overwritten on the next run; save your own questions elsewhere.", collectionKey),
	}
	var id ID
	for _, c := range colls {
		if cid, ok := c.ID.numeric(); ok && cid > 0 && markerOf(c.Description) == collectionKey && (id == 0 || cid < id) {
			id = cid
		}
	}
	if id == 0 {
		id, err = s.c.createCollection(ctx, req)
		if err != nil {
			return 0, fmt.Errorf("creating the Metabase collection %q: %w", s.cfg.CollectionName, err)
		}
		s.created++
		s.log.Info("created metabase collection", "collection_id", id, "name", s.cfg.CollectionName)
		return id, nil
	}
	notArchived := false
	req.Archived = &notArchived
	if err := s.c.updateCollection(ctx, id, req); err != nil {
		return 0, fmt.Errorf("updating the Metabase collection %q: %w", s.cfg.CollectionName, err)
	}
	s.updated++
	return id, nil
}

// applyPermissions sets the warehouse's data permissions and the
// collection's permissions for All Users and the analysts group.
func (s *setup) applyPermissions(ctx context.Context, dbID, collID ID) error {
	list, err := s.c.groups(ctx)
	if err != nil {
		return fmt.Errorf("listing Metabase permission groups: %w", err)
	}
	g := findGroups(list, s.cfg.AnalystsGroup)
	if g.allUsers == 0 {
		return errors.New("setting Metabase permissions: no All Users group in GET /api/permissions/group")
	}
	if g.analysts == 0 {
		created, err := s.c.createGroup(ctx, s.cfg.AnalystsGroup)
		if err != nil {
			return fmt.Errorf("creating the Metabase group %q (MB_ANALYSTS_GROUP): %w", s.cfg.AnalystsGroup, err)
		}
		g.analysts = created.ID
		s.created++
		s.log.Info("created metabase group", "group_id", g.analysts, "name", s.cfg.AnalystsGroup)
	}
	err = applyGraph(ctx, s, "data permissions of the warehouse",
		func(ctx context.Context) (dataGraph, error) { return s.c.dataGraph(ctx, dbID) },
		func(graph dataGraph) *dataGraphUpdate { return planDataPermissions(graph, dbID, g) },
		s.c.putDataGraph)
	if err != nil {
		return err
	}
	return applyGraph(ctx, s, "permissions of the collection", s.c.collectionGraph,
		func(graph collectionGraph) *collectionGraph { return planCollectionPermissions(graph, collID, g) },
		s.c.putCollectionGraph)
}

// applyGraph reads a permissions graph, plans and PUTs the differences.
// Metabase refuses a PUT whose revision is stale (409: someone changed
// permissions meanwhile); the graph is then read and planned once more.
func applyGraph[G, U any](ctx context.Context, s *setup, what string, read func(context.Context) (G, error), plan func(G) *U, put func(context.Context, U) error) error {
	attempt := func() error {
		graph, err := read(ctx)
		if err != nil {
			return fmt.Errorf("reading Metabase's %s: %w", what, err)
		}
		upd := plan(graph)
		if upd == nil {
			return nil
		}
		if err := put(ctx, *upd); err != nil {
			return fmt.Errorf("setting Metabase's %s: %w", what, err)
		}
		s.updated++
		s.log.Info("set metabase permissions", "of", what)
		return nil
	}
	err := attempt()
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusConflict {
		err = attempt()
	}
	return err
}

// collectionItems lists the collection's items, reading a description the
// list left out (some Metabase versions do).
func (s *setup) collectionItems(ctx context.Context, collID ID) ([]item, error) {
	items, err := s.c.collectionItems(ctx, collID)
	if err != nil {
		return nil, fmt.Errorf("listing the items of the Metabase collection: %w", err)
	}
	for i, it := range items {
		if it.Description != "" || (it.Model != "card" && it.Model != "dashboard") {
			continue
		}
		desc, err := s.c.description(ctx, it.Model, it.ID)
		if err != nil {
			return nil, fmt.Errorf("reading %s %d of the Metabase collection: %w", it.Model, it.ID, err)
		}
		items[i].Description = desc
	}
	return items, nil
}

// applyDashboards applies every dashboard, going on after a failure, then
// archives stale objects. Failures are recorded in s.failures.
func (s *setup) applyDashboards(ctx context.Context, dbID, collID ID, fields map[fieldRef]ID, dashboards []Dashboard) {
	items, err := s.collectionItems(ctx, collID)
	if err != nil {
		s.attempt("collection items", err)
		return
	}
	o := planItems(items, dashboards)
	for _, d := range dashboards {
		if err := s.applyDashboard(ctx, d, o, dbID, collID, fields); err != nil {
			s.attempt("dashboard "+d.Key, fmt.Errorf("dashboard %s: %w", d.Key, err))
		}
	}
	// Cards and dashboards we made whose definitions were removed from the
	// repository, and duplicates, are archived (not deleted): a person can
	// still restore them from the trash.
	for _, it := range o.archive {
		if err := s.c.archive(ctx, it.Model, it.ID); err != nil {
			s.attempt("archive", fmt.Errorf("archiving the stale %s %s (id %d): %w", it.Model, markerOf(it.Description), it.ID, err))
			continue
		}
		s.archived++
		s.log.Info("archived stale metabase object", "model", it.Model, "id", it.ID, "key", markerOf(it.Description))
	}
}

func (s *setup) applyDashboard(ctx context.Context, d Dashboard, o owned, dbID, collID ID, fields map[fieldRef]ID) error {
	cardIDs := map[string]ID{}
	for _, c := range d.Cards {
		id, err := s.applyCard(ctx, o.cards[c.Key], c, dbID, collID, fields)
		if err != nil {
			return err
		}
		cardIDs[c.Key] = id
	}
	req := planDashboard(d, collID)
	id := o.dashboards[d.Key]
	var current dashboardState
	var err error
	if id == 0 {
		current, err = s.c.createDashboard(ctx, req)
		if err == nil && current.ID <= 0 {
			err = errors.New("the answer held no id")
		}
		if err != nil {
			return fmt.Errorf("creating the Metabase dashboard: %w", err)
		}
		id = current.ID
		s.created++
		s.log.Info("created metabase dashboard", "key", d.Key, "dashboard_id", id)
	} else {
		// The answer to this PUT is the dashboard's current dashcards and
		// tabs: no GET, which Metabase would count as a view.
		notArchived := false
		req.Archived = &notArchived
		current, err = s.c.updateDashboard(ctx, id, req)
		if err != nil {
			return fmt.Errorf("updating the Metabase dashboard (id %d): %w", id, err)
		}
	}
	layout, err := planDashcards(d, cardIDs, current)
	if err != nil {
		return err
	}
	if layout == nil {
		s.unchanged++
	} else {
		if _, err := s.c.updateDashboard(ctx, id, layout); err != nil {
			return fmt.Errorf("laying out the cards of the Metabase dashboard (id %d): %w", id, err)
		}
		s.updated++
	}
	s.log.Info("metabase dashboard ready", "key", d.Key, "cards", len(d.Cards), "tabs", len(current.Tabs), "url", dashboardURL(s.cfg.URL, id))
	return nil
}

func (s *setup) applyCard(ctx context.Context, id ID, c Card, dbID, collID ID, fields map[fieldRef]ID) (ID, error) {
	req, err := planCard(c, dbID, collID, fields)
	if err != nil {
		return 0, err
	}
	if id > 0 {
		notArchived := false
		req.Archived = &notArchived
		if err := s.c.updateCard(ctx, id, req); err != nil {
			return 0, fmt.Errorf("updating the Metabase card %s (id %d): %w", c.Key, id, err)
		}
		s.updated++
		s.log.Debug("updated metabase card", "key", c.Key, "card_id", id)
		return id, nil
	}
	id, err = s.c.createCard(ctx, req)
	if err != nil {
		return 0, fmt.Errorf("creating the Metabase card %s: %w", c.Key, err)
	}
	s.created++
	s.log.Info("created metabase card", "key", c.Key, "card_id", id)
	return id, nil
}

// dashboardURL is where a person finds a dashboard, for the logs.
func dashboardURL(base string, id ID) string {
	u, err := url.JoinPath(base, "dashboard", fmt.Sprint(id))
	if err != nil {
		return ""
	}
	return u
}
