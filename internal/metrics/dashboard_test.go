package metrics

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/marketplace-etl/marketplace-etl/internal/etl"
)

const chartFiles = "../../charts/marketplace/files"

// pushedNames runs a successful pass with a marts refresh against a fake
// gateway and returns the name of every series it pushed, histogram
// series (_bucket, _sum, _count) included.
func pushedNames(t *testing.T) map[string]bool {
	t.Helper()
	srv, pushes := fakeGateway(t)
	r, err := New(Options{URL: srv.URL, Job: "j", Run: etl.Run{Mode: "run"}, ExitCode: exitCode, ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	r.Finish(aPass(r), nil, time.Now())
	out := map[string]bool{}
	for _, p := range pushes() {
		for name, mf := range p.fams {
			out[name] = true
			if mf.GetType().String() == "HISTOGRAM" {
				out[name+"_bucket"], out[name+"_sum"], out[name+"_count"] = true, true, true
			}
		}
	}
	return out
}

var ourMetric = regexp.MustCompile(`\bmarketplace_etl_[a-z0-9_]+`)

// checkNames reports every marketplace_etl_ name in expr that the ETL does
// not push: a renamed metric must not leave a blank panel or a silent alert.
func checkNames(t *testing.T, where, expr string, pushed map[string]bool) {
	t.Helper()
	names := ourMetric.FindAllString(expr, -1)
	if len(names) == 0 {
		t.Errorf("%s: the query names no marketplace_etl_ metric: %s", where, expr)
	}
	for _, n := range names {
		if !pushed[n] {
			t.Errorf("%s: %s is not a metric the ETL pushes", where, n)
		}
	}
}

// promtoolCheckExprs has promtool parse every expression, as recording rules.
func promtoolCheckExprs(t *testing.T, exprs map[string]string) {
	t.Helper()
	path := toolPath(t, "promtool")
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	i := 0
	for where, expr := range exprs {
		i++
		q, _ := json.Marshal(expr) // a JSON string is a YAML string
		fmt.Fprintf(&b, "      # %s\n      - record: dashboard:query_%d\n        expr: %s\n", strings.ReplaceAll(where, "\n", " "), i, q)
	}
	file := filepath.Join(t.TempDir(), "dashboard.rules.yaml")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(path, "check", "rules", file).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules on the dashboard's queries: %v\n%s\n%s", err, out, b.String())
	}
}

type dashboardPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	GridPos struct{ X, Y, W, H int } `json:"gridPos"`
}

// The Grafana dashboard the chart ships: valid JSON, every panel reads the
// dashboard's data source variable, and every query parses and names only
// metrics the ETL pushes.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartFiles, "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID        string           `json:"uid"`
		Title      string           `json:"title"`
		Panels     []dashboardPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name string `json:"name"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("grafana-dashboard.json is not valid JSON: %v", err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("the dashboard needs a uid and a title (the sidecar updates it by uid)")
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	for _, v := range []string{"datasource", "namespace", "release"} {
		if !vars[v] {
			t.Errorf("no $%s variable", v)
		}
	}
	pushed := pushedNames(t)
	exprs := map[string]string{}
	ids := map[int]bool{}
	queries := 0
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.X+p.GridPos.W > 24 || p.GridPos.W <= 0 || p.GridPos.H <= 0 {
			t.Errorf("panel %q: gridPos %+v does not fit the 24 columns", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use the ${datasource} variable", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for i, tg := range p.Targets {
			where := fmt.Sprintf("panel %q query %d", p.Title, i)
			checkNames(t, where, tg.Expr, pushed)
			if !strings.Contains(tg.Expr, `release=~"$release"`) {
				t.Errorf("%s does not filter on $release: %s", where, tg.Expr)
			}
			// Grafana's variables as Prometheus sees them with "All" selected.
			exprs[where] = strings.NewReplacer("$namespace", ".*", "$release", ".*").Replace(tg.Expr)
			queries++
		}
	}
	if queries < 10 {
		t.Errorf("%d queries, want the dashboard's panels", queries)
	}
	promtoolCheckExprs(t, exprs)
}

// Every metric the alert rules read is pushed by the ETL.
func TestAlertRulesNameOurMetrics(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartFiles, "alerts.rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	pushed := pushedNames(t)
	found := 0
	for _, n := range ourMetric.FindAllString(string(raw), -1) {
		found++
		if !pushed[n] {
			t.Errorf("alerts.rules.yaml reads %s, which the ETL does not push", n)
		}
	}
	if found == 0 {
		t.Fatal("no marketplace_etl_ metric found in alerts.rules.yaml")
	}
}
