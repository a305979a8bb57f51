package local

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// rootDirFixture gives a root-owned 0711 directory under /tmp (sticky,
// world-writable: the walk goes through it in every test), the run-as user
// (nobody) and another unprivileged user (daemon).
func rootDirFixture(t *testing.T) (base string, runAs, other *Owner) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("root's path resolution runs as root; CI runs as root")
	}
	// Debian has both users on every machine: missing, the test must fail,
	// not pass silently.
	runAs, err := lookupOwner("nobody")
	if err != nil {
		t.Fatalf("the OS user nobody: %v", err)
	}
	other, err = lookupOwner("daemon")
	if err != nil {
		t.Fatalf("the OS user daemon: %v", err)
	}
	base, err = os.MkdirTemp("/tmp", "pgward-rootdir-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	mkdir(t, base, 0o711, 0)
	return base, runAs, other
}

// mkdir makes (or re-modes) dir with exactly mode (sticky bit included:
// 0o1777), owned by uid.
func mkdir(t *testing.T, dir string, mode uint32, uid uint32) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		t.Fatal(err)
	}
	if err := unix.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, int(uid), int(uid)); err != nil {
		t.Fatal(err)
	}
}

func statT(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}

func mustNotExist(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s was created (%v)", p, err)
	}
}

func TestClaimStateDir(t *testing.T) {
	base, runAs, other := rootDirFixture(t)

	t.Run("creates missing parents (root's, 0711) and the state directory (the run-as user's, 0700)", func(t *testing.T) {
		dir := filepath.Join(base, "a", ".pgward", "c")
		sd, err := ClaimStateDir(dir, runAs)
		if err != nil {
			t.Fatal(err)
		}
		_ = sd.Close()
		if sd.Path != dir || sd.Owner.UID != runAs.UID {
			t.Errorf("got %s %+v", sd.Path, sd.Owner)
		}
		for p, want := range map[string][2]uint32{
			filepath.Join(base, "a"):            {0, 0o711},
			filepath.Join(base, "a", ".pgward"): {0, 0o711},
			dir:                                 {runAs.UID, 0o700},
		} {
			if st := statT(t, p); st.Uid != want[0] || st.Mode&0o7777 != want[1] {
				t.Errorf("%s: uid %d mode %04o, want %d %04o", p, st.Uid, st.Mode&0o7777, want[0], want[1])
			}
		}
		// Again: the existing directory is the run-as user's.
		sd, err = ClaimStateDir(dir, runAs)
		if err != nil {
			t.Fatal(err)
		}
		_ = sd.Close()
		sd, err = OpenStateDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		_ = sd.Close()
		if sd.Owner.Name != runAs.Name {
			t.Errorf("owner %q", sd.Owner.Name)
		}
	})

	t.Run("a parent of the run-as user's", func(t *testing.T) {
		mkdir(t, filepath.Join(base, "pg"), 0o755, runAs.UID)
		sd, err := ClaimStateDir(filepath.Join(base, "pg", "c"), runAs)
		if err != nil {
			t.Fatal(err)
		}
		_ = sd.Close()
	})

	t.Run("a sticky world-writable parent (/tmp-style)", func(t *testing.T) {
		mkdir(t, filepath.Join(base, "tmp"), 0o1777, 0)
		sd, err := ClaimStateDir(filepath.Join(base, "tmp", "x", "c"), runAs)
		if err != nil {
			t.Fatal(err)
		}
		_ = sd.Close()
	})

	refusals := []struct {
		name    string
		setup   func(t *testing.T) (dir string)
		want    []string
		created string // must not exist afterwards
	}{
		{"symlinked parent", func(t *testing.T) string {
			mkdir(t, filepath.Join(base, "real"), 0o711, 0)
			if err := os.Symlink(filepath.Join(base, "real"), filepath.Join(base, "link")); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(base, "link", "c")
		}, []string{filepath.Join(base, "link") + " is a symbolic link", "real path"}, filepath.Join(base, "real", "c")},
		{"symlink higher up, missing directories below it", func(t *testing.T) string {
			if err := os.Symlink(filepath.Join(base, "real"), filepath.Join(base, "link2")); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(base, "link2", "x", "c")
		}, []string{filepath.Join(base, "link2") + " is a symbolic link"}, filepath.Join(base, "real", "x")},
		{"parent owned by another user", func(t *testing.T) string {
			mkdir(t, filepath.Join(base, "theirs"), 0o755, other.UID)
			return filepath.Join(base, "theirs", "c")
		}, []string{filepath.Join(base, "theirs") + " belongs to OS user \"daemon\"", "root or to \"nobody\""}, filepath.Join(base, "theirs", "c")},
		{"missing directory below another user's: refused before creating it", func(*testing.T) string {
			return filepath.Join(base, "theirs", "x", "c")
		}, []string{filepath.Join(base, "theirs") + " belongs to OS user \"daemon\""}, filepath.Join(base, "theirs", "x")},
		{"world-writable parent without the sticky bit", func(t *testing.T) string {
			mkdir(t, filepath.Join(base, "ww"), 0o777, 0)
			return filepath.Join(base, "ww", "c")
		}, []string{filepath.Join(base, "ww") + " is mode 0777", "sticky"}, filepath.Join(base, "ww", "c")},
		{"group-writable parent without the sticky bit", func(t *testing.T) string {
			mkdir(t, filepath.Join(base, "gw"), 0o775, runAs.UID)
			return filepath.Join(base, "gw", "c")
		}, []string{filepath.Join(base, "gw") + " is mode 0775"}, filepath.Join(base, "gw", "c")},
		{"another user's directory in a sticky one", func(t *testing.T) string {
			mkdir(t, filepath.Join(base, "tmp2"), 0o1777, 0)
			mkdir(t, filepath.Join(base, "tmp2", "x"), 0o755, other.UID)
			return filepath.Join(base, "tmp2", "x", "c")
		}, []string{filepath.Join(base, "tmp2", "x") + " belongs to OS user \"daemon\""}, filepath.Join(base, "tmp2", "x", "c")},
		{"an existing .pgward of another user", func(t *testing.T) string {
			mkdir(t, filepath.Join(base, "cwd"), 0o711, 0)
			mkdir(t, filepath.Join(base, "cwd", ".pgward"), 0o711, other.UID)
			return filepath.Join(base, "cwd", ".pgward", "c")
		}, []string{filepath.Join(base, "cwd", ".pgward") + " belongs to OS user \"daemon\""}, filepath.Join(base, "cwd", ".pgward", "c")},
		{"an existing state directory of another user", func(t *testing.T) string {
			mkdir(t, filepath.Join(base, "own"), 0o711, 0)
			mkdir(t, filepath.Join(base, "own", "c"), 0o700, other.UID)
			return filepath.Join(base, "own", "c")
		}, []string{filepath.Join(base, "own", "c") + " belongs to OS user \"daemon\"", "not \"nobody\""}, ""},
		{"an existing state directory of root's", func(t *testing.T) string {
			mkdir(t, filepath.Join(base, "own", "r"), 0o700, 0)
			return filepath.Join(base, "own", "r")
		}, []string{filepath.Join(base, "own", "r") + " is owned by root"}, ""},
		{"the state directory is a symlink", func(t *testing.T) string {
			mkdir(t, filepath.Join(base, "own", "target"), 0o700, 0)
			if err := os.Symlink(filepath.Join(base, "own", "target"), filepath.Join(base, "own", "sl")); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(base, "own", "sl")
		}, []string{filepath.Join(base, "own", "sl") + " is a symbolic link"}, ""},
		{"the state directory is a file", func(t *testing.T) string {
			if err := os.WriteFile(filepath.Join(base, "own", "f"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(base, "own", "f")
		}, []string{filepath.Join(base, "own", "f") + " is not a directory"}, ""},
		{"a parent the run-as user cannot pass", func(t *testing.T) string {
			mkdir(t, filepath.Join(base, "priv"), 0o700, 0)
			return filepath.Join(base, "priv", "c")
		}, []string{"user \"nobody\" cannot reach", filepath.Join(base, "priv") + " is mode 0700"}, filepath.Join(base, "priv", "c")},
		{"a relative path", func(*testing.T) string { return "rel/c" }, []string{"absolute"}, ""},
	}
	for _, r := range refusals {
		t.Run("refuses "+r.name, func(t *testing.T) {
			dir := r.setup(t)
			sd, err := ClaimStateDir(dir, runAs)
			if err == nil {
				_ = sd.Close()
				t.Fatalf("%s accepted", dir)
			}
			for _, w := range r.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if r.created != "" {
				mustNotExist(t, r.created)
			}
		})
	}
	// Nothing the refusals pointed at changed hands.
	if st := statT(t, filepath.Join(base, "own", "target")); st.Uid != 0 {
		t.Errorf("the symlink's target was handed to uid %d", st.Uid)
	}
}

func TestOpenStateDir(t *testing.T) {
	base, runAs, other := rootDirFixture(t)
	mkdir(t, filepath.Join(base, "ok"), 0o711, 0)
	mkdir(t, filepath.Join(base, "ok", ".pgward"), 0o711, runAs.UID)
	mkdir(t, filepath.Join(base, "ok", ".pgward", "c"), 0o700, runAs.UID)
	sd, err := OpenStateDir(filepath.Join(base, "ok", ".pgward", "c"))
	if err != nil {
		t.Fatal(err)
	}
	_ = sd.Close()
	if sd.Owner.Name != runAs.Name {
		t.Errorf("owner %q, want %q", sd.Owner.Name, runAs.Name)
	}

	mkdir(t, filepath.Join(base, "theirs"), 0o755, other.UID)
	mkdir(t, filepath.Join(base, "theirs", "c"), 0o700, runAs.UID)
	mkdir(t, filepath.Join(base, "root-owned"), 0o700, 0)
	if err := os.Symlink(filepath.Join(base, "ok", ".pgward"), filepath.Join(base, "link")); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]string{
		filepath.Join(base, "theirs", "c"):  filepath.Join(base, "theirs") + " belongs to OS user \"daemon\"",
		filepath.Join(base, "link", "c"):    filepath.Join(base, "link") + " is a symbolic link",
		filepath.Join(base, "root-owned"):   "is owned by root",
		filepath.Join(base, "ok", "absent"): "no cluster in",
	} {
		sd, err := OpenStateDir(dir)
		if err == nil {
			_ = sd.Close()
			t.Errorf("%s accepted", dir)
		} else if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q does not say %q", dir, err, want)
		}
	}
}

func TestStateDirRemoveEmpty(t *testing.T) {
	base, runAs, _ := rootDirFixture(t)
	dir := filepath.Join(base, "c")
	claim := func() *StateDir {
		sd, err := ClaimStateDir(dir, runAs)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sd.Close() })
		return sd
	}
	sd := claim()
	if err := os.WriteFile(filepath.Join(dir, "keep"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := sd.RemoveEmpty(); err == nil {
		t.Error("a directory that is not empty was removed")
	}
	if _, err := os.Stat(filepath.Join(dir, "keep")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "keep")); err != nil {
		t.Fatal(err)
	}
	if err := sd.RemoveEmpty(); err != nil {
		t.Fatal(err)
	}
	mustNotExist(t, dir)
	if err := sd.RemoveEmpty(); err != nil {
		t.Errorf("already gone: %v", err)
	}
	// Replaced by another directory since it was resolved: left alone.
	sd = claim()
	if err := os.Rename(dir, dir+".old"); err != nil {
		t.Fatal(err)
	}
	mkdir(t, dir, 0o700, runAs.UID)
	if err := sd.RemoveEmpty(); err == nil || !strings.Contains(err.Error(), "was replaced") {
		t.Errorf("got %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Error(err)
	}
}

// TestStateDirRaces swaps a parent of the state directory for a symlink
// to a decoy, again and again (renameat2 RENAME_EXCHANGE, as its owner
// could), while root claims and removes the state directory. The decoy
// holds a root-owned canary where the redirected path would land: a file,
// then an empty directory (what a path-based chown, unlink or rmdir would
// hit). The canary must not change hands or disappear, and nothing may be
// created in the decoy.
func TestStateDirRaces(t *testing.T) {
	base, runAs, _ := rootDirFixture(t)
	for _, kind := range []string{"file", "empty directory"} {
		t.Run(kind, func(t *testing.T) {
			root := filepath.Join(base, strings.ReplaceAll(kind, " ", "-"))
			mkdir(t, root, 0o755, runAs.UID) // the run-as user may rename here
			decoy, p, swap := filepath.Join(root, "decoy"), filepath.Join(root, "p"), filepath.Join(root, "p-swap")
			mkdir(t, decoy, 0o755, 0)
			canary := filepath.Join(decoy, "c")
			if kind == "file" {
				if err := os.WriteFile(canary, []byte("canary"), 0o600); err != nil {
					t.Fatal(err)
				}
			} else {
				mkdir(t, canary, 0o700, 0)
			}
			mkdir(t, p, 0o755, runAs.UID)
			if err := os.Symlink(decoy, swap); err != nil {
				t.Fatal(err)
			}
			var stop atomic.Bool
			var wg sync.WaitGroup
			swaps := 0
			wg.Go(func() {
				for !stop.Load() {
					if err := unix.Renameat2(unix.AT_FDCWD, p, unix.AT_FDCWD, swap, unix.RENAME_EXCHANGE); err != nil {
						t.Error(err)
						return
					}
					swaps++
				}
			})
			halt := func() { stop.Store(true); wg.Wait() }
			defer halt()
			claimed, refused := 0, 0
			dir := filepath.Join(p, "c")
			for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline) && (claimed < 50 || refused < 50); {
				sd, err := ClaimStateDir(dir, runAs)
				if err != nil {
					if !strings.Contains(err.Error(), "symbolic link") && !strings.Contains(err.Error(), "changed while root resolved it") {
						t.Fatalf("unexpected refusal: %v", err)
					}
					refused++
					continue
				}
				claimed++
				if err := sd.RemoveEmpty(); err != nil {
					t.Fatal(err)
				}
				_ = sd.Close()
			}
			halt()
			t.Logf("%d swaps, %d claims and removals, %d refusals", swaps, claimed, refused)
			st := statT(t, canary)
			if st.Uid != 0 || st.Mode&0o7777 != map[string]uint32{"file": 0o600, "empty directory": 0o700}[kind] {
				t.Errorf("the canary changed: uid %d mode %04o", st.Uid, st.Mode&0o7777)
			}
			if entries, err := os.ReadDir(decoy); err != nil || len(entries) != 1 {
				t.Errorf("the decoy holds %v (%v), want only the canary", entries, err)
			}
		})
	}
}
