package redact

import (
	"net/url"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	for in, want := range map[string]string{
		// URLs and DSNs, whole
		"postgres://u:secret@h:5432/db?sslmode=disable": "postgres://u:xxxxx@h:5432/db?sslmode=disable",
		"postgres://u:p%40ss%2Fw@h/db":                  "postgres://u:xxxxx@h/db",
		"postgres://u:p@ss/w@h/db":                      "postgres://u:xxxxx@h/db",
		"postgres://h/db?password=secret&x=1":           "postgres://h/db?password=xxxxx&x=1",
		"postgres://h/db?pass%77ord=secret":             "postgres://h/db?pass%77ord=xxxxx",
		"http://api/data?token=t0k3n&date=2023-01-01":   "http://api/data?token=xxxxx&date=2023-01-01",
		"http://api/data?API_KEY=k3y;x=1":               "http://api/data?API_KEY=xxxxx;x=1",
		"http://api/data#access_token=t0k3n":            "http://api/data#access_token=xxxxx",
		"http://alice:s3cr3t@api/data?token=t0k3n":      "http://alice:xxxxx@api/data?token=xxxxx",
		"http://gw:9091":                                "http://gw:9091",
		"http://gw:9091/metrics/job/x":                  "http://gw:9091/metrics/job/x",
		"postgres://u@h/db":                             "postgres://u@h/db",
		"u:p4ss@h":                                      "u:xxxxx@h",
		"u:p4ss@h:5432/db":                              "u:xxxxx@h:5432/db",
		"host=h password=secret user=u":                 "host=h password=xxxxx user=u",
		"host=h password='a b\\' c' user=u":             "host=h password=xxxxx user=u",
		"host=h password=a b user=u":                    "host=h password=xxxxx user=u",
		"host=h password=a b c":                         "host=h password=xxxxx",
		"host=h password = s3 user=u":                   "host=h password = xxxxx user=u",
		"host=h sslmode=require":                        "host=h sslmode=require",
		// in error text
		`Put "http://u:p%23ss@gw:9091/metrics/job/etl": dial tcp: refused`: `Put "http://u:xxxxx@gw:9091/metrics/job/etl": dial tcp: refused`,
		`connecting with host=h password=s3 dbname=d: refused`:             `connecting with host=h password=xxxxx dbname=d: refused`,
		"HTTP 503: Сервис недоступен":                                      "HTTP 503: Сервис недоступен",
		"2023-01-05: 3 of 10 lines rejected":                               "2023-01-05: 3 of 10 lines rejected",
	} {
		if got := String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzString: a password put in any of the places a credential goes never
// survives, and redacting twice changes nothing more.
func FuzzString(f *testing.F) {
	for _, s := range []string{"p4ss", "a b", "p@ss/w", "p%40ss", "x'y", "a&b=c", "Пароль"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, pw string) {
		if len(pw) < 4 || strings.ContainsAny(pw, "'\\\"<>\x7f") || strings.ContainsFunc(pw, func(r rune) bool { return r < ' ' }) || strings.Contains(pw, "://") || strings.TrimSpace(pw) != pw || strings.Contains(pw, "=") || strings.Contains(Mask, pw) {
			return
		}
		for _, in := range []string{
			"postgres://u:" + pw + "@h/db",
			"http://h/data?token=" + url.QueryEscape(pw) + "&date=1",
			"host=h password='" + pw + "' user=u",
			"host=h password=" + pw + " user=u",
			`Get "http://u:` + strings.ReplaceAll(pw, " ", "%20") + `@h/x": EOF`,
		} {
			out := String(in)
			if strings.Contains(out, pw) || strings.Contains(out, url.QueryEscape(pw)) || strings.Contains(out, strings.ReplaceAll(pw, " ", "%20")) {
				t.Fatalf("String(%q) = %q keeps the password", in, out)
			}
			if String(out) != out {
				t.Fatalf("String is not idempotent on %q", out)
			}
		}
	})
}
