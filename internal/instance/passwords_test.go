package instance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgward/pgward/internal/secrets"
)

// kubeletVolume lays out secret files the way the kubelet's atomic writer
// does in a projected volume: the payload in a timestamped directory,
// "..data" a symbolic link to it, and each top-level path a link through
// "..data". An update writes a new payload directory and swaps the link.
type kubeletVolume struct {
	t    *testing.T
	root string
	n    int
}

func (v *kubeletVolume) write(files map[string]string) {
	v.t.Helper()
	v.n++
	payload := "..payload-" + strings.Repeat("x", v.n)
	for p, content := range files {
		path := filepath.Join(v.root, payload, p)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			v.t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o400); err != nil {
			v.t.Fatal(err)
		}
	}
	tmp := filepath.Join(v.root, "..data_tmp")
	if err := os.Symlink(payload, tmp); err != nil {
		v.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.root, "..data")); err != nil {
		v.t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(v.root, "secrets")); err != nil {
		if err := os.Symlink("..data/secrets", filepath.Join(v.root, "secrets")); err != nil {
			v.t.Fatal(err)
		}
	}
}

// TestManagerSeesPasswordChangedInMountedSecret: on Kubernetes a Secret
// edited by the user reaches the pod as a new payload behind "..data"; the
// manager's next check reads the new password, sees that it differs from
// the one applied (applyChangedPasswords then sets it, as TestRotatePassword
// in test/e2e shows against real PostgreSQL), and refuses one it could not
// set, naming the secret but not the value.
func TestManagerSeesPasswordChangedInMountedSecret(t *testing.T) {
	v := &kubeletVolume{t: t, root: t.TempDir()}
	v.write(map[string]string{"secrets/c-app/username": "app", "secrets/c-app/password": "first-Password"})
	m := &Manager{
		cfg:   &Config{Secrets: Secrets{App: "c-app"}},
		store: secrets.DirStore{Root: filepath.Join(v.root, "secrets")},
	}
	first, err := m.credentials()
	if err != nil || first.appPassword != "first-Password" {
		t.Fatalf("first read: %v (password read: %v)", err, first.appPassword == "first-Password")
	}
	m.appliedCreds = credentialsDigest(first)

	v.write(map[string]string{"secrets/c-app/username": "app", "secrets/c-app/password": "second-Password"})
	second, err := m.credentials()
	if err != nil || second.appPassword != "second-Password" {
		t.Fatalf("after the kubelet's swap: %v (new password read: %v)", err, second.appPassword == "second-Password")
	}
	if credentialsDigest(second) == m.appliedCreds {
		t.Error("the changed password has the digest of the applied one: it would never be applied")
	}

	v.write(map[string]string{"secrets/c-app/username": "app", "secrets/c-app/password": "bad\x01Password"})
	if _, err := m.credentials(); err == nil || !strings.Contains(err.Error(), "c-app") || strings.Contains(err.Error(), "bad\x01Password") {
		t.Errorf("an unusable password: %v", err)
	}
}

func TestCredentialsDigest(t *testing.T) {
	a := credentialsDigest(credentials{appUser: "app", appPassword: "ab", superPassword: "c"})
	if b := credentialsDigest(credentials{appUser: "app", appPassword: "a", superPassword: "bc"}); a == b {
		t.Error("moving a character between passwords kept the digest")
	}
	if b := credentialsDigest(credentials{appUser: "app", appPassword: "ab", superPassword: "c"}); a != b {
		t.Error("the same credentials gave another digest")
	}
}
