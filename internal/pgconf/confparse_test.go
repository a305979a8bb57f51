package pgconf

import (
	"errors"
	"fmt"
	"strings"
)

// parseConf reads postgresql.conf text the way PostgreSQL's configuration
// lexer does, for the subset this package writes: blank lines, comments and
// "name = 'quoted value'" lines. It is written from PostgreSQL's documented
// rules independently of the renderer, so that a test using both checks one
// against the other. Unquoted values are refused: the renderer never writes
// them.
func parseConf(text string) ([]setting, error) {
	var out []setting
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		s, ok, err := parseConfLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d %q: %w", i+1, line, err)
		}
		if ok {
			out = append(out, s)
		}
	}
	return out, nil
}

// parseConfLine parses one line; ok is false for blank and comment lines.
func parseConfLine(line string) (s setting, ok bool, err error) {
	rest := strings.TrimLeft(line, " \t")
	if rest == "" || rest[0] == '#' {
		return setting{}, false, nil
	}
	n := 0
	for n < len(rest) && isNameByte(rest[n]) {
		n++
	}
	if n == 0 {
		return setting{}, false, errors.New("no parameter name")
	}
	s.name, rest = rest[:n], strings.TrimLeft(rest[n:], " \t")
	rest = strings.TrimLeft(strings.TrimPrefix(rest, "="), " \t")
	s.value, rest, err = parseQuoted(rest)
	if err != nil {
		return setting{}, false, err
	}
	if rest = strings.TrimLeft(rest, " \t"); rest != "" && rest[0] != '#' {
		return setting{}, false, fmt.Errorf("unexpected %q after the value", rest)
	}
	return s, true, nil
}

func isNameByte(c byte) bool {
	return c == '_' || c == '.' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}

// parseQuoted reads a single-quoted string at the start of s and returns its
// value and what follows. Inside the quotes a doubled quote is one quote and
// a backslash starts an escape: \b \f \n \r \t, one to three octal digits,
// or any other character standing for itself.
func parseQuoted(s string) (value, rest string, err error) {
	if s == "" || s[0] != '\'' {
		return "", "", errors.New("value is not single-quoted")
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			if i+1 < len(s) && s[i+1] == '\'' {
				b.WriteByte('\'')
				i++
				continue
			}
			return b.String(), s[i+1:], nil
		case '\\':
			i++
			if i == len(s) {
				return "", "", errors.New("backslash at the end of the line")
			}
			switch e := s[i]; e {
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case '0', '1', '2', '3', '4', '5', '6', '7':
				v := 0
				for k := 0; k < 3 && i < len(s) && '0' <= s[i] && s[i] <= '7'; k++ {
					v = v*8 + int(s[i]-'0')
					i++
				}
				i--
				b.WriteByte(byte(v))
			default:
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", errors.New("unterminated quoted string")
}

// effective returns the value each parameter ends up with: PostgreSQL uses
// the last line that sets it.
func effective(settings []setting) map[string]string {
	m := make(map[string]string, len(settings))
	for _, s := range settings {
		m[strings.ToLower(s.name)] = s.value
	}
	return m
}
