// Package redact hides credentials in text that is logged or stored: the
// one rule for every URL and connection string the product prints, and
// for error messages that quote them.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces every hidden value.
const Mask = "xxxxx"

// String hides, anywhere in s:
//   - the password of a URL's user info (everything between the user's
//     colon and the last '@' of the URL, whatever its encoding);
//   - the value of every URL query or fragment parameter, and of every
//     key=value pair (libpq connection strings), whose name, once
//     percent-decoded, says it is a secret: password, pwd, pass, token,
//     secret, key, auth, signature, sig, credential, session;
//   - the password of a scheme-less address (user:password@host).
//
// It errs on the side of hiding too much: a value with a space, unquoted,
// is hidden up to the next key=value pair or the end.
func String(s string) string {
	if loc := urlPattern.FindStringIndex(s); loc != nil && loc[0] == 0 {
		// s is one URL, perhaps malformed: its password may hold spaces.
		s = redactUserinfo(s, strings.Index(s, "://")+3)
	}
	var b strings.Builder
	last := 0
	for _, loc := range urlPattern.FindAllStringIndex(s, -1) {
		b.WriteString(redactPairs(s[last:loc[0]]))
		b.WriteString(redactURL(s[loc[0]:loc[1]]))
		last = loc[1]
	}
	b.WriteString(redactPairs(s[last:]))
	return wordPattern.ReplaceAllStringFunc(b.String(), func(w string) string {
		if loc := urlPattern.FindStringIndex(w); loc != nil && loc[0] == 0 {
			return redactUserinfo(w, strings.Index(w, "://")+3)
		}
		return redactUserinfo(w, 0) // a scheme-less user:password@host, or garbage
	})
}

// wordPattern finds the words of text, URLs included.
var wordPattern = regexp.MustCompile(`[^\s"'<>]+`)

// urlPattern finds URLs in text: a scheme, then anything up to
// whitespace, a quote or an angle bracket.
var urlPattern = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>]*`)

func redactURL(u string) string {
	start := strings.Index(u, "://") + 3
	u = redactUserinfo(u, start)
	// Query and fragment parameters, separated by & or ;.
	i := strings.IndexAny(u, "?#")
	if i < 0 {
		return u
	}
	var b strings.Builder
	b.WriteString(u[:i+1])
	rest := u[i+1:]
	for rest != "" {
		j := strings.IndexAny(rest, "&;#")
		part, sep := rest, ""
		if j >= 0 {
			part, sep, rest = rest[:j], rest[j:j+1], rest[j+1:]
		} else {
			rest = ""
		}
		if name, _, ok := strings.Cut(part, "="); ok && secretName(name) {
			part = name + "=" + Mask
		}
		b.WriteString(part)
		b.WriteString(sep)
	}
	return b.String()
}

// redactUserinfo hides the password of the user info that starts at
// start: between the first ':' and the last '@' before the path.
func redactUserinfo(s string, start int) string {
	at := strings.LastIndex(s, "@")
	if at < start {
		return s
	}
	c := strings.Index(s[start:at], ":")
	if c < 0 {
		return s
	}
	// In a URL a '/' before the '@' ends the authority, unless the
	// password itself holds one: only a ':' before that '/' makes it user
	// info. A scheme-less word is hidden whenever it looks like one.
	if slash := strings.Index(s[start:at], "/"); start > 0 && slash >= 0 && slash < c {
		return s
	}
	return s[:start+c+1] + Mask + s[at:]
}

// keyEquals finds the start of a key=value pair (libpq connection
// strings, messages) outside URLs.
var keyEquals = regexp.MustCompile(`([A-Za-z0-9_.%+-]+)\s*=\s*`)

// nextPair ends an unquoted value: the next key=. libpq ends an unquoted
// value at a space, but a password that holds one must not leak its tail.
var nextPair = regexp.MustCompile(`\s+[A-Za-z0-9_.%+-]+\s*=`)

func redactPairs(s string) string {
	var b strings.Builder
	for {
		loc := keyEquals.FindStringSubmatchIndex(s)
		if loc == nil {
			b.WriteString(s)
			return b.String()
		}
		name := s[loc[2]:loc[3]]
		b.WriteString(s[:loc[1]])
		s = s[loc[1]:]
		switch {
		case hidden(s):
			// Already hidden: what follows is the text around it.
			b.WriteString(Mask)
			s = s[len(Mask):]
		case secretName(name):
			b.WriteString(Mask)
			s = s[valueEnd(s):]
		}
	}
}

// hidden tells whether the value at the start of s is the Mask alone:
// followed by the end, a closing quote or bracket, a separator, or the
// next key=. A password that merely starts like the Mask is not.
func hidden(s string) bool {
	if !strings.HasPrefix(s, Mask) {
		return false
	}
	rest := s[len(Mask):]
	if rest == "" || strings.ContainsRune(`"'&;,)]}`, rune(rest[0])) {
		return true
	}
	loc := nextPair.FindStringIndex(rest)
	return loc != nil && loc[0] == 0
}

// valueEnd is the length of the value at the start of s: a libpq quoted
// value (backslash escapes), or an unquoted one up to nextPair.
func valueEnd(s string) int {
	if strings.HasPrefix(s, "'") {
		for i := 1; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
			case '\'':
				return i + 1
			}
		}
		return len(s)
	}
	if loc := nextPair.FindStringIndex(s); loc != nil {
		return loc[0]
	}
	return len(s)
}

var secretWords = []string{"pass", "pwd", "token", "secret", "key", "auth", "sig", "credential", "session"}

// secretName tells whether a parameter name, percent-decoded, names a
// secret.
func secretName(name string) bool {
	if d, err := url.QueryUnescape(name); err == nil {
		name = d
	}
	name = strings.ToLower(name)
	for _, w := range secretWords {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}
