package customqueries

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// readKeywords are the statements a query may start with: the ones that
// only read. Everything else (DO, COPY, SET, CALL, INSERT, a transaction
// control statement that would end pgward's read-only transaction) is
// refused before it reaches the server. This is the first of two fences:
// the instance manager also runs each query alone (one statement per
// protocol message), in a READ ONLY transaction it rolls back, as a role
// that is in pg_monitor and nothing else.
var readKeywords = []string{"SELECT", "WITH", "VALUES", "TABLE"}

// CheckSQL accepts one statement that starts with a reading keyword:
// comments and literals are skipped, so a semicolon inside a string does
// not count, and one at the very end is allowed.
func CheckSQL(sql string) error {
	if strings.TrimSpace(sql) == "" {
		return errors.New("is empty")
	}
	if len(sql) > MaxQueryBytes {
		return fmt.Errorf("is longer than %d bytes", MaxQueryBytes)
	}
	if !utf8.ValidString(sql) || strings.ContainsRune(sql, 0) {
		return errors.New("is not valid UTF-8 text")
	}
	toks, err := lex(sql)
	if err != nil {
		return err
	}
	// Opening parentheses may wrap a SELECT.
	i := 0
	for i < len(toks) && toks[i] == "(" {
		i++
	}
	if i == len(toks) {
		return errors.New("has no statement")
	}
	first := strings.ToUpper(toks[i])
	ok := false
	for _, k := range readKeywords {
		ok = ok || first == k
	}
	if !ok {
		return fmt.Errorf("starts with %s: a custom query must read (start with %s)", strconv.Quote(first), strings.Join(readKeywords, ", "))
	}
	for j, t := range toks {
		if t == ";" && j != len(toks)-1 {
			return errors.New("holds more than one statement")
		}
	}
	return nil
}

// lex splits SQL into words and punctuation, dropping comments and
// replacing every literal and quoted identifier by one token, the way
// PostgreSQL's scanner delimits them: '...' (with ”), E'...' (with
// backslash escapes), "..." identifiers, $tag$...$tag$, -- and nested /* */.
func lex(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
		case strings.HasPrefix(s[i:], "--"):
			if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
				i += j + 1
			} else {
				i = len(s)
			}
		case strings.HasPrefix(s[i:], "/*"):
			depth, j := 1, i+2
			for j < len(s) && depth > 0 {
				switch {
				case strings.HasPrefix(s[j:], "/*"):
					depth++
					j += 2
				case strings.HasPrefix(s[j:], "*/"):
					depth--
					j += 2
				default:
					j++
				}
			}
			if depth > 0 {
				return nil, errors.New("has an unterminated comment")
			}
			i = j
		case c == '\'' || ((c == 'E' || c == 'e') && i+1 < len(s) && s[i+1] == '\''):
			backslash := c != '\''
			j := i + 1
			if backslash {
				j++
			}
			closed := false
			for j < len(s) {
				if backslash && s[j] == '\\' {
					j += 2
					continue
				}
				if s[j] == '\'' {
					if j+1 < len(s) && s[j+1] == '\'' {
						j += 2
						continue
					}
					closed = true
					j++
					break
				}
				j++
			}
			if !closed {
				return nil, errors.New("has an unterminated string")
			}
			toks = append(toks, "'")
			i = j
		case c == '"':
			j := i + 1
			closed := false
			for j < len(s) {
				if s[j] == '"' {
					if j+1 < len(s) && s[j+1] == '"' {
						j += 2
						continue
					}
					closed = true
					j++
					break
				}
				j++
			}
			if !closed {
				return nil, errors.New("has an unterminated quoted identifier")
			}
			toks = append(toks, `"`)
			i = j
		case c == '$' && dollarTag(s[i:]) != "":
			tag := dollarTag(s[i:])
			end := strings.Index(s[i+len(tag):], tag)
			if end < 0 {
				return nil, errors.New("has an unterminated dollar-quoted string")
			}
			toks = append(toks, "$")
			i += len(tag) + end + len(tag)
		case isWord(rune(c)):
			j := i
			for j < len(s) && isWord(rune(s[j])) {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		default:
			toks = append(toks, string(c))
			i++
		}
	}
	return toks, nil
}

// dollarTag returns the opening $tag$ at the start of s, or "" when s
// starts with a positional parameter ($1) or a lone $.
func dollarTag(s string) string {
	for j := 1; j < len(s); j++ {
		c := rune(s[j])
		if c == '$' {
			return s[:j+1]
		}
		if !unicode.IsLetter(c) && c != '_' && (j == 1 || !unicode.IsDigit(c)) {
			return ""
		}
	}
	return ""
}

func isWord(c rune) bool {
	return c == '_' || c >= 0x80 || unicode.IsLetter(c) || unicode.IsDigit(c)
}

// A VersionRange is CloudNativePG's runonserver: comparisons joined by
// spaces (all must hold), alternatives joined by "||".
type VersionRange [][]comparison

type comparison struct {
	op string
	v  [3]int
}

// ParseVersionRange reads a runonserver value; "" matches every server.
func ParseVersionRange(s string) (VersionRange, error) {
	var r VersionRange
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	for _, alt := range strings.Split(s, "||") {
		var all []comparison
		for _, f := range strings.Fields(alt) {
			op := ""
			for _, o := range []string{">=", "<=", "!=", ">", "<", "="} {
				if strings.HasPrefix(f, o) {
					op = o
					break
				}
			}
			v, err := parseVersion(strings.TrimPrefix(f, op))
			if err != nil {
				return nil, fmt.Errorf("%q: %w", s, err)
			}
			if op == "" {
				op = "="
			}
			all = append(all, comparison{op, v})
		}
		if len(all) == 0 {
			return nil, fmt.Errorf("%q: an empty alternative", s)
		}
		r = append(r, all)
	}
	return r, nil
}

func parseVersion(s string) ([3]int, error) {
	var v [3]int
	parts := strings.Split(s, ".")
	if len(parts) == 0 || len(parts) > 3 {
		return v, fmt.Errorf("%q is not a version (x, x.y or x.y.z)", s)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 9999 {
			return v, fmt.Errorf("%q is not a version (x, x.y or x.y.z)", s)
		}
		v[i] = n
	}
	return v, nil
}

// Matches reports whether a server of version_num (server_version_num,
// 150004 for 15.4) is in the range.
func (r VersionRange) Matches(versionNum int) bool {
	if len(r) == 0 {
		return true
	}
	// PostgreSQL 10 and later: major*10000 + minor.
	v := [3]int{versionNum / 10000, versionNum % 10000, 0}
	for _, all := range r {
		ok := true
		for _, c := range all {
			d := compare(v, c.v)
			switch c.op {
			case ">=":
				ok = ok && d >= 0
			case "<=":
				ok = ok && d <= 0
			case ">":
				ok = ok && d > 0
			case "<":
				ok = ok && d < 0
			case "!=":
				ok = ok && d != 0
			default:
				ok = ok && d == 0
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func compare(a, b [3]int) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}
