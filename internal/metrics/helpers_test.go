package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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

// promtoolCheckMetrics runs `promtool check metrics` on an exposition: it
// lints names, units, types and help texts.
func promtoolCheckMetrics(t *testing.T, exposition []byte) {
	t.Helper()
	cmd := exec.Command(toolPath(t, "promtool"), "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s\non:\n%s", err, out, exposition)
	}
}

// toolPath finds the first of names in the repository's bin/ (the pinned
// versions `make tools` installs), then on PATH. A missing tool fails the
// test, so CI cannot pass without it; with -short, which runs no external
// program, the test is skipped here instead.
func toolPath(t *testing.T, names ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("the rest needs %s: runs without -short (make test-go)", names[0])
	}
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(filepath.Dir(file), "..", "..", "bin")
	for _, name := range names {
		if p := filepath.Join(bin, name); fileExists(p) {
			return p
		}
	}
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("none of %v in %s or on PATH: run `make tools`", names, bin)
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// fmtLabels is for messages.
func fmtLabels(l map[string]string) string { return fmt.Sprint(l) }
