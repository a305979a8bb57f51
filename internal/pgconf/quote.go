package pgconf

import (
	"strings"

	"github.com/pgward/pgward/internal/safetext"
)

// quoteConfigString renders s as a single-quoted postgresql.conf string.
// Inside such a string PostgreSQL reads a doubled quote as one quote and
// processes backslash escapes (\n, \t, octal, and \x for any other x), so
// both the quote and the backslash must be escaped for the value to come
// back unchanged. Every value is quoted, even numbers and booleans, because
// PostgreSQL accepts quotes for any parameter type and one rule is easier to
// trust than a list of exceptions.
func quoteConfigString(s string) (string, error) {
	if err := safetext.Check(s); err != nil {
		return "", err
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			b.WriteString("''")
		case '\\':
			b.WriteString(`\\`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String(), nil
}

// isParameterName reports whether name is a parameter name postgresql.conf
// can hold: an identifier, or two identifiers joined by a dot for an
// extension's parameter. Only lower case is accepted: PostgreSQL folds names
// to lower case, so "Port" would be the same parameter as "port" and a map
// could hold both. PostgreSQL also accepts bytes above 0x7F in identifiers;
// no real parameter uses them.
func isParameterName(name string) bool {
	first, second, dotted := strings.Cut(name, ".")
	return isIdentifier(first) && (!dotted || isIdentifier(second))
}

func isIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c == '_' || ('a' <= c && c <= 'z')
		digit := '0' <= c && c <= '9'
		if !letter && (i == 0 || !digit) {
			return false
		}
	}
	return true
}
