package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// families decodes an exposition (a push body or a scrape) by name.
func families(t *testing.T, r io.Reader, h http.Header) map[string]*dto.MetricFamily {
	t.Helper()
	dec := expfmt.NewDecoder(r, expfmt.ResponseFormat(h))
	out := map[string]*dto.MetricFamily{}
	for {
		mf := &dto.MetricFamily{}
		err := dec.Decode(mf)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("decoding metrics: %v", err)
		}
		out[mf.GetName()] = mf
	}
}

// sample finds the one sample of name whose labels include want; ok is
// false when there is none.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) (*dto.Metric, bool) {
	mf := fams[name]
	if mf == nil {
		return nil, false
	}
	for _, m := range mf.Metric {
		have := map[string]string{}
		for _, lp := range m.Label {
			have[lp.GetName()] = lp.GetValue()
		}
		match := true
		for k, v := range want {
			if have[k] != v {
				match = false
			}
		}
		if match {
			return m, true
		}
	}
	return nil, false
}

// value is the value of a gauge or untyped sample.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	m, ok := sample(fams, name, labels)
	if !ok {
		t.Fatalf("no sample %s%v; have %s", name, labels, names(fams))
	}
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	t.Fatalf("%s is neither a gauge, a counter nor untyped", name)
	return 0
}

func names(fams map[string]*dto.MetricFamily) string {
	var ns []string
	for n := range fams {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return strings.Join(ns, " ")
}

// text renders the families whose name starts with prefix in the text
// format.
func text(t *testing.T, fams map[string]*dto.MetricFamily, prefix string) []byte {
	t.Helper()
	var ns []string
	for n := range fams {
		if strings.HasPrefix(n, prefix) {
			ns = append(ns, n)
		}
	}
	sort.Strings(ns)
	var b bytes.Buffer
	for _, n := range ns {
		if _, err := expfmt.MetricFamilyToText(&b, fams[n]); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// promtoolCheckMetrics runs `promtool check metrics` (Debian's prometheus
// package) on an exposition: it lints names, units, types and help texts.
// A missing promtool fails the test, so CI cannot pass without the check.
func promtoolCheckMetrics(t *testing.T, exposition []byte) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (Debian package prometheus): %v", err)
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s\non:\n%s", err, out, exposition)
	}
}

// fmtLabels is for messages.
func fmtLabels(l map[string]string) string { return fmt.Sprint(l) }
