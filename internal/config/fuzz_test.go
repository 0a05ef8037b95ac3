package config

import (
	"strings"
	"testing"
)

// FuzzLoad: any value of any variable either loads or gives one
// configuration error line naming the variable and what was expected; a
// password in a URL variable is never echoed.
func FuzzLoad(f *testing.F) {
	names := []string{"MARKETPLACE_API_URL", "DATABASE_URL", "ETL_TIMEZONE", "ETL_CATCHUP_DAYS", "ETL_MAX_REJECT_RATIO",
		"ETL_HTTP_TIMEOUT", "ETL_HTTP_RETRIES", "ETL_HTTP_RETRY_BACKOFF", "ETL_HTTP_RETRY_MAX_BACKOFF", "ETL_DB_STATEMENT_TIMEOUT",
		"ETL_DB_LOCK_TIMEOUT", "ETL_AUTO_MIGRATE", "LOG_LEVEL", "LOG_FORMAT", "PUSHGATEWAY_URL", "PUSHGATEWAY_TIMEOUT",
		"PUSHGATEWAY_GROUPING_LABELS", "BACKFILL_SHARD_COUNT", "JOB_COMPLETION_INDEX",
		"ETL_HTTP_BODY_TIMEOUT", "ETL_MAX_LINE_BYTES", "ETL_MAX_BODY_BYTES", "ETL_SHUTDOWN_GRACE"}
	for i, v := range []string{"http://api/data", "postgres://u:p4ss@h/db", "Mars/Olympus", "-1", "NaN", "30", "1e3", "-0s",
		"maybe", "LOUD", "ftp://x", "1ns", "env=prod,", "2", "x", "u:p4ss@h", "host=h password=p4ss", "postgres://u:p4ss@h:x/db",
		// issue 13: sub-millisecond, above PostgreSQL's maximum, empty, a token in the API URL
		"500us", "600h", "", "http://api/data?token=p4ss", "host=h password=a p4ss"} {
		f.Add(uint8(i), v)
	}
	for _, v := range []string{"postgres://u:p4ss@h:x/db", "u:p4ss@h", "host=h password=p4ss port=x", "http://u:p4ss@h:x"} {
		f.Add(uint8(1), v)  // DATABASE_URL
		f.Add(uint8(14), v) // PUSHGATEWAY_URL
	}
	f.Fuzz(func(t *testing.T, which uint8, value string) {
		name := names[int(which)%len(names)]
		c, err := LoadFrom(map[string]string{name: value})
		if err == nil {
			if c.Location == nil {
				t.Fatal("loaded without a time zone")
			}
			return
		}
		msg := err.Error()
		if !IsConfigError(err) || !strings.Contains(msg, name) || !strings.Contains(msg, "expected") {
			t.Fatalf("%s=%q: error %q does not name the variable and what was expected", name, value, msg)
		}
		secret := strings.Contains(value, ":p4ss@") || strings.Contains(value, "password=") || strings.Contains(value, "token=")
		leak := strings.Contains(msg, ":p4ss") || strings.Contains(msg, "=p4ss") || strings.Contains(msg, " p4ss")
		if secret && leak {
			t.Fatalf("%s=%q: the password is in the error %q", name, value, msg)
		}
	})
}
