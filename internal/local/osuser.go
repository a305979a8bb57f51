package local

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// Owner is the unprivileged OS account a cluster's processes run as.
//
// pgward does as little as possible as root: it claims the state directory
// for the owner (create, chown; through pinned directory handles, see
// rootdir.go) and then runs the requested command as the owner (see cli's
// privilege drop). Everything that reads or writes inside
// the state directory, which the owner controls, runs unprivileged, so a
// symlink or a forged pid file planted there cannot make root write to or
// signal anything else.
type Owner struct {
	Name     string
	UID, GID uint32
	Groups   []uint32
}

// Credential is what exec needs to run a child as o.
func (o *Owner) Credential() *syscall.Credential {
	return &syscall.Credential{Uid: o.UID, Gid: o.GID, Groups: o.Groups}
}

// errRoot is returned by every operation that touches a state directory
// when called as root.
var errRoot = errors.New("pgward local must not run as root past the privilege drop: PostgreSQL and everything touching its files run as an unprivileged user")

// currentOwner is the user the unprivileged code path runs as. runAs, if
// given, must name that user.
func currentOwner(runAs string) (*Owner, error) {
	if os.Geteuid() == 0 {
		return nil, errRoot
	}
	u, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("looking up the current user: %w", err)
	}
	if runAs != "" && runAs != u.Username {
		return nil, fmt.Errorf("--run-as %q needs root; as %q, instances run as %q", runAs, u.Username, u.Username)
	}
	return lookupOwner(u.Username)
}

// LookupRunAs resolves the user root drops to (default postgres).
func LookupRunAs(runAs string) (*Owner, error) {
	if runAs == "" {
		runAs = "postgres"
	}
	o, err := lookupOwner(runAs)
	if err != nil {
		return nil, fmt.Errorf("pgward runs PostgreSQL as an unprivileged user when started as root: %w (create it, or pass --run-as)", err)
	}
	if o.UID == 0 {
		return nil, fmt.Errorf("--run-as %q is root; PostgreSQL must run as an unprivileged user", runAs)
	}
	return o, nil
}

func lookupOwner(name string) (*Owner, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("OS user %q: %w", name, err)
	}
	return ownerFrom(u)
}

func ownerFrom(u *user.User) (*Owner, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("OS user %q: uid %q: %w", u.Username, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("OS user %q: gid %q: %w", u.Username, u.Gid, err)
	}
	out := &Owner{Name: u.Username, UID: uint32(uid), GID: uint32(gid)}
	if gids, err := u.GroupIds(); err == nil {
		for _, g := range gids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				out.Groups = append(out.Groups, uint32(n))
			}
		}
	}
	return out, nil
}

// ClaimDir is the unprivileged side of claiming a state directory (root's
// is ClaimStateDir): run as o, it creates the state directory (mode 0700,
// parents 0711), or checks that an existing one is o's.
func ClaimDir(dir string, o *Owner) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o711); err != nil { // #nosec G301 -- search-only for others
		return fmt.Errorf("creating %s: %w", parent, err)
	}
	if err := o.canTraverse(dir); err != nil {
		return err
	}
	if _, err := os.Lstat(dir); err == nil {
		return o.owns(dir)
	}
	// The directory appears already owned by o: it is made and chowned
	// under a temporary name, then renamed into place unless dir exists.
	// A concurrent `up` thus never sees it owned by root, and exactly one
	// claim wins.
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".claim-")
	if err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	if err := os.Lchown(tmp, int(o.UID), int(o.GID)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dir, unix.RENAME_NOREPLACE)
	if err == nil {
		return nil
	}
	_ = os.Remove(tmp)
	if !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	return o.owns(dir)
}

// owns checks that the existing state directory dir is o's.
func (o *Owner) owns(dir string) error {
	owner, err := DirOwner(dir)
	if err != nil {
		return err
	}
	if owner.UID != o.UID {
		return fmt.Errorf("%s belongs to OS user %q, not %q", dir, owner.Name, o.Name)
	}
	return nil
}

// DirOwner returns the owner of a state directory, refusing a symlink and
// a directory owned by root (root never runs a cluster). Root uses
// OpenStateDir instead, which also checks the directories above.
func DirOwner(dir string) (*Owner, error) {
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, fmt.Errorf("no cluster in %s: %w", dir, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	if st.Uid == 0 {
		return nil, fmt.Errorf("%s is owned by root; pgward state directories belong to the unprivileged user", dir)
	}
	u, err := user.LookupId(strconv.FormatUint(uint64(st.Uid), 10))
	if err != nil {
		return nil, fmt.Errorf("owner of %s: %w", dir, err)
	}
	return ownerFrom(u)
}

// canTraverse reports whether o can reach dir: every ancestor must grant it
// search permission. Checked up front so a state directory under /root
// fails with a clear message instead of an initdb permission error.
func (o *Owner) canTraverse(dir string) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if !o.mayExecute(fi) {
			return fmt.Errorf("user %q cannot reach %s: %s is mode %v; choose a --dir elsewhere (e.g. under /var/lib/pgward)", o.Name, dir, d, fi.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func (o *Owner) mayExecute(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	perm := fi.Mode().Perm()
	switch {
	case st.Uid == o.UID:
		return perm&0o100 != 0
	case st.Gid == o.GID || slices.Contains(o.Groups, st.Gid):
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}
