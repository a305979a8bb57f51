package instance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
)

// pgBinCandidates are where PostgreSQL 15's server binaries live in common
// images, tried when the configured directory has no postgres: Debian and
// Ubuntu (CloudNativePG's images, pgward's), the PGDG RPMs, a source build.
var pgBinCandidates = []string{
	"/usr/lib/postgresql/15/bin",
	"/usr/pgsql-15/bin",
	"/usr/local/pgsql/bin",
}

// serverVersion parses `postgres --version`: "postgres (PostgreSQL) 15.8 (Debian 15.8-1)".
var serverVersion = regexp.MustCompile(`^postgres \(PostgreSQL\) ([0-9]+)`)

// ResolvePGBinDir returns the directory of a PostgreSQL 15 server: the
// configured one, or else the first candidate (then PATH) that has
// postgres. An image with another major, or none, is refused with what was
// looked at: pgward validates every parameter against PostgreSQL 15.
func ResolvePGBinDir(ctx context.Context, configured string) (string, error) {
	tried := []string{}
	dirs := append([]string{configured}, pgBinCandidates...)
	if p, err := exec.LookPath("postgres"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		bin := filepath.Join(d, "postgres")
		if fi, err := os.Stat(bin); err != nil || fi.IsDir() {
			tried = append(tried, d)
			continue
		}
		major, err := postgresMajor(ctx, bin)
		if err != nil {
			return "", err
		}
		if major != v1.SupportedMajor {
			return "", fmt.Errorf("%s is PostgreSQL %d: pgward supports PostgreSQL %d (use an image of major %d: spec.imageName or the catalog's entry)",
				bin, major, v1.SupportedMajor, v1.SupportedMajor)
		}
		return d, nil
	}
	return "", fmt.Errorf("no PostgreSQL server (postgres) in %s or on PATH: the image must provide PostgreSQL %d's binaries (docs/operator.md, \"Operand images\"), or tell the operator where with --pg-bin-dir",
		strings.Join(tried, ", "), v1.SupportedMajor)
}

func postgresMajor(ctx context.Context, bin string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output() // #nosec G204 -- a fixed name in a directory the config or a fixed list gives
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return 0, fmt.Errorf("%s --version: %w: %s", bin, err, strings.TrimSpace(string(ee.Stderr)))
		}
		return 0, fmt.Errorf("%s --version: %w", bin, err)
	}
	m := serverVersion.FindStringSubmatch(strings.TrimSpace(string(out)))
	if m == nil {
		return 0, fmt.Errorf("%s --version: unexpected answer %q", bin, strings.TrimSpace(string(out)))
	}
	return strconv.Atoi(m[1])
}
