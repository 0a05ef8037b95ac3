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
	"regexp"
	"strings"
	"time"

	"github.com/caarlos0/env/v10"
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
	HTTPRetries      int           `env:"ETL_HTTP_RETRIES" envDefault:"5"`
	HTTPBackoff      time.Duration `env:"ETL_HTTP_RETRY_BACKOFF" envDefault:"1s"`
	HTTPMaxBackoff   time.Duration `env:"ETL_HTTP_RETRY_MAX_BACKOFF" envDefault:"30s"`
	StatementTimeout time.Duration `env:"ETL_DB_STATEMENT_TIMEOUT" envDefault:"15m"`
	LockTimeout      time.Duration `env:"ETL_DB_LOCK_TIMEOUT" envDefault:"2m"`
	// MartsLockTimeout bounds the wait for another process updating the marts.
	MartsLockTimeout time.Duration `env:"ETL_MARTS_LOCK_TIMEOUT" envDefault:"5m"`
	AutoMigrate      bool          `env:"ETL_AUTO_MIGRATE" envDefault:"true"`
	LogLevel         string        `env:"LOG_LEVEL" envDefault:"info"`
	LogFormat        string        `env:"LOG_FORMAT" envDefault:"auto"`

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

// Errorf makes a configuration Error.
func Errorf(format string, args ...any) error { return &Error{msg: fmt.Sprintf(format, args...)} }

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
	switch {
	case c.CatchupDays < 0 || c.CatchupDays > 366:
		return Errorf("ETL_CATCHUP_DAYS=%d: expected a whole number of days from 0 to 366", c.CatchupDays)
	case !(c.MaxRejectRatio >= 0 && c.MaxRejectRatio <= 1):
		return Errorf("ETL_MAX_REJECT_RATIO=%v: expected a fraction from 0 to 1, e.g. 0.10", c.MaxRejectRatio)
	case c.HTTPTimeout <= 0:
		return Errorf("ETL_HTTP_TIMEOUT=%s: expected a positive duration such as 30s", c.HTTPTimeout)
	case c.HTTPRetries < 0 || c.HTTPRetries > 100:
		return Errorf("ETL_HTTP_RETRIES=%d: expected a number of retries from 0 to 100", c.HTTPRetries)
	case c.HTTPBackoff <= 0:
		return Errorf("ETL_HTTP_RETRY_BACKOFF=%s: expected a positive duration such as 1s", c.HTTPBackoff)
	case c.HTTPMaxBackoff < c.HTTPBackoff:
		return Errorf("ETL_HTTP_RETRY_MAX_BACKOFF=%s: expected a duration not below ETL_HTTP_RETRY_BACKOFF (%s)", c.HTTPMaxBackoff, c.HTTPBackoff)
	case c.StatementTimeout <= 0:
		return Errorf("ETL_DB_STATEMENT_TIMEOUT=%s: expected a positive duration such as 15m", c.StatementTimeout)
	case c.LockTimeout <= 0:
		return Errorf("ETL_DB_LOCK_TIMEOUT=%s: expected a positive duration such as 2m", c.LockTimeout)
	case c.MartsLockTimeout <= 0:
		return Errorf("ETL_MARTS_LOCK_TIMEOUT=%s: expected a positive duration such as 5m", c.MartsLockTimeout)
	case c.ShardCount < 1:
		return Errorf("BACKFILL_SHARD_COUNT=%d: expected a shard count of at least 1", c.ShardCount)
	case c.ShardIndex < 0:
		return Errorf("JOB_COMPLETION_INDEX=%d: expected a shard index of at least 0", c.ShardIndex)
	case c.PushgatewayTimeout <= 0:
		return Errorf("PUSHGATEWAY_TIMEOUT=%s: expected a positive duration such as 10s", c.PushgatewayTimeout)
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
		return Errorf("%s=%q: expected an absolute http:// or https:// URL", name, Redact(raw))
	}
	return nil
}

// CheckDatabaseURL accepts a postgres:// URL or a libpq key=value string.
func CheckDatabaseURL(raw string) error {
	if strings.HasPrefix(raw, "postgres://") || strings.HasPrefix(raw, "postgresql://") {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return Errorf("DATABASE_URL=%q: expected postgres://user:password@host:5432/dbname?sslmode=... or libpq key=value pairs", Redact(raw))
		}
		return nil
	}
	if strings.Contains(raw, "=") && !strings.Contains(raw, "://") {
		return nil
	}
	return Errorf("DATABASE_URL=%q: expected postgres://user:password@host:5432/dbname?sslmode=... or libpq key=value pairs", Redact(raw))
}

// Redact hides the password of a URL or libpq connection string, also in
// malformed ones (they end up in error messages too): anything between the
// user's colon and the last '@', and every password=... value.
func Redact(raw string) string {
	out := raw
	if at := strings.LastIndex(out, "@"); at >= 0 {
		start := 0
		if i := strings.Index(out, "://"); i >= 0 && i < at {
			start = i + 3
		}
		if c := strings.Index(out[start:at], ":"); c >= 0 {
			out = out[:start+c+1] + "xxxxx" + out[at:]
		}
	}
	return passwordParam.ReplaceAllString(out, "${1}xxxxx")
}

// passwordParam matches password=value in libpq key=value strings (quoted
// values included) and in URL query strings.
var passwordParam = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]*)`)

// ParseEnv fills the env-tagged struct *v from environ. A value that does
// not parse, or a variable tagged required (or notEmpty) that is unset (or
// empty), gives a configuration Error of one line naming the variable, its
// value (never a password) and what was expected: the field's `expected`
// tag, else what its type accepts.
func ParseEnv(v any, environ map[string]string) error {
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
	case t.Kind() == reflect.Int:
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
