package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// rootOnly skips a test that is about what root does (CI runs as root) and
// returns the run-as user's uid and gid.
func rootOnly(t *testing.T) (uid, gid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("this is about what pgward does as root; CI runs as root")
	}
	u, err := user.Lookup(runAsUser(t))
	if err != nil {
		t.Fatal(err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// mkdirOwned makes dir with exactly mode (0o1777 for a sticky one), owned
// by uid:gid.
func mkdirOwned(t *testing.T, dir string, mode uint32, uid, gid int) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
}

// freshDir makes a new directory under workRoot (tests may run more than
// once: -count) with exactly mode, owned by uid:gid.
func freshDir(t *testing.T, prefix string, mode uint32, uid, gid int) string {
	t.Helper()
	dir, err := os.MkdirTemp(workRoot, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return dir
}

// pgwardIn runs the CLI in the working directory wd.
func pgwardIn(ctx context.Context, wd string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, pgwardBin, args...)
	cmd.Dir = wd
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// TestRootRefusesUntrustedPaths: run as root, every verb refuses a state
// directory reached through a symlink, or below a directory of another
// user, or below one that others may write to; nothing is created.
func TestRootRefusesUntrustedPaths(t *testing.T) {
	uid, gid := rootOnly(t)
	other, err := user.Lookup("daemon")
	if err != nil {
		t.Fatalf("the OS user daemon (Debian has it): %v", err)
	}
	otherUID, _ := strconv.Atoi(other.Uid)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	base := freshDir(t, "untrusted-", 0o711, 0, 0)
	// Should a refusal regress, `up` stops at the missing PostgreSQL,
	// before it starts any process.
	noPG := "--pg-bin=" + filepath.Join(workRoot, "no-postgresql")
	sample := filepath.Join(repoRoot, "config", "samples", "cluster-example.yaml")

	// The default ./.pgward, existing and another user's.
	cwd := filepath.Join(base, "cwd")
	mkdirOwned(t, cwd, 0o711, 0, 0)
	mkdirOwned(t, filepath.Join(cwd, ".pgward"), 0o711, otherUID, otherUID)
	out, err := pgwardIn(ctx, cwd, "local", "up", "-f", sample, noPG)
	if err == nil || !strings.Contains(out, filepath.Join(cwd, ".pgward")+` belongs to OS user "daemon"`) {
		t.Errorf("up with another user's ./.pgward: %v: %s", err, out)
	}
	if _, err := os.Lstat(filepath.Join(cwd, ".pgward", "cluster-example")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("up created its state directory in another user's ./.pgward (%v)", err)
	}
	// ... holding a cluster of the run-as user: status and down refuse it too.
	mkdirOwned(t, filepath.Join(cwd, ".pgward", "c"), 0o700, uid, gid)
	for _, verb := range [][]string{{"status"}, {"audit"}, {"down", "--purge"}} {
		out, err := pgwardIn(ctx, cwd, append([]string{"local"}, verb...)...)
		if err == nil || !strings.Contains(out, `belongs to OS user "daemon"`) {
			t.Errorf("%s with another user's ./.pgward: %v: %s", verb[0], err, out)
		}
	}

	// A symlinked parent, to a directory that holds a cluster.
	real := filepath.Join(base, "real")
	mkdirOwned(t, real, 0o711, 0, 0)
	mkdirOwned(t, filepath.Join(real, "c"), 0o700, uid, gid)
	if err := os.WriteFile(filepath.Join(real, "c", "controller.lock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(real, "c", "controller.lock"), uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(base, "link")); err != nil {
		t.Fatal(err)
	}
	for _, verb := range [][]string{{"status"}, {"audit"}, {"down", "--purge"}, {"up", "-f", sample, noPG}} {
		args := append(append([]string{"local"}, verb...), "--dir", filepath.Join(base, "link", "c"))
		out, err := pgward(ctx, args...)
		if err == nil || !strings.Contains(out, filepath.Join(base, "link")+" is a symbolic link") {
			t.Errorf("%s through a symlinked parent: %v: %s", verb[0], err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(real, "c", "controller.lock")); err != nil {
		t.Errorf("down --purge through a symlink touched its target: %v", err)
	}

	// A world-writable parent without the sticky bit.
	ww := filepath.Join(base, "ww")
	mkdirOwned(t, ww, 0o777, 0, 0)
	out, err = pgward(ctx, "local", "up", "-f", sample, noPG, "--dir", filepath.Join(ww, "c"))
	if err == nil || !strings.Contains(out, ww+" is mode 0777") {
		t.Errorf("up below a world-writable directory: %v: %s", err, out)
	}
	if _, err := os.Lstat(filepath.Join(ww, "c")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("up created its state directory below a world-writable one (%v)", err)
	}
}

// TestRootPurgeRace: while root runs `down --purge`, the run-as user (who
// owns the state directory's parents here, which the rules allow) swaps the
// parent for a symlink to a directory of root's that holds a canary where
// the state directory would be: a file, or an empty directory. Root must
// remove only the state directory it resolved, never the canary.
//
// Two racers: a targeted one swaps the parent the moment the owner's purge
// has removed the state directory, between the unprivileged run and root's
// removal (a path-based removal then deletes the canary almost every time);
// a blind one swaps it back and forth throughout.
func TestRootPurgeRace(t *testing.T) {
	uid, gid := rootOnly(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	base := freshDir(t, "purge-race-", 0o755, uid, gid) // the run-as user may rename here
	p, swap := filepath.Join(base, "p"), filepath.Join(base, "p-swap")
	mkdirOwned(t, p, 0o755, uid, gid)
	canaries := map[string]string{} // decoy dir -> canary
	var decoys []string
	for _, kind := range []string{"file", "dir"} {
		decoy := freshDir(t, "purge-decoy-"+kind+"-", 0o755, 0, 0)
		c := filepath.Join(decoy, "c")
		if kind == "file" {
			if err := os.WriteFile(c, []byte("canary"), 0o600); err != nil {
				t.Fatal(err)
			}
		} else {
			mkdirOwned(t, c, 0o700, 0, 0)
		}
		canaries[decoy] = c
		decoys = append(decoys, decoy)
	}
	exchange := func() error {
		return unix.Renameat2(unix.AT_FDCWD, p, unix.AT_FDCWD, swap, unix.RENAME_EXCHANGE)
	}
	dir := filepath.Join(p, "c")
	targetedSwaps, refused := 0, 0
	for i := range 24 {
		targeted := i%3 != 2
		decoy := decoys[i%2]
		if err := os.Remove(swap); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if err := os.Symlink(decoy, swap); err != nil {
			t.Fatal(err)
		}
		// A state directory `down` recognises, with nothing running.
		_ = os.RemoveAll(dir)
		mkdirOwned(t, dir, 0o700, uid, gid)
		if err := os.WriteFile(filepath.Join(dir, "controller.lock"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(dir, "controller.lock"), uid, gid); err != nil {
			t.Fatal(err)
		}
		var stop atomic.Bool
		var swapped atomic.Int32
		var wg sync.WaitGroup
		wg.Go(func() {
			for !stop.Load() {
				if targeted {
					if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
						continue
					}
				}
				if err := exchange(); err != nil {
					t.Error(err)
					return
				}
				swapped.Add(1)
				if targeted {
					return
				}
				time.Sleep(50 * time.Microsecond)
			}
		})
		out, err := pgward(ctx, "local", "down", "--purge", "--dir", dir)
		stop.Store(true)
		wg.Wait()
		if fi, lerr := os.Lstat(p); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
			if err := exchange(); err != nil {
				t.Fatal(err)
			}
		}
		switch {
		case targeted && err != nil:
			t.Errorf("down --purge (swap after the owner's purge): %v: %s", err, out)
		case targeted:
			targetedSwaps += int(swapped.Load())
		case err != nil:
			refused++ // resolved or run while swapped: refused, or the owner found no cluster
		}
		for d, c := range canaries {
			fi, err := os.Lstat(c)
			if err != nil {
				t.Fatalf("round %d: the canary %s is gone: %v", i, c, err)
			}
			if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 {
				t.Fatalf("round %d: the canary %s now belongs to uid %d", i, c, st.Uid)
			}
			if entries, err := os.ReadDir(d); err != nil || len(entries) != 1 {
				t.Fatalf("round %d: %s holds %v (%v), want only the canary", i, d, entries, err)
			}
		}
	}
	t.Logf("targeted swaps after the owner's purge: %d; blind rounds refused: %d", targetedSwaps, refused)
	if targetedSwaps == 0 {
		t.Error("the targeted racer never swapped the parent: the race was not exercised")
	}
}

// TestKilledRootRunLeavesNoCopy SIGKILLs a root `up` while its unprivileged
// child writes the state directory's bin/pgward: the child dies with it, no
// process is left holding root's in-memory copy of pgward, no copy is
// written anywhere else, and the next `up` leaves exactly one binary, the
// same, in bin/.
func TestKilledRootRunLeavesNoCopy(t *testing.T) {
	rootOnly(t)
	start := time.Now()
	manifest := filepath.Join(workRoot, "killed-root.yaml")
	if err := os.WriteFile(manifest, []byte("apiVersion: postgresql.pgward.io/v1\nkind: Cluster\nmetadata:\n  name: killed-root\nspec:\n  instances: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := newStateDir(t, "killed-root")
	t.Cleanup(func() { _, _ = pgward(context.Background(), "local", "down", "--purge", "--dir", dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, pgwardBin, "local", "up", "-f", manifest, "--dir", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	var seen []string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline) && len(seen) == 0; time.Sleep(200 * time.Microsecond) {
		entries, _ := os.ReadDir(bin)
		for _, e := range entries {
			seen = append(seen, e.Name())
		}
	}
	if len(seen) == 0 {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal("the unprivileged child never wrote bin/")
	}
	// Before the kill, the child runs from root's in-memory copy.
	if len(memfdHolders(dir)) == 0 {
		t.Error("no process runs from an in-memory copy of pgward: is this not the root path?")
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	t.Logf("killed while bin/ held %v", seen)
	eventually(t, 5*time.Second, "the child and root's in-memory copy of pgward go with the killed root run", func() error {
		if h := memfdHolders(dir); len(h) > 0 {
			return fmt.Errorf("still held by %v", h)
		}
		return nil
	})
	if copies := binaryCopiesSince(t, start, dir); len(copies) > 0 {
		t.Errorf("copies of pgward left outside the state directory: %v", copies)
	}
	mustPgward(t, "local", "up", "-f", manifest, "--dir", dir)
	entries, err := os.ReadDir(bin)
	if err != nil || len(entries) != 1 || entries[0].Name() != "pgward" {
		t.Fatalf("bin/ holds %v (%v), want only pgward", entries, err)
	}
	if !sameFile(t, filepath.Join(bin, "pgward"), pgwardBin) {
		t.Error("bin/pgward is not the binary that ran")
	}
	if h := memfdHolders(dir); len(h) > 0 {
		t.Errorf("after a completed up, %v still hold an in-memory copy of pgward", h)
	}
	mustPgward(t, "local", "down", "--purge", "--dir", dir)
}

// memfdHolders lists the processes whose command line names dir and that
// run from, or hold open, an in-memory copy of pgward (memfd:pgward).
func memfdHolders(dir string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cmdline, err := os.ReadFile(p + "/cmdline")
		if err != nil || !bytes.Contains(cmdline, []byte(dir)) {
			continue
		}
		links := []string{p + "/exe"}
		fds, _ := filepath.Glob(p + "/fd/*")
		links = append(links, fds...)
		for _, l := range links {
			if target, err := os.Readlink(l); err == nil && strings.HasPrefix(target, "/memfd:pgward") {
				out = append(out, fmt.Sprintf("%s (%s: %s)", filepath.Base(p), strings.ReplaceAll(string(cmdline), "\x00", " "), l))
				break
			}
		}
	}
	return out
}

// binaryCopiesSince finds regular files written since start, in the
// temporary directories and next to the state directory (two levels down),
// that are copies of the binary under test.
func binaryCopiesSince(t *testing.T, start time.Time, dir string) []string {
	t.Helper()
	want, err := os.Stat(pgwardBin)
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, root := range []string{os.TempDir(), "/var/tmp", "/dev/shm", filepath.Dir(dir)} {
		depth := strings.Count(root, "/")
		_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return nil // vanished or unreadable: not ours
			}
			if d.IsDir() {
				if path == dir || strings.Count(path, "/")-depth >= 2 {
					return filepath.SkipDir
				}
				return nil
			}
			fi, err := d.Info()
			if err != nil || !fi.Mode().IsRegular() || fi.Size() != want.Size() || fi.ModTime().Before(start) || path == pgwardBin {
				return nil
			}
			if sameFile(t, path, pgwardBin) {
				found = append(found, path)
			}
			return nil
		})
	}
	return found
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		return false
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}
