package config

import "testing"

func TestRedactCases(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:secret@h:5432/db?sslmode=disable": "postgres://u:xxxxx@h:5432/db?sslmode=disable",
		"u:p4ss@h":                            "u:xxxxx@h",
		"host=h password=secret user=u":       "host=h password=xxxxx user=u",
		"host=h password='a b\\' c' user=u":   "host=h password=xxxxx user=u",
		"postgres://h/db?password=secret&x=1": "postgres://h/db?password=xxxxx&x=1",
		"postgres://u@h/db":                   "postgres://u@h/db",
		"http://gw:9091":                      "http://gw:9091",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
