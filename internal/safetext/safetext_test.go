package safetext

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"plain", "work_mem = '4MB' é 日本", ""},
		{"tab", "a\tb", "U+0009 at byte 1"},
		{"newline", "4MB\narchive_command", "U+000A at byte 3"},
		{"carriage return", "a\rb", "U+000D"},
		{"NUL", "a\x00b", "U+0000"},
		{"escape", "\x1b[2J", "U+001B at byte 0"},
		{"DEL", "a\x7f", "U+007F"},
		{"C1 next line", "a\u0085b", "U+0085"},
		{"line separator", "a\u2028b", "U+2028"},
		{"paragraph separator", "a\u2029b", "U+2029"},
		{"bidi override", "a\u202eb", "U+202E"},
		{"zero-width joiner", "a\u200db", "U+200D"},
		{"byte order mark", "\ufeffa", "U+FEFF"},
		{"invalid UTF-8", "a\xffb", "not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.in)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), tc.in):
				t.Fatalf("the error echoes the text: %v", err)
			}
			if got := strings.ContainsFunc(tc.in, Forbidden); got != (tc.want != "") {
				t.Fatalf("ContainsFunc(Forbidden) = %v", got)
			}
		})
	}
}
