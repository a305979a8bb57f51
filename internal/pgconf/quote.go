package pgconf

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// checkText refuses text that must never reach a configuration file. All
// three files are line-oriented, so a line break in a value would end the
// current line and let the rest be read as a line of its own; other control
// characters (NUL truncates C strings, CR confuses editors and diffs) have no
// legitimate use in configuration either. Invisible formatting characters
// (bidirectional overrides, zero-width joiners, line and paragraph
// separators) and invalid UTF-8 are refused so that what a reviewer reads is
// what PostgreSQL parses. The error gives the position, not the text, which
// may hold a secret.
func checkText(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("is not valid UTF-8")
	}
	for i, r := range s {
		if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
			return fmt.Errorf("contains control or invisible character %U at byte %d", r, i)
		}
	}
	return nil
}

// quoteConfigString renders s as a single-quoted postgresql.conf string.
// Inside such a string PostgreSQL reads a doubled quote as one quote and
// processes backslash escapes (\n, \t, octal, and \x for any other x), so
// both the quote and the backslash must be escaped for the value to come
// back unchanged. Every value is quoted, even numbers and booleans, because
// PostgreSQL accepts quotes for any parameter type and one rule is easier to
// trust than a list of exceptions.
func quoteConfigString(s string) (string, error) {
	if err := checkText(s); err != nil {
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
