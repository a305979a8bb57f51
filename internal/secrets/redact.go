package secrets

import (
	"bytes"
	"regexp"
	"sort"
	"strings"
)

// Redactor removes secrets from text meant for other eyes (a bug report):
// each value it was given, wherever it appears, and whatever has the shape
// of a secret whatever its source (PEM private keys, SCRAM verifiers,
// pg_hba's LDAP and RADIUS secrets, password=/token= pairs, JSON Web
// Tokens). Both runtimes' reports use it.
type Redactor struct {
	values [][]byte
}

// MinRedactedLen is the length below which a value is not searched for:
// a short value (a port, "app") would erase unrelated text and protects
// nothing (a password pgward generates is far longer).
const MinRedactedLen = 8

// Add registers a secret value, and each of its lines (a pgpass line).
func (r *Redactor) Add(v []byte) {
	if len(bytes.TrimSpace(v)) < MinRedactedLen {
		return
	}
	r.values = append(r.values, v)
	for line := range bytes.SplitSeq(v, []byte("\n")) {
		if l := bytes.TrimSpace(line); len(l) >= MinRedactedLen && len(l) != len(v) {
			r.values = append(r.values, l)
		}
	}
	// Longest first, so a value containing another goes whole.
	sort.SliceStable(r.values, func(i, j int) bool { return len(r.values[i]) > len(r.values[j]) })
}

var (
	privateKeyRE    = regexp.MustCompile(`(?s)-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|\z)`)
	scramVerifierRE = regexp.MustCompile(`SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+`)
	hbaSecretRE     = regexp.MustCompile(`(?i)\b(ldapbindpasswd|radiussecrets)=("[^"]*"|\S+)`)
	passwordKVRE    = regexp.MustCompile(`(?i)\b(password)=('[^']*'|\S+)`)
	// secretFieldRE: "password": "x", token: x, api_key=x in JSON, YAML,
	// logs and URLs' query strings.
	secretFieldRE = regexp.MustCompile(`(?i)((?:\b|_)(?:pass(?:word|wd)?|secret|token|api[_-]?key|access[_-]?key|secret[_-]?key|client[_-]?secret))("?[ \t]*[:=][ \t]*)("[^"]*"|'[^']*'|[^\s,;&"'}\]]+)`)
	// jwtRE: a JSON Web Token, as a service account's.
	jwtRE = regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*`)
	// bearerRE: an Authorization header's credential.
	bearerRE = regexp.MustCompile(`(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}`)
)

// Redact returns b without the registered values and secret shapes.
func (r *Redactor) Redact(b []byte) []byte {
	for _, v := range r.values {
		b = bytes.ReplaceAll(b, v, []byte("<redacted>"))
	}
	b = privateKeyRE.ReplaceAll(b, []byte("<redacted private key>"))
	b = scramVerifierRE.ReplaceAll(b, []byte("<redacted verifier>"))
	b = hbaSecretRE.ReplaceAll(b, []byte("$1=<redacted>"))
	b = passwordKVRE.ReplaceAll(b, []byte("$1=<redacted>"))
	b = jwtRE.ReplaceAll(b, []byte("<redacted token>"))
	b = bearerRE.ReplaceAll(b, []byte("$1 <redacted>"))
	return secretFieldRE.ReplaceAllFunc(b, func(m []byte) []byte {
		sub := secretFieldRE.FindSubmatch(m)
		if string(sub[3]) == `"<redacted>"` || string(sub[3]) == "<redacted>" {
			return m
		}
		return append(append(append([]byte{}, sub[1]...), sub[2]...), "<redacted>"...)
	})
}

// SecretLookingName reports whether a name (an environment variable's, an
// annotation's, a key's) says its value is a secret.
func SecretLookingName(name string) bool {
	n := strings.ToLower(name)
	for _, w := range []string{"pass", "pwd", "secret", "token", "key", "credential", "auth"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}
