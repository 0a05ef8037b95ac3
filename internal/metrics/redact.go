package metrics

import (
	"errors"
	"strings"

	"github.com/marketplace-etl/marketplace-etl/internal/redact"
)

// redactErr hides credentials in an error's text: push errors quote the
// URL (its password in whatever encoding) and, on a 4xx or 5xx answer, the
// gateway's body, which might echo the basic-auth password.
func redactErr(err error, o Options) error {
	s := redact.String(err.Error())
	if o.Password != "" {
		s = strings.ReplaceAll(s, o.Password, redact.Mask)
	}
	return errors.New(s)
}
