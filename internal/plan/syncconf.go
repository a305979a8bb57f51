package plan

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// SyncMethod is how synchronous_standby_names counts standbys.
type SyncMethod string

// Synchronous methods, spelled as in the Cluster API.
const (
	// SyncAny waits for any Num of the listed standbys (quorum commit).
	SyncAny SyncMethod = "any"
	// SyncFirst waits for the first Num connected standbys in list order.
	SyncFirst SyncMethod = "first"
)

// SyncConfig is one value of synchronous_standby_names. Num == 0 means
// asynchronous replication (the empty value).
//
// Under either method a commit is acknowledged only once Num of Names have
// flushed it, so seeing len(Names)-Num+1 of them is enough to find every
// acknowledged commit: at most Num-1 of Names can lack it.
type SyncConfig struct {
	Method SyncMethod
	Num    int
	Names  []string
}

// String renders c as synchronous_standby_names, quoting every name so that
// names such as "c-2" parse: `ANY 1 ("c-2","c-3")`.
func (c SyncConfig) String() string {
	if c.Num <= 0 {
		return ""
	}
	quoted := make([]string, len(c.Names))
	for i, n := range c.Names {
		quoted[i] = `"` + strings.ReplaceAll(n, `"`, `""`) + `"`
	}
	method := "ANY"
	if c.Method == SyncFirst {
		method = "FIRST"
	}
	return fmt.Sprintf("%s %d (%s)", method, c.Num, strings.Join(quoted, ","))
}

func cloneSyncConfigs(cs []SyncConfig) []SyncConfig {
	if cs == nil {
		return nil
	}
	out := make([]SyncConfig, len(cs))
	for i, c := range cs {
		c.Names = append([]string(nil), c.Names...)
		out[i] = c
	}
	return out
}

// ParseSyncConfig reads a synchronous_standby_names value: "", a plain list
// (FIRST 1), "n (list)" (FIRST n), or "ANY|FIRST n (list)". Names may be
// double-quoted. The wildcard "*" is refused: its standbys are unknowable.
func ParseSyncConfig(s string) (SyncConfig, error) {
	toks, err := syncTokens(s)
	if err != nil || len(toks) == 0 {
		return SyncConfig{}, err
	}
	c := SyncConfig{Method: SyncFirst, Num: 1}
	if t := toks[0]; t.kind == 'w' && (strings.EqualFold(t.text, "ANY") || strings.EqualFold(t.text, "FIRST")) {
		c.Method = SyncMethod(strings.ToLower(t.text))
		toks = toks[1:]
		if len(toks) < 2 || !toks[0].number() || toks[1].kind != '(' {
			return SyncConfig{}, fmt.Errorf("%q: %s must be followed by a number and a parenthesized list", s, t.text)
		}
	}
	if len(toks) > 1 && toks[0].number() && toks[1].kind == '(' {
		n, err := strconv.Atoi(toks[0].text)
		if err != nil || n < 1 {
			return SyncConfig{}, fmt.Errorf("%q: bad standby count %q", s, toks[0].text)
		}
		if toks[len(toks)-1].kind != ')' {
			return SyncConfig{}, fmt.Errorf("%q: missing ')'", s)
		}
		c.Num, toks = n, toks[2:len(toks)-1]
	}
	if c.Names, err = syncNameList(toks); err != nil {
		return SyncConfig{}, fmt.Errorf("%q: %w", s, err)
	}
	return c, nil
}

func syncNameList(toks []syncToken) ([]string, error) {
	var names []string
	for i, t := range toks {
		if i%2 == 1 {
			if t.kind != ',' {
				return nil, errors.New("names must be separated by commas")
			}
			continue
		}
		switch t.kind {
		case 'w', 'q':
			names = append(names, t.text)
		case '*':
			return nil, errors.New("the wildcard * is not supported")
		default:
			return nil, errors.New("expected a standby name")
		}
	}
	if len(names) == 0 || len(toks)%2 == 0 {
		return nil, errors.New("expected a standby name")
	}
	return names, nil
}

// syncToken is a word ('w'), a quoted name ('q') or one of ( ) , *.
type syncToken struct {
	kind byte
	text string
}

func (t syncToken) number() bool {
	if t.kind != 'w' {
		return false
	}
	for _, r := range t.text {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func syncTokens(s string) ([]syncToken, error) {
	var toks []syncToken
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case strings.IndexByte("(),*", c) >= 0:
			toks = append(toks, syncToken{kind: c})
			i++
		case c == '"':
			text, n, err := syncQuoted(s[i:])
			if err != nil {
				return nil, err
			}
			toks = append(toks, syncToken{kind: 'q', text: text})
			i += n
		case syncWordByte(c):
			j := i
			for j < len(s) && syncWordByte(s[j]) {
				j++
			}
			toks = append(toks, syncToken{kind: 'w', text: s[i:j]})
			i = j
		default:
			return nil, fmt.Errorf("unexpected character %q", c)
		}
	}
	return toks, nil
}

func syncWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 ||
		('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}

// syncQuoted reads a double-quoted name at the start of s, where "" stands
// for one quote, and returns it with the number of bytes consumed.
func syncQuoted(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '"' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '"' {
			b.WriteByte('"')
			i++
			continue
		}
		if b.Len() == 0 {
			return "", 0, errors.New("empty quoted name")
		}
		return b.String(), i + 1, nil
	}
	return "", 0, errors.New("unterminated quoted name")
}
