// Package safetext is the one definition of the characters pgward never lets
// through to a file, a command line, a certificate or a terminal.
//
// Every file pgward renders for PostgreSQL, pgBackRest or libpq (postgresql.conf,
// pg_hba.conf, pg_ident.conf, pgbackrest.conf, pgpass) is read line by line, so
// a line break smuggled into a value ends it early and lets the rest be read as
// a line of the writer's choosing. The other control characters have no
// legitimate use either (NUL truncates C strings; CR and escape sequences
// rewrite what a terminal shows), nor do the invisible formatting characters
// (bidirectional overrides, zero-width joiners, line and paragraph separators),
// which make text read differently from what a parser does with it. Invalid
// UTF-8 is refused so that what a reviewer sees is what the parser gets.
//
// The checks lived in several packages with different strengths; one
// definition means closing the class once.
package safetext

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Forbidden reports whether r must never appear in text pgward passes on.
// utf8.RuneError is included, so strings.ContainsFunc(s, Forbidden) also
// catches invalid UTF-8.
func Forbidden(r rune) bool {
	return unicode.IsControl(r) ||
		unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) ||
		r == utf8.RuneError
}

// Check returns an error naming the first forbidden character of s by code
// point and offset, never echoing the text, which may be a secret; nil when s
// is clean.
func Check(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("is not valid UTF-8")
	}
	for i, r := range s {
		if Forbidden(r) {
			return RuneError(r, i)
		}
	}
	return nil
}

// RuneError describes a forbidden character found at offset, for parsers that
// walk the text themselves.
func RuneError(r rune, offset int) error {
	return fmt.Errorf("contains the control or invisible character %U at byte %d", r, offset)
}
