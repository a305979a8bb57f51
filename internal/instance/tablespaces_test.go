package instance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/pgward/pgward/api/v1"
)

func TestTablespacePlan(t *testing.T) {
	loc := "/proc/self/cwd/pg_dynshmem/pgward_tablespaces/fast/data"
	for _, c := range []struct {
		name    string
		want    v1.TablespaceConfiguration
		have    *tablespaceState
		stmts   []string
		errPart string
	}{
		{"missing", v1.TablespaceConfiguration{Name: "fast", Owner: v1.DatabaseRoleRef{Name: "app"}}, nil,
			[]string{`CREATE TABLESPACE "fast" OWNER "app" LOCATION '` + loc + `'`}, ""},
		{"missing, default owner", v1.TablespaceConfiguration{Name: "fast"}, nil,
			[]string{`CREATE TABLESPACE "fast" OWNER "postgres" LOCATION '` + loc + `'`}, ""},
		{"as declared", v1.TablespaceConfiguration{Name: "fast", Owner: v1.DatabaseRoleRef{Name: "app"}}, &tablespaceState{owner: "app", location: loc}, nil, ""},
		{"owner changed", v1.TablespaceConfiguration{Name: "fast"}, &tablespaceState{owner: "app", location: loc},
			[]string{`ALTER TABLESPACE "fast" OWNER TO "postgres"`}, ""},
		{"not pgward's", v1.TablespaceConfiguration{Name: "fast"}, &tablespaceState{owner: "postgres", location: "/srv/x"}, nil, "not pgward's"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := tablespacePlan(c.want, c.have, loc)
			if c.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), c.errPart) {
					t.Fatalf("error %v, want %q", err, c.errPart)
				}
				return
			}
			if err != nil || strings.Join(got, ";") != strings.Join(c.stmts, ";") {
				t.Fatalf("got %q %v, want %q", got, err, c.stmts)
			}
		})
	}
	if _, err := tablespacePlan(v1.TablespaceConfiguration{Name: "fast"}, nil, "/x'; DROP"); err == nil {
		t.Error("a location with a quote was planned")
	}
}

// TestTablespaceDirs: the directories are made 0700 (a wider one
// tightened), the data directory's link made once, and whatever is not
// a directory of ours, or a link elsewhere, refused.
func TestTablespaceDirs(t *testing.T) {
	root := t.TempDir()
	cfg := &Config{DataDir: filepath.Join(root, "data"), ConfDir: filepath.Join(root, "conf"), TablespacesDir: filepath.Join(root, "tablespaces"), TablespaceLocation: LocalTablespaceLocation}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.DataDir, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &v1.Cluster{Spec: v1.ClusterSpec{Tablespaces: []v1.TablespaceConfiguration{{Name: "fast"}, {Name: "scratch"}}}}
	for range 2 {
		if err := ensureTablespaceDirs(cfg, c); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"fast", "scratch"} {
		fi, err := os.Lstat(tablespaceDir(cfg, n))
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v", n, fi, err)
		}
	}
	if target, err := os.Readlink(filepath.Join(cfg.DataDir, "pg_dynshmem", "pgward_tablespaces")); err != nil || target != cfg.TablespacesDir {
		t.Errorf("link: %q %v", target, err)
	}
	// Resolved as PostgreSQL's processes resolve it: from the data directory.
	if fi, err := os.Stat(filepath.Join(cfg.DataDir, "pg_dynshmem", "pgward_tablespaces", "fast", "data")); err != nil || !fi.IsDir() {
		t.Errorf("the location does not reach the directory: %v", err)
	}
	// pg_rewind's working directory reaches them the same way.
	if d, err := rewindDir(cfg); err != nil || d == cfg.DataDir {
		t.Errorf("rewindDir: %q %v", d, err)
	} else if fi, err := os.Stat(filepath.Join(d, "pg_dynshmem", "pgward_tablespaces", "fast", "data")); err != nil || !fi.IsDir() {
		t.Errorf("pg_rewind's location does not reach the directory: %v", err)
	}
	if err := os.Chmod(tablespaceDir(cfg, "fast"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := ensureTablespaceDirs(cfg, c); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(tablespaceDir(cfg, "fast")); fi.Mode().Perm() != 0o700 {
		t.Errorf("mode not tightened: %v", fi.Mode())
	}
	// A link where the directory should be.
	if err := os.RemoveAll(tablespaceDir(cfg, "scratch")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", tablespaceDir(cfg, "scratch")); err != nil {
		t.Fatal(err)
	}
	if err := ensureTablespaceDirs(cfg, c); err == nil || !strings.Contains(err.Error(), "must be a directory owned by this user") {
		t.Errorf("a link as the tablespace directory: %v", err)
	}
	_ = os.Remove(tablespaceDir(cfg, "scratch"))
	// The data directory's link pointing elsewhere.
	link := filepath.Join(cfg.DataDir, "pg_dynshmem", "pgward_tablespaces")
	_ = os.Remove(link)
	if err := os.Symlink("/tmp", link); err != nil {
		t.Fatal(err)
	}
	if err := ensureTablespaceDirs(cfg, c); err == nil || !strings.Contains(err.Error(), "must be a link to "+cfg.TablespacesDir) {
		t.Errorf("a link elsewhere: %v", err)
	}
	// A name validation would refuse never reaches a path.
	bad := &v1.Cluster{Spec: v1.ClusterSpec{Tablespaces: []v1.TablespaceConfiguration{{Name: "../x"}}}}
	if err := ensureTablespaceDirs(cfg, bad); err == nil {
		t.Error("../x accepted")
	}
}

// TestRelinkTablespaces: after pg_basebackup mapped a tablespace into this
// instance's directory, its link reads the shared location again; other
// links are left alone.
func TestRelinkTablespaces(t *testing.T) {
	root := t.TempDir()
	links := filepath.Join(root, "data", "pg_tblspc")
	if err := os.MkdirAll(links, 0o700); err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(root, "tablespaces", "fast", "data")
	_ = os.Symlink(mine, filepath.Join(links, "16384"))
	_ = os.Symlink("/srv/other", filepath.Join(links, "16385"))
	tbs := []tablespacePath{{Location: LocalTablespaceLocation + "/fast/data", Dir: mine}}
	if err := relinkTablespaces(filepath.Join(root, "data"), tbs); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.Readlink(filepath.Join(links, "16384")); got != LocalTablespaceLocation+"/fast/data" {
		t.Errorf("16384 -> %q", got)
	}
	if got, _ := os.Readlink(filepath.Join(links, "16385")); got != "/srv/other" {
		t.Errorf("16385 -> %q", got)
	}
}
