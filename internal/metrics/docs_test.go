package metrics

import (
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/marketplace-etl/marketplace-etl/internal/etl"
)

// docsMetricRow matches a row of the metrics table of docs/metrics.md:
// | `name` | type | labels | meaning |
var docsMetricRow = regexp.MustCompile("^\\| `(marketplace_etl_[a-z_]+)` \\| ([a-z]+) \\|([^|]*)\\| (.*) \\|$")

// The metrics table of docs/metrics.md is the reference for dashboards and
// alerts: it must list exactly what a pass pushes, with each metric's type,
// its label names and every label value the ETL sets up front, and the
// histograms' bucket range.
func TestDocsListEveryPushedMetric(t *testing.T) {
	raw, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ typ, labels, meaning string }
	documented := map[string]row{}
	for _, line := range strings.Split(string(raw), "\n") {
		if m := docsMetricRow.FindStringSubmatch(line); m != nil {
			documented[m[1]] = row{m[2], m[3], m[4]}
		}
	}

	// Every metric name a pass pushes: a successful pass with refreshed
	// marts pushes them all, at its start and at its end.
	srv, pushes := fakeGateway(t)
	r, err := New(Options{URL: srv.URL, Job: "marketplace_etl", Timeout: time.Second, Run: etl.Run{Mode: "run"},
		Version: "v1", ExitCode: exitCode, ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	r.Finish(aPass(r), nil, time.Now())
	pushed := map[string]*dto.MetricFamily{}
	for _, p := range pushes() {
		for n, f := range p.fams {
			pushed[n] = f
		}
	}
	if len(pushed) < 20 {
		t.Fatalf("only %d metrics pushed: %s", len(pushed), names(pushed))
	}

	for name, f := range pushed {
		doc, ok := documented[name]
		if !ok {
			t.Errorf("%s is pushed but not in the metrics table of docs/metrics.md", name)
			continue
		}
		if typ := strings.ToLower(f.GetType().String()); doc.typ != typ {
			t.Errorf("%s: docs say %s, the code pushes a %s", name, doc.typ, typ)
		}
		for _, label := range labelValues(f) {
			if !strings.Contains(doc.labels, "`"+label.name+"`") {
				t.Errorf("%s: label %s is not in the docs' labels column %q", name, label.name, doc.labels)
			}
			for _, v := range label.values {
				if label.name != "version" && !strings.Contains(doc.labels, "`"+v+"`") {
					t.Errorf("%s: value %q of label %s is not in the docs' labels column", name, v, label.name)
				}
			}
		}
		if f.GetType() == dto.MetricType_HISTOGRAM {
			b := f.Metric[0].Histogram.Bucket
			want := "buckets " + fmtSeconds(b[0].GetUpperBound()) + " s to " + fmtSeconds(b[len(b)-1].GetUpperBound()) + " s"
			if !strings.Contains(doc.meaning, want) {
				t.Errorf("%s: the docs do not say %q", name, want)
			}
		}
	}
	for name := range documented {
		if _, ok := pushed[name]; !ok {
			t.Errorf("docs/metrics.md lists %s, which no pass pushes", name)
		}
	}
}

type label struct {
	name   string
	values []string
}

// labelValues lists f's label names with the values its series carry.
func labelValues(f *dto.MetricFamily) []label {
	byName := map[string]map[string]bool{}
	for _, m := range f.Metric {
		for _, lp := range m.Label {
			if byName[lp.GetName()] == nil {
				byName[lp.GetName()] = map[string]bool{}
			}
			byName[lp.GetName()][lp.GetValue()] = true
		}
	}
	var out []label
	for n, vs := range byName {
		l := label{name: n}
		for v := range vs {
			l.values = append(l.values, v)
		}
		sort.Strings(l.values)
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func fmtSeconds(s float64) string { return strconv.FormatFloat(s, 'f', -1, 64) }
