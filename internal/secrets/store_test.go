package secrets

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func newDirStore(t *testing.T) DirStore {
	t.Helper()
	return DirStore{Root: filepath.Join(t.TempDir(), "secrets")}
}

func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	info, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != want {
		t.Errorf("%s has mode %#o, want %#o", path, got, want)
	}
}

func TestDirStoreRoundTrip(t *testing.T) {
	s := newDirStore(t)
	data := map[string][]byte{
		"username": []byte("app"),
		"password": []byte(leakCanary),
		"tls.crt":  []byte("-----BEGIN CERTIFICATE-----\n"),
		"empty":    {},
		".hidden":  []byte("dot"),
	}
	if err := s.Put("cluster-app", data); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get("cluster-app")
	if err != nil {
		t.Fatal(err)
	}
	if !equalData(got, data) {
		t.Errorf("Get = %q, want %q", got, data)
	}

	checkMode(t, s.Root, 0o700)
	checkMode(t, filepath.Join(s.Root, "cluster-app"), 0o700)
	for key := range data {
		checkMode(t, filepath.Join(s.Root, "cluster-app", key), 0o600)
	}
}

func TestDirStorePutReplacesAllKeys(t *testing.T) {
	s := newDirStore(t)
	if err := s.Put("x", map[string][]byte{"a": []byte("1"), "b": []byte("2")}); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"b": []byte("two"), "c": []byte("3")}
	if err := s.Put("x", want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get("x")
	if err != nil {
		t.Fatal(err)
	}
	if !equalData(got, want) {
		t.Errorf("Get = %q, want %q", got, want)
	}
	if err := s.Put("x", nil); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get("x"); err != nil || len(got) != 0 {
		t.Errorf("after emptying: %q, %v", got, err)
	}
}

func TestDirStoreGetMissing(t *testing.T) {
	s := newDirStore(t)
	if _, err := s.Get("nothing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing store: err = %v, want fs.ErrNotExist", err)
	}
	if err := s.Put("other", map[string][]byte{"k": []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("nothing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing secret: err = %v, want fs.ErrNotExist", err)
	}
}

// TestDirStoreModesDespiteUmask runs under a umask that would otherwise
// produce unusable (0500) directories and read-only (0400) files.
func TestDirStoreModesDespiteUmask(t *testing.T) {
	s := newDirStore(t)
	if err := os.MkdirAll(s.Root, 0o700); err != nil {
		t.Fatal(err)
	}
	// The umask is process-wide, so this test must not run in parallel.
	old := syscall.Umask(0o277)
	defer syscall.Umask(old)
	if err := s.Put("x", map[string][]byte{"k": []byte("v")}); err != nil {
		t.Fatal(err)
	}
	checkMode(t, filepath.Join(s.Root, "x"), 0o700)
	checkMode(t, filepath.Join(s.Root, "x", "k"), 0o600)
}

func TestDirStoreTightensLoosenedModes(t *testing.T) {
	s := newDirStore(t)
	if err := s.Put("x", map[string][]byte{"k": []byte("v")}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(s.Root, "x")
	// Loosening the modes on purpose is what this test is about.
	if err := os.Chmod(dir, 0o755); err != nil { //nolint:gosec // G302: deliberately too open
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "k"), 0o644); err != nil { //nolint:gosec // G302: deliberately too open
		t.Fatal(err)
	}
	if err := s.Put("x", map[string][]byte{"k": []byte("w")}); err != nil {
		t.Fatal(err)
	}
	checkMode(t, dir, 0o700)
	checkMode(t, filepath.Join(dir, "k"), 0o600)
}

func TestDirStoreLeftoverTempFiles(t *testing.T) {
	s := newDirStore(t)
	if err := s.Put("x", map[string][]byte{"k": []byte("v")}); err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Join(s.Root, "x", tempPrefix+"ABC")
	if err := os.WriteFile(leftover, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get("x")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Errorf("Get returned a temporary file: %q", got)
	}
	if err := s.Put("x", map[string][]byte{"k": []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(leftover); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Put left the temporary file behind: %v", err)
	}
}

func TestDirStoreInvalidNames(t *testing.T) {
	s := newDirStore(t)
	names := []string{
		"", ".", "..", "../x", "x/..", "a/b", "/abs", "A", "-a", "a-", "a..b", ".a", "a.",
		"a_b", "a b", "a\x00", strings.Repeat("a", 254),
	}
	for _, name := range names {
		if err := s.Put(name, map[string][]byte{"k": []byte("v")}); err == nil {
			t.Errorf("Put(%q) accepted", name)
		}
		if _, err := s.Get(name); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Get(%q) = %v, want a validation error", name, err)
		}
	}
	for _, name := range []string{"a", "cluster-app", "a.b.c", "0", strings.Repeat("a", 63) + "." + strings.Repeat("b", 63)} {
		if err := ValidateName(name); err != nil {
			t.Errorf("ValidateName(%q): %v", name, err)
		}
	}
}

func TestDirStoreInvalidKeys(t *testing.T) {
	s := newDirStore(t)
	keys := []string{"", ".", "..", "a/b", "../x", "a b", "+tmp", "a:b", "a\nb", "ключ", strings.Repeat("k", 254)}
	for _, key := range keys {
		err := s.Put("x", map[string][]byte{key: []byte(leakCanary)})
		if err == nil {
			t.Errorf("Put with key %q accepted", key)
			continue
		}
		if strings.Contains(err.Error(), leakCanary) {
			t.Errorf("error %q contains the value", err)
		}
	}
	if _, err := os.Stat(s.Root); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a rejected Put touched the disk")
	}
	for _, key := range []string{"a", "tls.crt", "ca.crt", "jdbc-uri", "A_b.c-d", ".dotfile", "..."} {
		if err := ValidateKey(key); err != nil {
			t.Errorf("ValidateKey(%q): %v", key, err)
		}
	}
}

func TestDirStoreRefusesSymlinks(t *testing.T) {
	s := newDirStore(t)
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.MkdirAll(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "password"), []byte("stolen"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("x", map[string][]byte{"k": []byte("v")}); err != nil {
		t.Fatal(err)
	}

	// A key that links outside the store.
	if err := os.Symlink(filepath.Join(outside, "password"), filepath.Join(s.Root, "x", "password")); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get("x"); err == nil {
		t.Errorf("Get followed a symlinked key: %q", got)
	}

	// A whole secret that links outside the store.
	if err := os.Symlink(outside, filepath.Join(s.Root, "linked")); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get("linked"); err == nil {
		t.Errorf("Get followed a symlinked secret: %q", got)
	}
	if err := s.Put("linked", map[string][]byte{"password": []byte("overwritten")}); err == nil {
		t.Error("Put wrote through a symlinked secret")
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "password")); !bytes.Equal(b, []byte("stolen")) {
		t.Errorf("file outside the store changed to %q", b)
	}

	// Put replaces a symlinked key with a regular file rather than
	// writing through it.
	if err := s.Put("x", map[string][]byte{"password": []byte("new")}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "password")); !bytes.Equal(b, []byte("stolen")) {
		t.Errorf("file outside the store changed to %q", b)
	}
	checkMode(t, filepath.Join(s.Root, "x", "password"), 0o600)
}

func TestDirStoreSizeLimit(t *testing.T) {
	s := newDirStore(t)
	big := map[string][]byte{"a": make([]byte, MaxSecretSize/2+1), "b": make([]byte, MaxSecretSize/2)}
	if err := s.Put("x", big); err == nil {
		t.Error("Put accepted an oversized secret")
	}
	if err := s.Put("x", map[string][]byte{"a": make([]byte, MaxSecretSize)}); err != nil {
		t.Fatalf("Put rejected a secret at the limit: %v", err)
	}
	if err := os.WriteFile(filepath.Join(s.Root, "x", "b"), []byte("1"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("x"); err == nil {
		t.Error("Get read an oversized secret")
	}
}

func TestDirStoreSecretIsAFile(t *testing.T) {
	s := newDirStore(t)
	if err := os.MkdirAll(s.Root, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Root, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("x", map[string][]byte{"k": []byte("v")}); err == nil {
		t.Error("Put wrote into a regular file")
	}
	if _, err := s.Get("x"); err == nil {
		t.Error("Get read a regular file as a secret")
	}
}
