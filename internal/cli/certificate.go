package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/local"
)

// newCertificateCmd is `pgward local certificate USER --out DIR`.
func newCertificateCmd(dir *string) *cobra.Command {
	var out string
	var validity time.Duration
	c := &cobra.Command{
		Use:   "certificate USER --out DIR",
		Short: "Issue a client certificate for a PostgreSQL user, signed by the cluster's client CA (for cert pg_hba lines)",
		Long: `Issue a client certificate whose common name is USER, signed by the cluster's
client CA, for pg_hba lines with the cert method (hostssl ... cert). DIR is
created (0700) and receives tls.crt, tls.key and the server CA's ca.crt (0600);
the printed connection string uses them with sslmode=verify-full. pgward's own
identities are refused, and postgres unless enableSuperuserAccess is true. The
certificate is valid for 7 days unless --valid-for says otherwise (at most 90
days): nothing can revoke it, so it should not outlive its use. Run as root,
the files belong to the cluster's OS user.`,
		Example: `  pgward local certificate app --out ./app-cert
  psql "$(pgward local certificate app --out ./app-cert) dbname=app"`,
		Args: cobra.ExactArgs(1),
		RunE: inStateDir(dir, func(cmd *cobra.Command, d string, args []string) error {
			conninfo, err := local.IssueUserCertificate(local.Layout{Dir: d}, args[0], out, validity, time.Now())
			if err != nil {
				return err
			}
			_, _ = fmt.Fprintln(cmd.OutOrStdout(), conninfo)
			return nil
		}),
	}
	c.Flags().StringVar(&out, "out", "", "a new directory for tls.crt, tls.key and ca.crt")
	c.Flags().DurationVar(&validity, "valid-for", v1.DefaultUserCertificateValidity, "how long the certificate is valid (at most 2160h)")
	_ = c.MarkFlagRequired("out")
	c.PreRunE = absoluteFlag("out")
	return c
}

// newReportCmd is `pgward local report --out FILE.zip`.
func newReportCmd(dir *string) *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "report --out FILE.zip",
		Short: "Write a zip to attach to a bug report: manifest, state, status, logs, rendered configuration; secrets redacted",
		Long: `Write a zip of what a maintainer needs to understand a problem: the stored
manifest, state and planner memory, the cluster's status, the controller's and
every instance's logs (their last 4 MiB), the rendered configuration, and a
listing of the secrets (names, sizes and modes, never their content). Every
value of every secret pgward holds is replaced wherever it appears, and so are
private keys, SCRAM verifiers and pg_hba secrets whatever their source.`,
		Example: `  pgward local report --out /tmp/pgward-report.zip`,
		Args:    cobra.NoArgs,
		RunE: inStateDir(dir, func(cmd *cobra.Command, d string, _ []string) error {
			n, err := local.WriteReport(cmd.Context(), local.Layout{Dir: d}, out, time.Now())
			if err != nil {
				return err
			}
			_, _ = fmt.Fprintf(cmd.OutOrStdout(), "%s: %d files, secrets redacted\n", out, n)
			return nil
		}),
	}
	c.Flags().StringVar(&out, "out", "", "the zip to write (must not exist)")
	_ = c.MarkFlagRequired("out")
	c.PreRunE = absoluteFlag("out")
	return c
}

// newPsqlCmd is `pgward local psql [-- PSQL_ARGS]`: psql as the app owner
// (or postgres with --superuser, when superuser access is on), over
// verify-full TLS to whichever instance is primary, the password read by
// libpq from the secret's pgpass (never on a command line).
func newPsqlCmd(dir *string) *cobra.Command {
	var superuser, readOnly bool
	c := &cobra.Command{
		Use:   "psql [-- PSQL_ARGS]",
		Short: "Run psql as the app owner (or postgres with --superuser) over verify-full TLS to the primary",
		Example: `  pgward local psql
  pgward local psql -- -c 'SELECT now()'
  pgward local psql --ro -- -c 'SELECT pg_is_in_recovery()'`,
		RunE: inStateDir(dir, func(_ *cobra.Command, d string, args []string) error {
			st, err := local.LoadState(local.Layout{Dir: d})
			if err != nil {
				return err
			}
			c, err := loadStoredCluster(d)
			if err != nil {
				return err
			}
			user := c.Spec.Bootstrap.Application().Owner
			if superuser {
				user = v1.SuperuserRole
			}
			uri, err := local.URI(local.URIOptions{Dir: d, User: user, ReadOnly: readOnly})
			if err != nil {
				return err
			}
			bin := filepath.Join(st.PGBinDir, "psql")
			argv := append([]string{"psql", "-d", uri}, args...)
			// #nosec G204 -- PostgreSQL's own psql, the user's arguments
			return syscall.Exec(bin, argv, psqlEnv())
		}),
	}
	c.Flags().BoolVar(&superuser, "superuser", false, "connect as postgres (needs enableSuperuserAccess: true)")
	c.Flags().BoolVar(&readOnly, "ro", false, "prefer a standby (read-only)")
	return c
}

// psqlEnv passes psql what a terminal session needs and nothing that
// could redirect it (PGHOST, PGPASSWORD...).
func psqlEnv() []string { return filterPsqlEnv(os.Environ()) }

// filterPsqlEnv keeps of environ what psqlEnv passes.
func filterPsqlEnv(environ []string) []string {
	var env []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "PATH", "HOME", "TERM", "LANG", "LC_ALL", "LC_CTYPE", "PAGER", "PSQL_PAGER", "COLUMNS", "LINES", "TZ":
			env = append(env, kv)
		}
	}
	return env
}

// loadStoredCluster reads the manifest the cluster runs with.
func loadStoredCluster(d string) (*v1.Cluster, error) {
	b, err := os.ReadFile(local.Layout{Dir: d}.ClusterFile())
	if err != nil {
		return nil, err
	}
	return v1.LoadAndValidate(b)
}

// absoluteFlag makes a path flag absolute before anything runs: as root,
// the command is rerun as the cluster's OS user from another directory.
func absoluteFlag(name string) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		v, err := cmd.Flags().GetString(name)
		if err != nil || v == "" {
			return err
		}
		abs, err := filepath.Abs(v)
		if err != nil {
			return err
		}
		return cmd.Flags().Set(name, abs)
	}
}
