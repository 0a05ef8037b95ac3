package metabase

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func baseEnv() map[string]string {
	return map[string]string{
		"MB_URL":                "http://metabase:3000",
		"MB_ADMIN_EMAIL":        "admin@example.com",
		"MB_ADMIN_PASSWORD":     "Admin-pass-1",
		"MB_WAREHOUSE_HOST":     "postgres",
		"MB_WAREHOUSE_DB":       "marketplace",
		"MB_WAREHOUSE_USER":     "marketplace_readonly",
		"MB_WAREHOUSE_PASSWORD": "Readonly-pass-1",
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := LoadConfig(baseEnv())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SetupTimeout != 10*time.Minute || cfg.WarehouseName != "Marketplace" || cfg.WarehousePort != 5432 ||
		cfg.ssl != nil || cfg.WarehouseSSLMode != "" || cfg.CollectionName != "Marketplace analytics" || cfg.SiteName == "" ||
		cfg.AdminFirstName == "" || cfg.AnalystsGroup != "Analysts" || cfg.AnonTracking {
		t.Errorf("defaults: %+v", cfg)
	}
}

// TestLoadConfigSSL: SSL is left to Metabase unless set; a mode implies it.
func TestLoadConfigSSL(t *testing.T) {
	for _, c := range []struct {
		ssl, mode string
		want      string // "", "true" or "false"
	}{
		{want: ""},
		{ssl: "true", want: "true"},
		{ssl: "false", want: "false"},
		{mode: "verify-full", want: "true"},
		{ssl: "true", mode: "require", want: "true"},
	} {
		env := baseEnv()
		env["MB_WAREHOUSE_SSL"], env["MB_WAREHOUSE_SSLMODE"] = c.ssl, c.mode
		cfg, err := LoadConfig(env)
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		got := ""
		if cfg.ssl != nil {
			got = fmt.Sprint(*cfg.ssl)
		}
		if got != c.want || wantDetails(cfg).SSLMode != c.mode {
			t.Errorf("MB_WAREHOUSE_SSL=%q MB_WAREHOUSE_SSLMODE=%q: ssl %q, details %+v", c.ssl, c.mode, got, wantDetails(cfg))
		}
	}
	env := baseEnv()
	env["MB_WAREHOUSE_SSL"], env["MB_WAREHOUSE_SSLMODE"] = "false", "require"
	if _, err := LoadConfig(env); !IsUsageError(err) || !strings.Contains(err.Error(), "MB_WAREHOUSE_SSLMODE=require with MB_WAREHOUSE_SSL=false") {
		t.Errorf("an SSL mode with SSL off: got %v", err)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	cases := []struct {
		set, unset string // "KEY=value" to set, KEY to remove
		want       string
	}{
		{unset: "MB_URL", want: "MB_URL is not set: expected Metabase's base URL"},
		{set: "MB_URL=", want: "MB_URL is empty: expected Metabase's base URL"},
		{set: "MB_WAREHOUSE_PASSWORD=", want: "MB_WAREHOUSE_PASSWORD is empty: expected the read-only role's password"},
		{set: "MB_URL=metabase:3000", want: "MB_URL="},
		{set: "MB_URL=http://user:pw@metabase:3000", want: "MB_URL="},
		{unset: "MB_ADMIN_EMAIL", want: "MB_ADMIN_EMAIL"},
		{set: "MB_ADMIN_EMAIL=admin", want: "MB_ADMIN_EMAIL=\"admin\""},
		{unset: "MB_ADMIN_PASSWORD", want: "MB_ADMIN_PASSWORD"},
		{set: "MB_SETUP_TIMEOUT=soon", want: "MB_SETUP_TIMEOUT=\"soon\": expected a duration"},
		{set: "MB_SETUP_TIMEOUT=0s", want: "MB_SETUP_TIMEOUT"},
		{set: "MB_WAREHOUSE_PORT=http", want: "MB_WAREHOUSE_PORT=\"http\": expected a whole number"},
		{set: "MB_WAREHOUSE_PORT=70000", want: "MB_WAREHOUSE_PORT=70000"},
		{set: "MB_WAREHOUSE_SSL=maybe", want: "MB_WAREHOUSE_SSL=\"maybe\": expected true or false"},
		{unset: "MB_WAREHOUSE_HOST", want: "MB_WAREHOUSE_HOST"},
		{unset: "MB_WAREHOUSE_DB", want: "MB_WAREHOUSE_DB"},
		{unset: "MB_WAREHOUSE_USER", want: "MB_WAREHOUSE_USER"},
		{unset: "MB_WAREHOUSE_PASSWORD", want: "MB_WAREHOUSE_PASSWORD"},
		{set: "MB_COLLECTION_NAME= ", want: "MB_COLLECTION_NAME"},
		{set: "MB_WAREHOUSE_SSLMODE=strict", want: "MB_WAREHOUSE_SSLMODE=\"strict\": expected one of allow, prefer, require, verify-ca, verify-full"},
		{set: "MB_ANALYSTS_GROUP=All Users", want: "MB_ANALYSTS_GROUP=\"All Users\""},
		{set: "MB_ANALYSTS_GROUP=Administrators", want: "MB_ANALYSTS_GROUP"},
		{set: "MB_ANON_TRACKING=off", want: "MB_ANON_TRACKING=\"off\": expected true or false"},
	}
	for _, c := range cases {
		env := baseEnv()
		if c.unset != "" {
			delete(env, c.unset)
		}
		if k, v, ok := strings.Cut(c.set, "="); ok {
			env[k] = v
		}
		_, err := LoadConfig(env)
		if err == nil {
			t.Errorf("%s%s: no error", c.set, c.unset)
			continue
		}
		if !IsUsageError(err) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s%s: got %q, want a one-line usage error containing %q", c.set, c.unset, err, c.want)
		}
		for _, secret := range []string{"Admin-pass-1", "Readonly-pass-1", ":pw@"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error leaks a secret: %v", err)
			}
		}
	}
}

func TestDashboardDefinitions(t *testing.T) {
	ds, err := Dashboards()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range ds {
		names = append(names, d.Name)
	}
	if got := strings.Join(names, ", "); got != "Sales, Clients, Assortment, Data quality" {
		t.Errorf("dashboards: %s", got)
	}
	for _, d := range ds {
		for _, c := range d.Cards {
			if c.Description == "" {
				t.Errorf("card %s has no description", c.Key)
			}
		}
	}
}

func TestDashboardDefinitionsChecked(t *testing.T) {
	good := "key: x\nname: X\ndate_filter: Period\ncards:\n" +
		"  - key: x.a\n    name: A\n    description: a\n    display: scalar\n    position: {col: 0, row: 0, width: 4, height: 3}\n" +
		"    date_tag: {tag: day, schema: marts, table: t, column: day}\n    sql: SELECT 1 FROM marts.t WHERE {{day}}\n"
	if _, err := loadDashboards(fstest.MapFS{"d/x.yaml": {Data: []byte(good)}}, "d"); err != nil {
		t.Fatalf("valid definition rejected: %v", err)
	}
	bad := map[string]string{
		"unknown field":     strings.Replace(good, "display:", "dispaly:", 1),
		"undeclared tag":    strings.Replace(good, "{{day}}", "{{day}} AND {{other}}", 1),
		"unused tag":        strings.Replace(good, "WHERE {{day}}", "", 1),
		"off the grid":      strings.Replace(good, "col: 0", "col: 22", 1),
		"key prefix":        strings.Replace(good, "key: x.a", "key: y.a", 1),
		"no filter to wire": strings.Replace(good, "date_filter: Period\n", "", 1),
	}
	for name, text := range bad {
		if _, err := loadDashboards(fstest.MapFS{"d/x.yaml": {Data: []byte(text)}}, "d"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	overlap := good + "  - key: x.b\n    name: B\n    display: table\n    position: {col: 2, row: 1, width: 4, height: 3}\n    sql: SELECT 2\n"
	if _, err := loadDashboards(fstest.MapFS{"d/x.yaml": {Data: []byte(overlap)}}, "d"); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Errorf("overlapping cards: %v", err)
	}
}

func TestMarker(t *testing.T) {
	d := describe("Revenue over the period.", "sales.revenue_kpi")
	if markerOf(d) != "sales.revenue_kpi" || markerOf("a person's card") != "" {
		t.Errorf("marker round trip failed: %q", d)
	}
	if stableID("a") != stableID("a") || stableID("a") == stableID("b") || len(stableID("a")) != 36 {
		t.Errorf("stableID: %s", stableID("a"))
	}
}

// TestDocsDescribeEveryCard keeps docs/metabase.md in step with the
// definitions: every dashboard and card is described there by name.
func TestDocsDescribeEveryCard(t *testing.T) {
	raw, err := os.ReadFile("../../docs/metabase.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	ds, err := Dashboards()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if !strings.Contains(doc, "### "+d.Name) {
			t.Errorf("docs/metabase.md has no section for dashboard %s", d.Name)
		}
		for _, c := range d.Cards {
			if !strings.Contains(doc, "**"+c.Name+"**") {
				t.Errorf("docs/metabase.md does not describe card %q (%s)", c.Name, c.Key)
			}
		}
	}
}
