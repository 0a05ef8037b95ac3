// Command chartdocs writes charts/marketplace/README.md from the chart's values.yaml, whose keys
// carry helm-docs style comments ("# -- description", continued on the following "# " lines).
// With -check it only compares, and fails when the README is stale (make test runs that).
//
//	go run ./hack/chartdocs [-check] [-chart charts/marketplace]
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"
)

func main() {
	chart := flag.String("chart", "charts/marketplace", "chart directory")
	check := flag.Bool("check", false, "fail if README.md differs from what would be generated")
	flag.Parse()
	if err := run(*chart, *check); err != nil {
		fmt.Fprintln(os.Stderr, "chartdocs:", err)
		os.Exit(1)
	}
}

func run(chart string, check bool) error {
	values, err := os.ReadFile(filepath.Join(chart, "values.yaml"))
	if err != nil {
		return err
	}
	header, err := os.ReadFile(filepath.Join(chart, "README.header.md"))
	if err != nil {
		return err
	}
	table, err := valuesTable(values)
	if err != nil {
		return err
	}
	want := append(header, table...)
	path := filepath.Join(chart, "README.md")
	if !check {
		return os.WriteFile(path, want, 0o644)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%s is not generated from the current values.yaml: run `go run ./hack/chartdocs`", path)
	}
	return nil
}

var keyLine = regexp.MustCompile(`^(\s*)([A-Za-z0-9_]+):(\s.*)?$`)

type row struct{ key, typ, def, desc string }

// valuesTable lists every documented key with its type and default (from the parsed values).
func valuesTable(src []byte) ([]byte, error) {
	var values map[string]any
	if err := yaml.Unmarshal(src, &values); err != nil {
		return nil, fmt.Errorf("parsing values.yaml: %w", err)
	}
	type level struct {
		indent int
		key    string
	}
	var stack []level
	var desc []string
	inDesc := false
	var rows []row
	sc := bufio.NewScanner(bytes.NewReader(src))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "# --"):
			desc, inDesc = []string{strings.TrimSpace(strings.TrimPrefix(trimmed, "# --"))}, true
			continue
		case inDesc && strings.HasPrefix(trimmed, "#"):
			desc = append(desc, strings.TrimSpace(strings.TrimPrefix(trimmed, "#")))
			continue
		}
		m := keyLine.FindStringSubmatch(line)
		if m == nil {
			inDesc = false
			continue
		}
		indent := len(m[1])
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		stack = append(stack, level{indent, m[2]})
		if !inDesc {
			continue
		}
		inDesc = false
		path := make([]string, len(stack))
		for i, l := range stack {
			path[i] = l.key
		}
		v, ok := lookup(values, path)
		if !ok {
			return nil, fmt.Errorf("values.yaml:%d: %s not found in the parsed values", n, strings.Join(path, "."))
		}
		def, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		rows = append(rows, row{strings.Join(path, "."), typeOf(v), string(def), strings.Join(desc, " ")})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("| Key | Type | Default | Description |\n|-----|------|---------|-------------|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | `%s` | %s |\n", r.key, r.typ, cell(r.def), cell(r.desc))
	}
	return b.Bytes(), nil
}

func lookup(m map[string]any, path []string) (any, bool) {
	var cur any = m
	for _, k := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = mm[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func typeOf(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case bool:
		return "bool"
	case float64:
		return "number"
	case []any:
		return "list"
	case map[string]any:
		return "object"
	}
	return "null"
}

// cell escapes what would break a Markdown table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
