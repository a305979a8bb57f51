package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgward/pgward/internal/local"
)

// newCertificateCmd is `pgward local certificate USER --out DIR`.
func newCertificateCmd(dir *string) *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "certificate USER --out DIR",
		Short: "Issue a client certificate for a PostgreSQL user, signed by the cluster's client CA (for cert pg_hba lines)",
		Long: `Issue a client certificate whose common name is USER, signed by the cluster's
client CA, for pg_hba lines with the cert method (hostssl ... cert). DIR is
created (0700) and receives tls.crt, tls.key and the server CA's ca.crt (0600);
the printed connection string uses them with sslmode=verify-full. pgward's own
identities are refused, and postgres unless enableSuperuserAccess is true. Run
as root, the files belong to the cluster's OS user.`,
		Example: `  pgward local certificate app --out ./app-cert
  psql "$(pgward local certificate app --out ./app-cert) dbname=app"`,
		Args: cobra.ExactArgs(1),
		RunE: inStateDir(dir, func(cmd *cobra.Command, d string, args []string) error {
			conninfo, err := local.IssueUserCertificate(local.Layout{Dir: d}, args[0], out, time.Now())
			if err != nil {
				return err
			}
			_, _ = fmt.Fprintln(cmd.OutOrStdout(), conninfo)
			return nil
		}),
	}
	c.Flags().StringVar(&out, "out", "", "a new directory for tls.crt, tls.key and ca.crt")
	_ = c.MarkFlagRequired("out")
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
	return c
}
