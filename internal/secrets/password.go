package secrets

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode"
)

// PasswordLength is the length of generated passwords. With 62 symbols it
// carries about 238 bits of entropy, more than any attack could exhaust.
const PasswordLength = 40

// passwordAlphabet holds only letters and digits. They need no escaping in
// a pgpass line, a URI, a JDBC URL, a libpq key/value string, YAML or a
// shell, so a generated password can be pasted anywhere unchanged.
const passwordAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// GeneratePassword returns a random password of PasswordLength characters
// drawn uniformly from letters and digits. Random bytes at or above the
// largest multiple of the alphabet size are discarded rather than reduced
// modulo it, which would favour the first few symbols.
func GeneratePassword(rnd io.Reader) (string, error) {
	if rnd == nil {
		return "", errors.New("secrets: no source of randomness")
	}
	const n = len(passwordAlphabet)
	const limit = 256 - 256%n // bytes below this map uniformly onto the alphabet
	var sb strings.Builder
	sb.Grow(PasswordLength)
	buf := make([]byte, PasswordLength)
	for sb.Len() < PasswordLength {
		if _, err := io.ReadFull(rnd, buf); err != nil {
			return "", fmt.Errorf("secrets: read random bytes: %w", err)
		}
		for _, b := range buf {
			if int(b) >= limit {
				continue
			}
			sb.WriteByte(passwordAlphabet[int(b)%n])
			if sb.Len() == PasswordLength {
				break
			}
		}
	}
	return sb.String(), nil
}

// identifierRE matches the PostgreSQL identifiers pgward accepts for role
// and database names: lower case, so they never need quoting, and at most
// 63 bytes, PostgreSQL's NAMEDATALEN-1, beyond which it silently truncates.
var identifierRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// ValidateIdentifier reports whether s is usable as a role or database name
// without quoting: `^[a-z_][a-z0-9_]{0,62}$`. kind ("username", "dbname")
// names the field in the error.
func ValidateIdentifier(kind, s string) error {
	if !identifierRE.MatchString(s) {
		return fmt.Errorf("secrets: %s %q is not a valid PostgreSQL identifier (want %s)", kind, s, identifierRE)
	}
	return nil
}

// validateUsername also rejects the pg_ prefix, which PostgreSQL reserves
// for its predefined roles: CREATE ROLE would fail later and less clearly.
func validateUsername(s string) error {
	if err := ValidateIdentifier("username", s); err != nil {
		return err
	}
	if strings.HasPrefix(s, "pg_") {
		return fmt.Errorf("secrets: username %q uses the pg_ prefix PostgreSQL reserves", s)
	}
	return nil
}

// ValidatePassword checks a password, generated or supplied by a user,
// before it is written into connection strings. Anything printable is
// allowed, since escaping takes care of it; control characters are not,
// because a newline or NUL would cut a pgpass line or a C string short.
// The error never contains the password.
func ValidatePassword(password string) error {
	if password == "" {
		return errors.New("secrets: password is empty")
	}
	if strings.ContainsFunc(password, unicode.IsControl) {
		return errors.New("secrets: password contains a control character")
	}
	// Refused here, before any secret is written: the verifier could not
	// be computed, and a password stored but never applied would leave the
	// secret and the role disagreeing.
	if needsSASLprep(password) {
		return errors.New("secrets: password contains non-ASCII characters (PostgreSQL would normalise them with SASLprep, which pgward cannot reproduce): use printable ASCII")
	}
	return nil
}
