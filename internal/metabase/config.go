package metabase

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/marketplace-etl/marketplace-etl/internal/config"
	"github.com/marketplace-etl/marketplace-etl/internal/redact"
)

// Config is everything metabase-setup needs, by environment variable.
type Config struct {
	URL            string        `env:"MB_URL,required,notEmpty" expected:"Metabase's base URL, e.g. http://metabase:3000"`
	AdminEmail     string        `env:"MB_ADMIN_EMAIL,required,notEmpty" expected:"the Metabase admin's email address"`
	AdminPassword  string        `env:"MB_ADMIN_PASSWORD,required,notEmpty" expected:"the Metabase admin's password"`
	AdminFirstName string        `env:"MB_ADMIN_FIRST_NAME" envDefault:"Marketplace"`
	AdminLastName  string        `env:"MB_ADMIN_LAST_NAME" envDefault:"Admin"`
	SiteName       string        `env:"MB_SITE_NAME" envDefault:"Marketplace analytics"`
	SetupTimeout   time.Duration `env:"MB_SETUP_TIMEOUT" envDefault:"10m"`

	// The warehouse as Metabase connects to it: a read-only role, never
	// the ETL's owner role, so a dashboard can never change the data.
	WarehouseName     string `env:"MB_WAREHOUSE_NAME" envDefault:"Marketplace"`
	WarehouseHost     string `env:"MB_WAREHOUSE_HOST,required,notEmpty" expected:"the PostgreSQL host Metabase connects to"`
	WarehousePort     int    `env:"MB_WAREHOUSE_PORT" envDefault:"5432"`
	WarehouseDB       string `env:"MB_WAREHOUSE_DB,required,notEmpty" expected:"the PostgreSQL database name"`
	WarehouseUser     string `env:"MB_WAREHOUSE_USER,required,notEmpty" expected:"the read-only PostgreSQL role for Metabase"`
	WarehousePassword string `env:"MB_WAREHOUSE_PASSWORD,required,notEmpty" expected:"the read-only role's password"`
	// WarehouseSSL and WarehouseSSLMode are sent to Metabase only when set:
	// left unset, Metabase keeps what it chose (SSL when the server offers
	// it), and a later run never turns SSL off.
	WarehouseSSL     string `env:"MB_WAREHOUSE_SSL"`
	WarehouseSSLMode string `env:"MB_WAREHOUSE_SSLMODE"`

	CollectionName string `env:"MB_COLLECTION_NAME" envDefault:"Marketplace analytics"`
	// AnalystsGroup is the Metabase group that may write SQL on the
	// warehouse; setup creates it when missing and never changes its members.
	AnalystsGroup string `env:"MB_ANALYSTS_GROUP" envDefault:"Analysts"`
	// AnonTracking is Metabase's anon-tracking-enabled setting, kept at this
	// value on every run.
	AnonTracking bool `env:"MB_ANON_TRACKING" envDefault:"false"`

	// ssl is WarehouseSSL parsed, nil when unset.
	ssl *bool

	// pollInterval is the pause between readiness and sync polls; tests
	// shorten it.
	pollInterval time.Duration
}

// UsageError is a problem the operator must fix in the configuration or the
// Secret (bad value, rejected admin credentials): retrying cannot help, and
// the CLI exits with the usage code 2.
type UsageError struct{ msg string }

func (e *UsageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &UsageError{msg: fmt.Sprintf(format, args...)}
}

// IsUsageError tells whether err is (or wraps) a UsageError.
func IsUsageError(err error) bool {
	var u *UsageError
	return errors.As(err, &u)
}

// LoadConfig reads and checks the given environment (os.Environ as a map).
func LoadConfig(environ map[string]string) (*Config, error) {
	var c Config
	if err := config.ParseEnv(&c, environ); err != nil {
		return nil, &UsageError{msg: err.Error()}
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	c.pollInterval = 2 * time.Second
	return &c, nil
}

func (c *Config) validate() error {
	u, err := url.Parse(c.URL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil:
		return usageErrorf("MB_URL=%q: expected an absolute http:// or https:// URL without credentials, e.g. http://metabase:3000", redact.String(c.URL))
	case !validEmail(c.AdminEmail):
		return usageErrorf("MB_ADMIN_EMAIL=%q: expected an email address such as admin@example.com", c.AdminEmail)
	case strings.TrimSpace(c.AdminFirstName) == "" || strings.TrimSpace(c.AdminLastName) == "":
		return usageErrorf("MB_ADMIN_FIRST_NAME/MB_ADMIN_LAST_NAME: expected non-blank names")
	case strings.TrimSpace(c.SiteName) == "":
		return usageErrorf("MB_SITE_NAME: expected a non-blank site name")
	case c.SetupTimeout <= 0:
		return usageErrorf("MB_SETUP_TIMEOUT=%s: expected a positive duration such as 10m", c.SetupTimeout)
	case strings.TrimSpace(c.WarehouseName) == "":
		return usageErrorf("MB_WAREHOUSE_NAME: expected a non-blank name for the database in Metabase")
	case c.WarehousePort < 1 || c.WarehousePort > 65535:
		return usageErrorf("MB_WAREHOUSE_PORT=%d: expected a TCP port from 1 to 65535", c.WarehousePort)
	case strings.TrimSpace(c.CollectionName) == "":
		return usageErrorf("MB_COLLECTION_NAME: expected a non-blank collection name")
	case strings.TrimSpace(c.AnalystsGroup) == "" || c.AnalystsGroup == allUsersName || c.AnalystsGroup == "Administrators":
		return usageErrorf("MB_ANALYSTS_GROUP=%q: expected the name of a group of its own (not All Users or Administrators), e.g. Analysts", c.AnalystsGroup)
	}
	return c.parseSSL()
}

// sslModes are the ssl-mode values of Metabase's postgres driver.
var sslModes = []string{"allow", "prefer", "require", "verify-ca", "verify-full"}

func (c *Config) parseSSL() error {
	c.ssl = nil
	if c.WarehouseSSL != "" {
		on, err := strconv.ParseBool(c.WarehouseSSL)
		if err != nil {
			return usageErrorf("MB_WAREHOUSE_SSL=%q: expected true or false, or unset to let Metabase use SSL when the server offers it", c.WarehouseSSL)
		}
		c.ssl = &on
	}
	if c.WarehouseSSLMode == "" {
		return nil
	}
	if !slices.Contains(sslModes, c.WarehouseSSLMode) {
		return usageErrorf("MB_WAREHOUSE_SSLMODE=%q: expected one of %s", c.WarehouseSSLMode, strings.Join(sslModes, ", "))
	}
	if c.ssl != nil && !*c.ssl {
		return usageErrorf("MB_WAREHOUSE_SSLMODE=%s with MB_WAREHOUSE_SSL=false: an SSL mode needs SSL; unset one of them", c.WarehouseSSLMode)
	}
	on := true
	c.ssl = &on
	return nil
}

func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && strings.Contains(s, "@")
}
