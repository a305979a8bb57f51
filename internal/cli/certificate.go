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
