package v1

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// forbiddenRune reports whether r must never reach a file that pgward
// renders for PostgreSQL. PostgreSQL reads postgresql.conf, pg_hba.conf and
// pg_ident.conf line by line, so a line break smuggled into a value would end
// the setting early and let the user write a line of their own choosing. The
// other control characters (NUL truncates C strings) and the invisible
// formatting characters (bidirectional overrides, zero-width joiners, line and
// paragraph separators) are refused too: they make a file read differently
// from what PostgreSQL does with it.
func forbiddenRune(r rune) bool {
	return unicode.IsControl(r) ||
		unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) ||
		r == utf8.RuneError
}

// checkText returns an error naming the first character of s that
// forbiddenRune refuses, or invalid UTF-8, and nil when s is clean.
func checkText(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("is not valid UTF-8")
	}
	for i, r := range s {
		if forbiddenRune(r) {
			return forbiddenRuneError(r, i)
		}
	}
	return nil
}

// forbiddenRuneError describes a character refused by forbiddenRune without
// echoing the surrounding text, which may hold secrets.
func forbiddenRuneError(r rune, offset int) error {
	return fmt.Errorf("contains the control or invisible character %U at byte %d", r, offset)
}
