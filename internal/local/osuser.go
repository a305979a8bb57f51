package local

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
)

// osUser is the unprivileged account instances run as.
type osUser struct {
	Name     string
	UID, GID uint32
	Groups   []uint32
}

// resolveRunAs picks the OS user instances run as. PostgreSQL refuses to run
// as root, and so does pgward: as root we drop to runAs (default postgres);
// as anyone else we run as ourselves.
func resolveRunAs(runAs string) (*osUser, error) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return nil, fmt.Errorf("looking up the current user: %w", err)
		}
		if runAs != "" && runAs != u.Username {
			return nil, fmt.Errorf("--run-as %q needs root; as %q, instances run as %q", runAs, u.Username, u.Username)
		}
		return lookupUser(u.Username)
	}
	if runAs == "" {
		runAs = "postgres"
	}
	u, err := lookupUser(runAs)
	if err != nil {
		return nil, fmt.Errorf("pgward runs PostgreSQL as an unprivileged user when started as root: %w (create it, or pass --run-as)", err)
	}
	if u.UID == 0 {
		return nil, fmt.Errorf("--run-as %q is root; PostgreSQL must run as an unprivileged user", runAs)
	}
	return u, nil
}

func lookupUser(name string) (*osUser, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("OS user %q: %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("OS user %q: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("OS user %q: gid %q: %w", name, u.Gid, err)
	}
	out := &osUser{Name: name, UID: uint32(uid), GID: uint32(gid)}
	gids, err := u.GroupIds()
	if err == nil {
		for _, g := range gids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				out.Groups = append(out.Groups, uint32(n))
			}
		}
	}
	return out, nil
}

// credential is what exec needs to start a child as u; nil when we already are u.
func (u *osUser) credential() *syscall.Credential {
	if uint32(os.Geteuid()) == u.UID { // #nosec G115 -- euid is never negative
		return nil
	}
	return &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: u.Groups}
}

// canTraverse reports whether u can reach dir: every ancestor must grant it
// search permission. Checked up front so a state directory under /root
// fails with a clear message instead of an initdb permission error.
func (u *osUser) canTraverse(dir string) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if !u.mayExecute(fi) {
			return fmt.Errorf("user %q cannot reach %s: %s is mode %v; choose a --dir elsewhere (e.g. under /var/lib/pgward)", u.Name, dir, d, fi.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func (u *osUser) mayExecute(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	perm := fi.Mode().Perm()
	switch {
	case st.Uid == u.UID:
		return perm&0o100 != 0
	case st.Gid == u.GID || slices.Contains(u.Groups, st.Gid):
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// chownTree gives dir and everything below it to u (when we are root).
func (u *osUser) chownTree(dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	// os.Root keeps every operation inside dir even if something in it is
	// (or becomes) a symlink pointing elsewhere.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer func() { _ = root.Close() }()
	return fs.WalkDir(root.FS(), ".", func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return root.Lchown(p, int(u.UID), int(u.GID))
	})
}
