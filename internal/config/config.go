// Package config reads marketplace-etl's settings from the environment into
// one typed Config (the command line binds its flags to the same fields, so
// a flag overrides its variable) and checks every value, so that a bad value
// fails before anything touches the database, with the variable's name and
// what was expected.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v10"

	"github.com/marketplace-etl/marketplace-etl/internal/redact"
)

// DefaultAPIURL is the real Marketplace API endpoint.
const DefaultAPIURL = "http://final-project.simulative.ru/data"

// Config is every setting of a pass, by environment variable.
type Config struct {
	APIURL           string        `env:"MARKETPLACE_API_URL" envDefault:"http://final-project.simulative.ru/data"`
	DatabaseURL      string        `env:"DATABASE_URL"`
	TimezoneName     string        `env:"ETL_TIMEZONE" envDefault:"Europe/Moscow"`
	CatchupDays      int           `env:"ETL_CATCHUP_DAYS" envDefault:"7"`
	MaxRejectRatio   float64       `env:"ETL_MAX_REJECT_RATIO" envDefault:"0.10"`
	HTTPTimeout      time.Duration `env:"ETL_HTTP_TIMEOUT" envDefault:"30s"`
	HTTPBodyTimeout  time.Duration `env:"ETL_HTTP_BODY_TIMEOUT" envDefault:"5m"`
	MaxLineBytes     int           `env:"ETL_MAX_LINE_BYTES" envDefault:"1048576"`
	MaxBodyBytes     int64         `env:"ETL_MAX_BODY_BYTES" envDefault:"268435456"`
	ShutdownGrace    time.Duration `env:"ETL_SHUTDOWN_GRACE" envDefault:"20s"`
	HTTPRetries      int           `env:"ETL_HTTP_RETRIES" envDefault:"5"`
	HTTPBackoff      time.Duration `env:"ETL_HTTP_RETRY_BACKOFF" envDefault:"1s"`
	HTTPMaxBackoff   time.Duration `env:"ETL_HTTP_RETRY_MAX_BACKOFF" envDefault:"30s"`
	StatementTimeout time.Duration `env:"ETL_DB_STATEMENT_TIMEOUT" envDefault:"15m"`
	LockTimeout      time.Duration `env:"ETL_DB_LOCK_TIMEOUT" envDefault:"2m"`
	// MartsLockTimeout bounds the wait for another process updating the marts.
	MartsLockTimeout time.Duration `env:"ETL_MARTS_LOCK_TIMEOUT" envDefault:"5m"`
	// MartsFollow: a pass of several days drains the marts queue in the
	// background while it loads, so that its final update is small.
	MartsFollow bool   `env:"ETL_MARTS_FOLLOW" envDefault:"true"`
	AutoMigrate bool   `env:"ETL_AUTO_MIGRATE" envDefault:"true"`
	LogLevel    string `env:"LOG_LEVEL" envDefault:"info"`
	LogFormat   string `env:"LOG_FORMAT" envDefault:"auto"`

	PushgatewayURL      string        `env:"PUSHGATEWAY_URL"`
	PushgatewayJob      string        `env:"PUSHGATEWAY_JOB" envDefault:"marketplace_etl"`
	PushgatewayUsername string        `env:"PUSHGATEWAY_USERNAME"`
	PushgatewayPassword string        `env:"PUSHGATEWAY_PASSWORD"`
	PushgatewayTimeout  time.Duration `env:"PUSHGATEWAY_TIMEOUT" envDefault:"10s"`
	PushgatewayGrouping string        `env:"PUSHGATEWAY_GROUPING_LABELS"`

	ShardCount int `env:"BACKFILL_SHARD_COUNT" envDefault:"1"`
	ShardIndex int `env:"JOB_COMPLETION_INDEX" envDefault:"0"`

	// Location is TimezoneName, resolved by Load.
	Location *time.Location `env:"-"`
}

// Error is a configuration problem: the caller exits with the usage code.
type Error struct{ msg string }

func (e *Error) Error() string { return e.msg }

// Errorf makes a configuration Error. Errors quote the values they
// refuse, so credentials in them are hidden whatever the variable.
func Errorf(format string, args ...any) error {
	for i, a := range args {
		switch v := a.(type) {
		case string:
			args[i] = redact.String(v) // a whole value: also user:password@host
		case error:
			args[i] = redact.String(v.Error())
		}
	}
	return &Error{msg: fmt.Sprintf(format, args...)}
}

// IsConfigError tells whether err is (or wraps) a configuration Error.
func IsConfigError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// Environ is the process environment as a map.
func Environ() map[string]string { return env.ToMap(os.Environ()) }

// Load reads and checks the process environment.
func Load() (*Config, error) { return LoadFrom(Environ()) }

// LoadFrom reads and checks the given environment.
func LoadFrom(environ map[string]string) (*Config, error) {
	c, err := FromEnv(environ)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// FromEnv fills a Config from environ without checking it, for flags to
// override before Validate. On a value that does not parse it returns the
// error along with the Config, every other field filled.
func FromEnv(environ map[string]string) (*Config, error) {
	var c Config
	return &c, ParseEnv(&c, environ)
}

// Validate checks every value and resolves the time zone.
func (c *Config) Validate() error {
	loc, err := time.LoadLocation(c.TimezoneName)
	if err != nil || c.TimezoneName == "" {
		return Errorf("ETL_TIMEZONE=%q: expected an IANA time zone name such as Europe/Moscow", c.TimezoneName)
	}
	c.Location = loc
	if err := CheckHTTPURL("MARKETPLACE_API_URL", c.APIURL); err != nil {
		return err
	}
	if c.DatabaseURL != "" {
		if err := CheckDatabaseURL(c.DatabaseURL); err != nil {
			return err
		}
	}
	for _, d := range []struct {
		name    string
		value   time.Duration
		max     time.Duration
		example string
	}{
		{"ETL_HTTP_TIMEOUT", c.HTTPTimeout, maxDuration, "30s"},
		{"ETL_HTTP_BODY_TIMEOUT", c.HTTPBodyTimeout, maxDuration, "5m"},
		{"ETL_HTTP_RETRY_BACKOFF", c.HTTPBackoff, maxDuration, "1s"},
		{"ETL_HTTP_RETRY_MAX_BACKOFF", c.HTTPMaxBackoff, maxDuration, "30s"},
		{"ETL_DB_STATEMENT_TIMEOUT", c.StatementTimeout, MaxPostgresDuration, "15m"},
		{"ETL_DB_LOCK_TIMEOUT", c.LockTimeout, MaxPostgresDuration, "2m"},
		{"ETL_MARTS_LOCK_TIMEOUT", c.MartsLockTimeout, maxDuration, "5m"},
		{"ETL_SHUTDOWN_GRACE", c.ShutdownGrace, maxDuration, "20s"},
		{"PUSHGATEWAY_TIMEOUT", c.PushgatewayTimeout, maxDuration, "10s"},
	} {
		if err := CheckDuration(d.name, d.value, d.max, d.example); err != nil {
			return err
		}
	}
	switch {
	case c.HTTPBodyTimeout < c.HTTPTimeout:
		return Errorf("ETL_HTTP_BODY_TIMEOUT=%s: expected a duration not below ETL_HTTP_TIMEOUT (%s): it bounds the whole attempt, headers included", c.HTTPBodyTimeout, c.HTTPTimeout)
	case c.MaxLineBytes < 1024 || c.MaxLineBytes > 16<<20:
		return Errorf("ETL_MAX_LINE_BYTES=%d: expected a number of bytes from 1024 to 16777216 (16 MiB), e.g. 1048576", c.MaxLineBytes)
	case c.MaxBodyBytes < int64(c.MaxLineBytes) || c.MaxBodyBytes > 1<<40:
		return Errorf("ETL_MAX_BODY_BYTES=%d: expected a number of bytes from ETL_MAX_LINE_BYTES (%d) to 1 TiB, e.g. 268435456", c.MaxBodyBytes, c.MaxLineBytes)
	case c.CatchupDays < 0 || c.CatchupDays > 366:
		return Errorf("ETL_CATCHUP_DAYS=%d: expected a whole number of days from 0 to 366", c.CatchupDays)
	case !(c.MaxRejectRatio >= 0 && c.MaxRejectRatio <= 1):
		return Errorf("ETL_MAX_REJECT_RATIO=%v: expected a fraction from 0 to 1, e.g. 0.10", c.MaxRejectRatio)
	case c.HTTPRetries < 0 || c.HTTPRetries > 100:
		return Errorf("ETL_HTTP_RETRIES=%d: expected a number of retries from 0 to 100", c.HTTPRetries)
	case c.HTTPMaxBackoff < c.HTTPBackoff:
		return Errorf("ETL_HTTP_RETRY_MAX_BACKOFF=%s: expected a duration not below ETL_HTTP_RETRY_BACKOFF (%s)", c.HTTPMaxBackoff, c.HTTPBackoff)
	case c.ShardCount < 1:
		return Errorf("BACKFILL_SHARD_COUNT=%d: expected a shard count of at least 1", c.ShardCount)
	case c.ShardIndex < 0:
		return Errorf("JOB_COMPLETION_INDEX=%d: expected a shard index of at least 0", c.ShardIndex)
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "warning", "error":
	default:
		return Errorf("LOG_LEVEL=%q: expected one of debug, info, warn, error", c.LogLevel)
	}
	switch c.LogFormat {
	case "auto", "text", "json":
	default:
		return Errorf("LOG_FORMAT=%q: expected one of auto, text, json", c.LogFormat)
	}
	if c.PushgatewayURL != "" {
		if err := CheckHTTPURL("PUSHGATEWAY_URL", c.PushgatewayURL); err != nil {
			return err
		}
	}
	if _, err := c.GroupingLabels(); err != nil {
		return err
	}
	return nil
}

// MaxPostgresDuration is the longest timeout PostgreSQL accepts
// (2^31-1 milliseconds, about 24.8 days).
const MaxPostgresDuration = (1<<31 - 1) * time.Millisecond

// maxDuration bounds the other durations: a day is already absurd for any
// of them, and a larger value is more likely a typo than a wish.
const maxDuration = 24 * time.Hour

// CheckDuration accepts d from 1ms to max. Below a millisecond is an
// error, not a rounding: PostgreSQL counts whole milliseconds, where 0
// means no timeout at all.
func CheckDuration(name string, d, max time.Duration, example string) error {
	if d < time.Millisecond || d > max {
		return Errorf("%s=%s: expected a duration from 1ms to %s, such as %s", name, d, max, example)
	}
	return nil
}

// GroupingLabels parses PUSHGATEWAY_GROUPING_LABELS ("k=v,k=v").
func (c *Config) GroupingLabels() (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(c.PushgatewayGrouping) == "" {
		return out, nil
	}
	for _, pair := range strings.Split(c.PushgatewayGrouping, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || !validLabelName(k) || v == "" {
			return nil, Errorf("PUSHGATEWAY_GROUPING_LABELS=%q: expected comma-separated name=value pairs with Prometheus label names, e.g. env=prod,team=data", c.PushgatewayGrouping)
		}
		out[k] = v
	}
	return out, nil
}

func validLabelName(s string) bool {
	if s == "" || strings.HasPrefix(s, "__") {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// CheckHTTPURL accepts an absolute http:// or https:// URL; name is the
// variable or flag named in the error.
func CheckHTTPURL(name, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Errorf("%s=%q: expected an absolute http:// or https:// URL", name, redact.String(raw))
	}
	return nil
}

// CheckDatabaseURL accepts a postgres:// URL or a libpq key=value string.
func CheckDatabaseURL(raw string) error {
	if strings.HasPrefix(raw, "postgres://") || strings.HasPrefix(raw, "postgresql://") {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return Errorf("DATABASE_URL=%q: expected postgres://user:password@host:5432/dbname?sslmode=... or libpq key=value pairs", redact.String(raw))
		}
		return nil
	}
	if strings.Contains(raw, "=") && !strings.Contains(raw, "://") {
		return nil
	}
	return Errorf("DATABASE_URL=%q: expected postgres://user:password@host:5432/dbname?sslmode=... or libpq key=value pairs", redact.String(raw))
}

// ParseEnv fills the env-tagged struct *v from environ. A value that does
// not parse, or a variable tagged required (or notEmpty) that is unset (or
// empty), gives a configuration Error of one line naming the variable, its
// value (never a password) and what was expected: the field's `expected`
// tag, else what its type accepts.
//
// One rule for empty values: a variable set to "" is a value like any
// other, valid only where empty is the variable's default (DATABASE_URL,
// PUSHGATEWAY_URL...). Anywhere else it is a configuration error naming
// the variable: caarlos0/env would silently take the default, so a
// MARKETPLACE_API_URL= left empty by mistake loaded from the real API.
func ParseEnv(v any, environ map[string]string) error {
	if err := checkEmpty(reflect.TypeOf(v).Elem(), environ); err != nil {
		return err
	}
	err := env.ParseWithOptions(v, env.Options{Environment: environ})
	if err == nil {
		return nil
	}
	var agg env.AggregateError
	if errors.As(err, &agg) && len(agg.Errors) > 0 {
		err = agg.Errors[0]
	}
	t := reflect.TypeOf(v).Elem()
	var (
		pe     env.ParseError
		notSet env.EnvVarIsNotSetError
		empty  env.EmptyEnvVarError
	)
	switch {
	case errors.As(err, &pe):
		f, _ := t.FieldByName(pe.Name)
		key := envKey(f)
		val := environ[key]
		if key == "DATABASE_URL" || strings.Contains(key, "PASSWORD") {
			val = "xxxxx"
		}
		return Errorf("%s=%q: expected %s", key, val, expected(f))
	case errors.As(err, &notSet):
		return Errorf("%s is not set: expected %s", notSet.Key, expected(fieldByEnv(t, notSet.Key)))
	case errors.As(err, &empty):
		return Errorf("%s is empty: expected %s", empty.Key, expected(fieldByEnv(t, empty.Key)))
	}
	return Errorf("reading configuration from the environment: %v", err)
}

func checkEmpty(t reflect.Type, environ map[string]string) error {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		key, def := envKey(f), f.Tag.Get("envDefault")
		if val, set := environ[key]; key != "" && key != "-" && set && val == "" && def != "" {
			return Errorf("%s=\"\": expected %s, not empty; unset the variable to use the default %q", key, expected(f), def)
		}
	}
	return nil
}

func envKey(f reflect.StructField) string { return strings.Split(f.Tag.Get("env"), ",")[0] }

func fieldByEnv(t reflect.Type, key string) reflect.StructField {
	for i := 0; i < t.NumField(); i++ {
		if f := t.Field(i); envKey(f) == key {
			return f
		}
	}
	return reflect.StructField{Type: reflect.TypeOf("")}
}

// expected describes what the field takes.
func expected(f reflect.StructField) string {
	if e := f.Tag.Get("expected"); e != "" {
		return e
	}
	if f.Type == nil {
		return "a value"
	}
	return describeType(f.Type)
}

func describeType(t reflect.Type) string {
	switch {
	case t == reflect.TypeOf(time.Duration(0)):
		return "a duration such as 30s, 5m or 1h"
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		return "a whole number"
	case t.Kind() == reflect.Float64:
		return "a decimal number such as 0.10"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() == reflect.String:
		return "a value"
	}
	return "a value of type " + t.String()
}
