package secrets

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"
)

func TestGeneratePassword(t *testing.T) {
	seen := map[string]bool{}
	used := map[rune]bool{}
	for range 200 {
		p, err := GeneratePassword(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != PasswordLength || PasswordLength < 32 {
			t.Fatalf("length %d, want %d (>= 32)", len(p), PasswordLength)
		}
		for _, r := range p {
			if !strings.ContainsRune(passwordAlphabet, r) {
				t.Fatalf("password has %q, outside the alphabet", r)
			}
			used[r] = true
		}
		if strings.ContainsAny(p, ":\\@/?#'\"%& +=") {
			t.Fatalf("password %q has a character that needs escaping", p)
		}
		if seen[p] {
			t.Fatal("the same password came out twice")
		}
		seen[p] = true
		if err := ValidatePassword(p); err != nil {
			t.Fatal(err)
		}
		if esc := escape(p); esc != p {
			t.Fatalf("password changes when URI-escaped: %q", esc)
		}
	}
	// 8,000 draws from 62 symbols: every symbol shows up unless the
	// mapping is broken.
	if len(used) != len(passwordAlphabet) {
		t.Errorf("only %d of %d symbols were used", len(used), len(passwordAlphabet))
	}
}

// TestGeneratePasswordRejectionSampling feeds bytes that a modulo would
// fold onto the first symbols and checks they are skipped instead.
func TestGeneratePasswordRejectionSampling(t *testing.T) {
	const n = byte(len(passwordAlphabet))
	const limit = byte(256 - 256%len(passwordAlphabet)) // 248
	var in []byte
	var want strings.Builder
	for i := range byte(PasswordLength) {
		// Every byte from limit to 255 is discarded; i, i+n, i+2n and
		// i+3n all map to the same symbol.
		in = append(in, limit+i%(255-limit+1), i%n+n*(i%4))
		want.WriteByte(passwordAlphabet[i%n])
	}
	got, err := GeneratePassword(&byteReader{data: in})
	if err != nil {
		t.Fatal(err)
	}
	if got != want.String() {
		t.Errorf("got %q, want %q", got, want.String())
	}

	// Only rejected bytes: the generator must keep reading, then fail
	// cleanly when the source runs dry rather than return a short password.
	if _, err := GeneratePassword(&byteReader{data: bytes.Repeat([]byte{255}, 1000)}); err == nil {
		t.Error("accepted a source with no usable bytes")
	}
	if _, err := GeneratePassword(failingReader{}); err == nil {
		t.Error("succeeded without randomness")
	}
	if _, err := GeneratePassword(nil); err == nil {
		t.Error("succeeded with a nil reader")
	}
}

func TestValidateIdentifier(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"app", true},
		{"_private", true},
		{"streaming_replica", true},
		{"a1", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"App", false},
		{"1app", false},
		{"my-app", false},
		{"my app", false},
		{"app;drop", false},
		{"app\n", false},
		{"café", false},
		{`"app"`, false},
	}
	for _, tt := range tests {
		if err := ValidateIdentifier("username", tt.in); (err == nil) != tt.ok {
			t.Errorf("ValidateIdentifier(%q) = %v, want ok=%v", tt.in, err, tt.ok)
		}
	}
	if err := validateUsername("pg_monitor"); err == nil {
		t.Error("reserved pg_ role name accepted")
	}
}

func TestValidatePassword(t *testing.T) {
	for _, p := range []string{"x", "p@ss:w/rd", `'"\`, " leading space"} {
		if err := ValidatePassword(p); err != nil {
			t.Errorf("ValidatePassword rejected a printable password: %v", err)
		}
	}
	for _, p := range []string{"", "line\nbreak", "nul\x00", "tab\t", "del\x7f", "c1\u0085", "ünïcödé"} {
		err := ValidatePassword(p)
		if err == nil {
			t.Errorf("ValidatePassword(%q) accepted", p)
			continue
		}
		if p != "" && strings.Contains(err.Error(), p) {
			t.Errorf("error %q contains the password", err)
		}
	}
}
