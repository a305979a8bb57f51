package local

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// What root does with a state directory, and how it finds it.
//
// Started as root, pgward acts on the file system three times before and
// after it reruns the command as the unprivileged user: it creates the
// state directory (and any missing parent) and hands it to that user
// (`up`, `bench`), it finds whose it is (every other verb), and it removes
// the emptied directory (`down --purge`). Each time root would otherwise
// follow a path that other users may be able to change under it: a parent
// swapped for a symlink would make root create, chown or delete something
// elsewhere.
//
// So root resolves the path once, from "/", one component at a time with
// openat(O_NOFOLLOW|O_DIRECTORY), and refuses it unless every directory
// above the state directory is
//
//   - a real directory, not a symlink (pass the real path: `realpath DIR`);
//   - owned by root or by the run-as user (the only other user root acts
//     for; a directory of anyone else could redirect the unprivileged
//     command too);
//   - not writable by group or others, unless its sticky bit is set (like
//     /tmp): there nobody but the owner of an entry, or root, may rename or
//     remove it, and the next component is itself checked to be root's or
//     the run-as user's (POSIX ACLs that grant writing show in the group
//     bits, so they are refused too).
//
// The state directory itself must be a real directory owned by the run-as
// user (never root, never anyone else). Root then keeps the parent open and
// acts only through that descriptor (mkdirat, fchown on the directory it
// opened, unlinkat): whatever is renamed or swapped after the check, root's
// actions land in the directories it checked. The unprivileged command
// itself uses the path: every directory on it belongs to root or to that
// user, so nobody else can redirect it.

// StateDir is a state directory as root resolved it, with its parent pinned.
type StateDir struct {
	// Path is the absolute, symlink-free path the command reruns with.
	Path string
	// Owner is the unprivileged user who owns the directory.
	Owner *Owner

	parent   *os.File // the parent directory, opened during the walk
	name     string   // the state directory's name in parent
	dev, ino uint64   // the state directory, as resolved
}

// Close releases the pinned parent directory.
func (s *StateDir) Close() error { return s.parent.Close() }

// ClaimStateDir is root's part of `up`: it resolves path under the rules
// above, creates any missing directory above it (root's, mode 0711) and the
// state directory itself (mode 0700, handed to o), or checks that an
// existing one is o's. path must be absolute.
func ClaimStateDir(path string, o *Owner) (*StateDir, error) {
	parent, name, _, err := walkParents(path, o, true)
	if err != nil {
		return nil, err
	}
	sd, err := claimIn(parent, name, path, o)
	if err != nil {
		_ = parent.Close()
		return nil, err
	}
	return sd, nil
}

func claimIn(parent *os.File, name, path string, o *Owner) (*StateDir, error) {
	if err := createFor(parent, name, path, o); err != nil {
		return nil, err
	}
	d, st, err := openDir(parent, name, path, path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = d.Close() }()
	switch st.Uid {
	case o.UID:
		// The run-as user's: made just now, or an existing state directory.
	case 0:
		return nil, fmt.Errorf("%s is owned by root; pgward state directories belong to the unprivileged user (%q)", path, o.Name)
	default:
		return nil, fmt.Errorf("%s belongs to %s, not %q (the run-as user); refusing to use it", path, describeUID(st.Uid), o.Name)
	}
	return &StateDir{Path: path, Owner: o, parent: parent, name: name, dev: st.Dev, ino: st.Ino}, nil
}

// createFor makes the state directory name in parent, already o's: an
// empty directory is made under a temporary name, handed to o through the
// descriptor root opened without following a link, and renamed into place
// unless name exists (RENAME_NOREPLACE). A concurrent `up` therefore never
// sees it owned by root, exactly one claim wins, and whatever the names
// are swapped for meanwhile, no file and nothing a symlink points to can
// change hands. An existing name is left for the caller to check.
func createFor(parent *os.File, name, path string, o *Owner) error {
	pfd := int(parent.Fd())
	var st unix.Stat_t
	if unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
		return nil
	}
	tmp := fmt.Sprintf(".%s.claim-%d-%d", name, os.Getpid(), time.Now().UnixNano())
	if err := unix.Mkdirat(pfd, tmp, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	d, tst, err := openDir(parent, tmp, path, path)
	if err == nil {
		if tst.Uid != 0 || tst.Nlink != 2 {
			err = fmt.Errorf("creating %s: the new directory changed under root", path)
		} else if err = d.Chown(int(o.UID), int(o.GID)); err == nil {
			err = d.Chmod(0o700)
		}
		_ = d.Close()
	}
	renamed := false
	if err == nil {
		err = unix.Renameat2(pfd, tmp, pfd, name, unix.RENAME_NOREPLACE)
		renamed = err == nil
		if errors.Is(err, unix.EEXIST) {
			err = nil // another claim won; the caller checks its owner
		}
	}
	if !renamed {
		_ = unix.Unlinkat(pfd, tmp, unix.AT_REMOVEDIR)
	}
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	return nil
}

// OpenStateDir is root's part of every verb but `up`: it resolves an
// existing state directory under the rules above, the run-as user being
// whoever owns it (root never does). path must be absolute.
func OpenStateDir(path string) (*StateDir, error) {
	parent, name, chain, err := walkParents(path, nil, false)
	if err != nil {
		return nil, err
	}
	sd, err := openIn(parent, name, path, chain)
	if err != nil {
		_ = parent.Close()
		return nil, err
	}
	return sd, nil
}

func openIn(parent *os.File, name, path string, chain []link) (*StateDir, error) {
	d, st, err := openDir(parent, name, path, path)
	if err != nil {
		return nil, err
	}
	_ = d.Close()
	if st.Uid == 0 {
		return nil, fmt.Errorf("%s is owned by root; pgward state directories belong to the unprivileged user", path)
	}
	u, err := user.LookupId(strconv.FormatUint(uint64(st.Uid), 10))
	if err != nil {
		return nil, fmt.Errorf("owner of %s: %w", path, err)
	}
	o, err := ownerFrom(u)
	if err != nil {
		return nil, err
	}
	// Now that the run-as user is known, the directories above must be
	// root's or its: the ones the walk went through to the pinned parent.
	for i := range chain {
		if err := checkParent(path, chain[i].path, &chain[i].st, o); err != nil {
			return nil, err
		}
	}
	return &StateDir{Path: path, Owner: o, parent: parent, name: name, dev: st.Dev, ino: st.Ino}, nil
}

// RemoveEmpty is root's part of `down --purge`, after the owner emptied the
// state directory: it removes the directory itself, which the owner may not
// be able to (./.pgward is root's). It goes through the pinned parent, so a
// parent swapped for a symlink since the walk cannot redirect it, with
// AT_REMOVEDIR, so only an empty directory can ever go, never a file, and
// only if the name still is the directory resolved at the start. Handing
// the whole deletion to the owner instead is not enough (it cannot remove
// an entry of a root-owned directory), and root deleting the contents would
// walk a tree the owner controls.
func (s *StateDir) RemoveEmpty() error {
	pfd := int(s.parent.Fd())
	var st unix.Stat_t
	err := unix.Fstatat(pfd, s.name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return nil // the owner could remove it itself
	}
	if err != nil {
		return fmt.Errorf("removing %s: %w", s.Path, err)
	}
	if st.Dev != s.dev || st.Ino != s.ino {
		return fmt.Errorf("%s was replaced while the cluster was being purged; not removing it", s.Path)
	}
	if err := unix.Unlinkat(pfd, s.name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("removing %s: %w", s.Path, err)
	}
	return nil
}

// link is one directory the walk went through, as it found it.
type link struct {
	path string
	st   unix.Stat_t
}

// walkParents opens every directory above path, from "/", without
// following a symlink, and returns the last one (the parent), the state
// directory's name in it, and what it went through (root first). With o,
// each directory is checked as it is reached, before anything is created
// below it, and (create) a missing one is made: root's, mode 0711, enough
// for o to pass through. Without o, the caller checks the chain once it
// knows the owner.
func walkParents(path string, o *Owner, create bool) (*os.File, string, []link, error) {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path || path == "/" {
		return nil, "", nil, fmt.Errorf("state directory %q: want an absolute, clean path below /", path)
	}
	dir, name := filepath.Split(path)
	fd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", nil, fmt.Errorf("opening /: %w", err)
	}
	cur := os.NewFile(uintptr(fd), "/")
	var comps []string
	if t := strings.Trim(dir, "/"); t != "" {
		comps = strings.Split(t, "/")
	}
	var chain []link
	curPath := "/"
	for i := 0; ; i++ {
		var st unix.Stat_t
		if err := unix.Fstat(int(cur.Fd()), &st); err != nil {
			_ = cur.Close()
			return nil, "", nil, fmt.Errorf("%s: %w", curPath, err)
		}
		if o != nil {
			if err := checkParent(path, curPath, &st, o); err != nil {
				_ = cur.Close()
				return nil, "", nil, err
			}
		}
		chain = append(chain, link{path: curPath, st: st})
		if i == len(comps) {
			break
		}
		next := filepath.Join(curPath, comps[i])
		d, err := openOrCreate(cur, comps[i], next, path, create)
		_ = cur.Close()
		if err != nil {
			return nil, "", nil, err
		}
		cur, curPath = d, next
	}
	return cur, name, chain, nil
}

// checkParent is the rule for one directory above a state directory.
func checkParent(target, p string, st *unix.Stat_t, o *Owner) error {
	if st.Uid != 0 && st.Uid != o.UID {
		return fmt.Errorf("refusing %s: %s belongs to %s; every directory above a state directory must belong to root or to %q (the run-as user)",
			target, p, describeUID(st.Uid), o.Name)
	}
	if st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0 {
		return fmt.Errorf("refusing %s: %s is mode %04o, writable by others than its owner (%s) without the sticky bit; they could swap what lies below it",
			target, p, st.Mode&0o7777, describeUID(st.Uid))
	}
	if !o.maySearch(st) {
		return fmt.Errorf("user %q cannot reach %s: %s is mode %04o; choose a --dir elsewhere (e.g. under /var/lib/pgward)", o.Name, target, p, st.Mode&0o7777)
	}
	return nil
}

// openOrCreate opens the directory name in parent without following a
// symlink; with create, a missing one is made first (root's, 0711).
func openOrCreate(parent *os.File, name, path, target string, create bool) (*os.File, error) {
	created := false
	if create {
		err := unix.Mkdirat(int(parent.Fd()), name, 0o711)
		created = err == nil
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("creating %s: %w", path, err)
		}
	}
	d, st, err := openDir(parent, name, path, target)
	if err != nil {
		return nil, err
	}
	if created && st.Uid == 0 && st.Mode&0o7777 != 0o711 {
		// The umask applied to mkdir; say exactly what others may do.
		if err := d.Chmod(0o711); err != nil { // #nosec G302 -- search-only for others
			_ = d.Close()
			return nil, fmt.Errorf("creating %s: %w", path, err)
		}
	}
	return d, nil
}

// openDir opens the directory name in parent without following a symlink,
// and returns what it opened.
func openDir(parent *os.File, name, path, target string) (*os.File, *unix.Stat_t, error) {
	fd, err := unix.Openat(int(parent.Fd()), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	changed := false
	if errors.Is(err, unix.ENOTDIR) {
		// O_DIRECTORY is checked before O_NOFOLLOW: a symlink gives
		// ENOTDIR too. Say which it is (the open refused both).
		var st unix.Stat_t
		if unix.Fstatat(int(parent.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFLNK:
				err = unix.ELOOP
			case unix.S_IFDIR:
				changed = true
			}
		}
	}
	switch {
	case changed:
		return nil, nil, fmt.Errorf("refusing %s: %s changed while root resolved it (something is swapping it)", target, path)
	case errors.Is(err, unix.ELOOP):
		to, _ := readlinkat(parent, name)
		return nil, nil, fmt.Errorf("refusing %s: %s is a symbolic link (to %q); root follows no symlink on the way to a state directory: pass the real path", target, path, to)
	case errors.Is(err, unix.ENOTDIR):
		return nil, nil, fmt.Errorf("refusing %s: %s is not a directory", target, path)
	case errors.Is(err, unix.ENOENT):
		return nil, nil, fmt.Errorf("no cluster in %s: %s does not exist", target, path)
	case err != nil:
		return nil, nil, fmt.Errorf("opening %s: %w", path, err)
	}
	d := os.NewFile(uintptr(fd), path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		_ = d.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, &st, nil
}

func readlinkat(parent *os.File, name string) (string, error) {
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(int(parent.Fd()), name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// describeUID names a user for an error: its name and uid, or the uid.
func describeUID(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return fmt.Sprintf("OS user %q (uid %s)", u.Username, id)
	}
	return "uid " + id
}

// maySearch reports whether o may pass through a directory with st.
func (o *Owner) maySearch(st *unix.Stat_t) bool {
	perm := st.Mode & 0o777
	switch {
	case st.Uid == o.UID:
		return perm&0o100 != 0
	case st.Gid == o.GID || slices.Contains(o.Groups, st.Gid):
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// CheckStateDirPath applies ClaimStateDir's rules to the part of path that
// exists, creating nothing: root calls it first, so that a refused path is
// reported before slower checks, and ClaimStateDir checks again as it
// creates.
func CheckStateDirPath(path string, o *Owner) error {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path || path == "/" {
		return fmt.Errorf("state directory %q: want an absolute, clean path below /", path)
	}
	existing := filepath.Dir(path)
	for existing != "/" {
		if _, err := os.Lstat(existing); err == nil {
			break
		}
		existing = filepath.Dir(existing)
	}
	// walkParents checks every directory above its argument, so hand it a
	// name inside the deepest existing one.
	parent, _, _, err := walkParents(filepath.Join(existing, "pgward-probe"), o, false)
	if err != nil {
		return err
	}
	return parent.Close()
}
