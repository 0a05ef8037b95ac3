package config

import (
	"strings"
	"testing"
)

// TestValuesThatMeantSomethingElse: values that used to be taken silently
// for something else are configuration errors naming the variable.
func TestValuesThatMeantSomethingElse(t *testing.T) {
	for _, c := range []struct{ name, value, want string }{
		{"ETL_DB_LOCK_TIMEOUT", "500us", "from 1ms"},      // was lock_timeout=0: no timeout
		{"ETL_DB_STATEMENT_TIMEOUT", "0.5ms", "from 1ms"}, // the same
		{"ETL_MARTS_LOCK_TIMEOUT", "100us", "from 1ms"},
		{"ETL_DB_STATEMENT_TIMEOUT", "600h", "596h31m23.647s"},
		{"ETL_DB_LOCK_TIMEOUT", "2147483648ms", "596h31m23.647s"}, // PostgreSQL's maximum + 1
		{"ETL_HTTP_TIMEOUT", "1ns", "from 1ms"},
		{"ETL_HTTP_TIMEOUT", "48h", "to 24h0m0s"},
		{"ETL_SHUTDOWN_GRACE", "0s", "from 1ms"},
		{"PUSHGATEWAY_TIMEOUT", "-1s", "from 1ms"},
		{"ETL_HTTP_BODY_TIMEOUT", "10s", "not below ETL_HTTP_TIMEOUT"},
		{"ETL_MAX_LINE_BYTES", "100", "from 1024"},
		{"ETL_MAX_LINE_BYTES", "1073741824", "to 16777216"},
		{"ETL_MAX_BODY_BYTES", "1000", "from ETL_MAX_LINE_BYTES"},
		{"MARKETPLACE_API_URL", "", "unset the variable to use the default"},
		{"ETL_TIMEZONE", "", "unset the variable"},
		{"ETL_HTTP_TIMEOUT", "", "expected a duration"},
		{"ETL_CATCHUP_DAYS", "", "expected a whole number"},
		{"ETL_AUTO_MIGRATE", "", "expected true or false"},
		{"LOG_LEVEL", "", "unset the variable"},
	} {
		_, err := LoadFrom(map[string]string{c.name: c.value})
		if err == nil || !IsConfigError(err) || !strings.HasPrefix(err.Error(), c.name+"=") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s=%q: got %v, want a configuration error naming it and saying %q", c.name, c.value, err, c.want)
		}
	}
}

func TestEmptyIsTheDefaultOnlyWhereTheDefaultIsEmpty(t *testing.T) {
	c, err := LoadFrom(map[string]string{"DATABASE_URL": "", "PUSHGATEWAY_URL": "", "PUSHGATEWAY_PASSWORD": "", "PUSHGATEWAY_GROUPING_LABELS": ""})
	if err != nil || c.DatabaseURL != "" || c.PushgatewayURL != "" {
		t.Fatalf("got %+v, %v", c, err)
	}
}

func TestLimitsDefaults(t *testing.T) {
	c, err := LoadFrom(map[string]string{"ETL_DB_LOCK_TIMEOUT": "1ms"})
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxLineBytes != 1<<20 || c.MaxBodyBytes != 256<<20 || c.HTTPBodyTimeout.String() != "5m0s" || c.ShutdownGrace.String() != "20s" {
		t.Fatalf("defaults %d %d %s %s", c.MaxLineBytes, c.MaxBodyBytes, c.HTTPBodyTimeout, c.ShutdownGrace)
	}
}
