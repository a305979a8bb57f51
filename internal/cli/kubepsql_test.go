package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/secrets"
)

const testPassword = "s3cr:et\\pw" // #nosec G101 -- a made-up password

func TestPsqlInvocation(t *testing.T) {
	login := secrets.Credentials{Username: "app", Password: testPassword, DBName: "app"}
	environ := []string{"PATH=/usr/bin", "TERM=xterm", "PGPASSWORD=leak", "PGHOST=evil", "PGSSLMODE=disable", "PGSERVICEFILE=/x", "HOME=/home/u"}
	argv, env := psqlInvocation("/tmp/pgward-psql-1", "pl-rw", 40123, login, []string{"-c", "SELECT 1"}, environ)
	wantConn := "host=pl-rw hostaddr=127.0.0.1 port=40123 user=app dbname=app sslmode=verify-full sslrootcert=/tmp/pgward-psql-1/ca.crt application_name=kubectl-pgward"
	if want := []string{"psql", "-d", wantConn, "-c", "SELECT 1"}; !slices.Equal(argv, want) {
		t.Errorf("argv\n %q\nwant\n %q", argv, want)
	}
	if want := []string{"PATH=/usr/bin", "TERM=xterm", "HOME=/home/u", "PGPASSFILE=/tmp/pgward-psql-1/pgpass"}; !slices.Equal(env, want) {
		t.Errorf("env %q, want %q", env, want)
	}
	for _, s := range append(argv, env...) {
		if strings.Contains(s, "s3cr") || strings.Contains(s, "leak") {
			t.Errorf("a password in %q", s)
		}
	}
	// A temporary directory with a space keeps the connection string whole.
	argv, _ = psqlInvocation("/tmp/my dir", "pl-rw", 1, login, nil, nil)
	if !strings.Contains(argv[2], "sslrootcert='/tmp/my dir/ca.crt'") {
		t.Errorf("conninfo %q", argv[2])
	}
}

func TestConninfoValue(t *testing.T) {
	for in, want := range map[string]string{
		"pl-rw":        "pl-rw",
		"":             "''",
		"/a b/c":       "'/a b/c'",
		`it's`:         `'it\'s'`,
		`a\b`:          `'a\\b'`,
		"x=y":          "'x=y'",
		"a\nsslmode=x": "'a\nsslmode=x'",
	} {
		if got := conninfoValue(in); got != want {
			t.Errorf("conninfoValue(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRunPsqlFilesAndExitStatus runs a stand-in psql (a shell script: the
// real psql's behaviour is proven on real pods by
// TestPluginCertificateAndPsqlOnPods) that reports what it was given:
// the pgpass file is 0600 in a 0700 directory and holds the password,
// nothing else carries it, psql's exit status comes back and the files
// are gone afterwards.
func TestRunPsqlFilesAndExitStatus(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "psql")
	script := `#!/bin/sh
echo "args: $*"
echo "passfile: $PGPASSFILE"
stat -c 'mode %a' "$PGPASSFILE" "$(dirname "$PGPASSFILE")" "$(dirname "$PGPASSFILE")/ca.crt"
cat "$PGPASSFILE"
env | grep -c s3cr
exit 3
`
	if err := os.WriteFile(bin, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	target := &kube.PsqlTarget{Pod: "pl-1", ServerName: "pl-rw", ServerCA: []byte("CA"),
		Login: secrets.Credentials{Username: "app", Password: testPassword, DBName: "app"}}
	var out bytes.Buffer
	cmd := &cobra.Command{}
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetIn(strings.NewReader(""))
	err := runPsql(cmd, bin, "127.0.0.1:40123", target, []string{"-c", "SELECT 1"})
	var exit *ExitCodeError
	if !errors.As(err, &exit) || exit.Code != 3 {
		t.Fatalf("err %v, want psql's exit status 3\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{"mode 600\nmode 700\nmode 600\n", `pl-rw:40123:*:app:s3cr\:et\\pw` + "\n0\n", "-c SELECT 1"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(strings.SplitN(got, "\n", 2)[0], "s3cr") {
		t.Errorf("the password is on psql's command line: %s", got)
	}
	_, passfile, _ := strings.Cut(got, "passfile: ")
	passfile, _, _ = strings.Cut(passfile, "\n")
	if _, err := os.Stat(filepath.Dir(passfile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s left behind: %v", filepath.Dir(passfile), err)
	}
}
