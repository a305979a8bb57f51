package secrets

import (
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDirStoreReplace(t *testing.T) {
	s := newDirStore(t)
	if err := s.Put("x", map[string][]byte{"a": []byte("1"), "gone": []byte("2")}); err != nil {
		t.Fatal(err)
	}
	// A reader holding a file of the old version open keeps reading it.
	held, err := os.Open(filepath.Join(s.Root, "x", "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = held.Close() }()
	want := map[string][]byte{"a": []byte("new"), "b": []byte("3")}
	if err := s.Replace("x", want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get("x")
	if err != nil || !equalData(got, want) {
		t.Fatalf("Get after Replace = %q, %v; want %q", got, err, want)
	}
	buf := make([]byte, 8)
	if n, _ := held.Read(buf); string(buf[:n]) != "1" {
		t.Errorf("the held old file reads %q", buf[:n])
	}
	checkMode(t, filepath.Join(s.Root, "x"), 0o700)
	for key := range want {
		checkMode(t, filepath.Join(s.Root, "x", key), 0o600)
	}
	entries, err := os.ReadDir(s.Root)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("the store holds %d entries after Replace, want only the secret (the old version removed)", len(entries))
	}
}

func TestDirStoreReplaceRefuses(t *testing.T) {
	s := newDirStore(t)
	if err := s.Put("x", map[string][]byte{"a": []byte("1")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Replace("missing", map[string][]byte{"a": []byte("1")}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Replace of a missing secret: %v, want ErrNotExist", err)
	}
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(s.Root, "linked")); err != nil {
		t.Fatal(err)
	}
	if err := s.Replace("linked", map[string][]byte{"a": []byte("1")}); err == nil {
		t.Error("Replace swapped a symbolic link")
	}
	if err := s.Replace("x", map[string][]byte{"bad/key": []byte("1")}); err == nil {
		t.Error("Replace accepted an invalid key")
	}
	if err := s.Replace("x", map[string][]byte{"a": make([]byte, MaxSecretSize+1)}); err == nil {
		t.Error("Replace accepted an oversized secret")
	}
	if got, _ := s.Get("x"); string(got["a"]) != "1" {
		t.Errorf("a refused Replace changed the secret: %q", got)
	}
}

func TestRotatePassword(t *testing.T) {
	store := newMemStore()
	old, _, err := EnsureCredentials(store, "db-app", "app", "app", appInfo, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	fresh := "n3w:pa\\ss word"
	if err := RotatePassword(store, "db-app", "app", "app", fresh, appInfo); err != nil {
		t.Fatal(err)
	}
	want, err := ConnectionSecretData(Credentials{Username: "app", Password: fresh, DBName: "app"}, appInfo)
	if err != nil {
		t.Fatal(err)
	}
	got := store.secrets["db-app"]
	if !equalData(got, want) {
		t.Errorf("stored %q, want %q", got, want)
	}
	for _, key := range []string{KeyPgpass, KeyURI, KeyJDBCURI} {
		if strings.Contains(string(got[key]), old.Password) {
			t.Errorf("key %s still holds the old password", key)
		}
	}
	// Later ups keep the rotated password.
	if c, created, err := EnsureCredentials(store, "db-app", "app", "app", appInfo, failingReader{}); err != nil || created || c.Password != fresh {
		t.Errorf("EnsureCredentials after a rotation: created=%v err=%v, password kept %v", created, err, c.Password == fresh)
	}
}

func TestRotatePasswordRefuses(t *testing.T) {
	store := newMemStore()
	if _, _, err := EnsureCredentials(store, "db-app", "app", "app", appInfo, rand.Reader); err != nil {
		t.Fatal(err)
	}
	before := store.secrets["db-app"]
	cases := map[string]struct{ name, user, password string }{
		"missing secret":    {"db-other", "app", "x" + leakCanary},
		"another user":      {"db-app", "postgres", "x" + leakCanary},
		"control character": {"db-app", "app", leakCanary + "\n"},
		"empty password":    {"db-app", "app", ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := RotatePassword(store, c.name, c.user, "app", c.password, appInfo)
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), leakCanary) {
				t.Errorf("the error carries the password: %v", err)
			}
		})
	}
	if !equalData(store.secrets["db-app"], before) {
		t.Error("a refused rotation changed the secret")
	}
}

func TestRotatePasswordWithDirStore(t *testing.T) {
	s := newDirStore(t)
	if _, _, err := EnsureCredentials(s, "db-app", "app", "app", appInfo, rand.Reader); err != nil {
		t.Fatal(err)
	}
	if err := RotatePassword(s, "db-app", "app", "app", "rotated", appInfo); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get("db-app")
	if err != nil || string(got[KeyPassword]) != "rotated" || !strings.HasSuffix(string(got[KeyPgpass]), ":rotated\n") {
		t.Errorf("after rotation: %v, password %q, pgpass %q", err, got[KeyPassword], got[KeyPgpass])
	}
}
