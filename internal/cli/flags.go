package cli

import (
	"fmt"
	"strconv"
	"time"

	"github.com/marketplace-etl/marketplace-etl/internal/config"
	"github.com/marketplace-etl/marketplace-etl/internal/pipeline"
	"github.com/marketplace-etl/marketplace-etl/internal/redact"
)

// Typed flag values: each refuses a bad value while the command line is
// parsed, with what was expected.

// dateFlag is a YYYY-MM-DD business day.
type dateFlag struct {
	t   time.Time
	set bool
}

func (d *dateFlag) Set(s string) error {
	t, err := pipeline.ParseDate(s)
	if err != nil {
		return fmt.Errorf("expected a date as YYYY-MM-DD")
	}
	d.t, d.set = t, true
	return nil
}

func (d *dateFlag) String() string {
	if d == nil || !d.set {
		return ""
	}
	return d.t.Format(time.DateOnly)
}

// intFlag is a whole number of at least min, stored in *p.
type intFlag struct {
	p   *int
	min int
}

func (f intFlag) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < f.min {
		return fmt.Errorf("expected a whole number from %d", f.min)
	}
	*f.p = n
	return nil
}

func (f intFlag) String() string {
	if f.p == nil {
		return ""
	}
	return strconv.Itoa(*f.p)
}

// urlFlag is an absolute http(s) URL, stored in *p.
type urlFlag struct{ p *string }

func (f urlFlag) Set(s string) error {
	if err := config.CheckHTTPURL("", s); err != nil {
		return fmt.Errorf("expected an absolute http:// or https:// URL")
	}
	*f.p = s
	return nil
}

func (f urlFlag) String() string {
	if f.p == nil {
		return ""
	}
	return redact.String(*f.p) // --help shows it as the default
}

// notFlag is a boolean flag that stores its negation in *p: --no-migrate
// sets AutoMigrate to false.
type notFlag struct{ p *bool }

func (f notFlag) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("expected true or false")
	}
	*f.p = !v
	return nil
}

func (f notFlag) String() string {
	if f.p == nil {
		return "false"
	}
	return strconv.FormatBool(!*f.p)
}

func (notFlag) IsBoolFlag() bool { return true }
