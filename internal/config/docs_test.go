package config

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// The README's configuration table is the operator's reference: every
// variable of Config is in it with its default, and it names no variable
// Config does not read.
func TestREADMEListsEveryVariableWithItsDefault(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n## Configuration\n")
	if !ok {
		t.Fatal("README.md has no Configuration section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	rows := map[string]string{} // variable -> its table row
	varName := regexp.MustCompile("`([A-Z][A-Z0-9_]+)`")
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " | ")
		for _, m := range varName.FindAllStringSubmatch(first, -1) {
			rows[m[1]] = line
		}
	}
	if len(rows) == 0 {
		t.Fatal("no variable rows found in the README's Configuration table")
	}
	typ := reflect.TypeOf(Config{})
	read := map[string]bool{}
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		name := envKey(f)
		if name == "" || name == "-" {
			continue
		}
		read[name] = true
		row, ok := rows[name]
		switch {
		case !ok:
			t.Errorf("%s (Config.%s) is not in the README's Configuration table", name, f.Name)
		case f.Tag.Get("envDefault") != "" && !strings.Contains(row, "`"+f.Tag.Get("envDefault")+"`"):
			t.Errorf("the README's row of %s does not give its default `%s`: %s", name, f.Tag.Get("envDefault"), row)
		}
	}
	for name := range rows {
		if !read[name] {
			t.Errorf("the README's Configuration table lists %s, which Config does not read", name)
		}
	}
}
