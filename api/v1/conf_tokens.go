package v1

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pgward/pgward/internal/safetext"
)

// This file splits the lines of pg_hba.conf and pg_ident.conf into fields
// the way PostgreSQL does, but more strictly: fields are separated by spaces
// or tabs, a double-quoted part may contain spaces and commas, and nothing
// else is special. Anything PostgreSQL would interpret beyond that (comments,
// line continuations, file inclusions) is refused by the callers.

// errEmptyLine is returned for a line holding nothing but blanks.
var errEmptyLine = errors.New("the line is empty")

// checkConfLine refuses what no pg_hba or pg_ident line of a manifest may
// contain: control and invisible characters (a tab is a separator and only
// allowed as such; splitConfFields checks it is not inside quotes), comments,
// and blank lines.
func checkConfLine(line string) error {
	if strings.TrimLeft(line, " \t") == "" {
		return errEmptyLine
	}
	if err := safetext.Check(strings.ReplaceAll(line, "\t", " ")); err != nil {
		return fmt.Errorf("the line %w", err)
	}
	// Outside quotes '#' starts a comment that would hide the rest of the
	// line; inside quotes PostgreSQL versions disagree. Refusing it
	// everywhere keeps what is rendered identical to what was validated.
	if i := strings.IndexByte(line, '#'); i >= 0 {
		return fmt.Errorf("'#' at byte %d is not allowed (comments are not supported)", i)
	}
	return nil
}

// splitConfFields splits a line checked by checkConfLine into fields,
// keeping the double quotes in each field's text. With joinLists, a field
// that ends in an unquoted comma continues with the next one, so that
// "a, b" is the single list "a,b" as PostgreSQL reads it.
func splitConfFields(line string, joinLists bool) ([]string, error) {
	var (
		fields  []string
		current strings.Builder
		inQuote bool
		// continues is true when the last character was an unquoted comma.
		continues bool
	)
	for i, r := range line {
		isBlank := r == ' ' || r == '\t'
		switch {
		case isBlank && inQuote && r == '\t':
			return nil, safetext.RuneError(r, i)
		case isBlank && !inQuote:
			listGoesOn := joinLists && continues
			if current.Len() > 0 && !listGoesOn {
				fields = append(fields, current.String())
				current.Reset()
			}
			continue
		case r == '"':
			inQuote = !inQuote
		}
		continues = r == ',' && !inQuote
		current.WriteRune(r)
	}
	if inQuote {
		return nil, errors.New("a double-quoted string is not terminated")
	}
	if joinLists && continues {
		return nil, errors.New("the line ends with a comma")
	}
	if current.Len() > 0 {
		fields = append(fields, current.String())
	}
	return fields, nil
}

// confName is one item of a field: a name or keyword, and whether it was
// written in double quotes (a quoted keyword is an ordinary name).
type confName struct {
	text   string
	quoted bool
}

// splitConfList splits a field at unquoted commas into names. Quotes must
// enclose a whole item: PostgreSQL would also accept a"b"c, but that form
// only makes rules harder to read and to compare.
func splitConfList(field string) ([]confName, error) {
	var (
		items   []confName
		start   int
		inQuote bool
	)
	for i := 0; i <= len(field); i++ {
		if i < len(field) && (field[i] != ',' || inQuote) {
			if field[i] == '"' {
				inQuote = !inQuote
			}
			continue
		}
		item, err := parseConfName(field[start:i])
		if err != nil {
			return nil, err
		}
		items = append(items, item)
		start = i + 1
	}
	return items, nil
}

// parseConfName parses one list item: a bare word or a "quoted name".
func parseConfName(item string) (confName, error) {
	switch {
	case item == "":
		return confName{}, errors.New("a list has an empty item")
	case len(item) >= 2 && item[0] == '"' && item[len(item)-1] == '"' &&
		!strings.Contains(item[1:len(item)-1], `"`):
		if len(item) == 2 {
			return confName{}, errors.New(`an empty quoted name ("") is not allowed`)
		}
		return confName{text: item[1 : len(item)-1], quoted: true}, nil
	case strings.Contains(item, `"`):
		return confName{}, fmt.Errorf("%q: double quotes must enclose a whole name", item)
	}
	return confName{text: item}, nil
}
