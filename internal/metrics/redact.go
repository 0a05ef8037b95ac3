package metrics

import (
	"errors"
	"net/url"
	"strings"

	"github.com/marketplace-etl/marketplace-etl/internal/config"
)

// redact hides a password in the Pushgateway URL before it is logged.
func redact(raw string) string { return config.Redact(raw) }

// redactErr hides the password of the URL and the basic-auth password in an
// error's text: push errors quote the URL and, on a 4xx or 5xx answer, the
// gateway's body.
func redactErr(err error, o Options) error {
	s := err.Error()
	secrets := []string{}
	if o.Password != "" {
		secrets = append(secrets, o.Password)
	}
	if u, perr := url.Parse(o.URL); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			secrets = append(secrets, p, url.QueryEscape(p), url.PathEscape(p))
		}
	}
	for _, sec := range secrets {
		s = strings.ReplaceAll(s, sec, "xxxxx")
	}
	return errors.New(s)
}
