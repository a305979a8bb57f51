package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgward/pgward/internal/local"
)

// maxPasswordInput bounds what --password-stdin reads.
const maxPasswordInput = 4096

func newRotatePasswordCmd(dir *string) *cobra.Command {
	var fromStdin bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "rotate-password USER",
		Short: "Give USER (the app owner, or postgres with superuser access) a new password, applied without a restart",
		Long: "Generates a new password (or reads one from stdin with --password-stdin), replaces the user's secret " +
			"(password, pgpass and URIs together) and waits until the primary accepts it. Open sessions keep running; " +
			"new ones need the new password, which `pgward local uri` clients read from pgpass. The password is never printed.",
		Args: cobra.ExactArgs(1),
		RunE: inStateDir(dir, func(cmd *cobra.Command, d string, args []string) error {
			var password string
			if fromStdin {
				p, err := readPassword(cmd.InOrStdin())
				if err != nil {
					return err
				}
				password = p
			}
			return local.RotatePassword(cmd.Context(), local.RotatePasswordOptions{
				Dir: d, User: args[0], Password: password, Timeout: timeout, Out: cmd.OutOrStdout(),
			})
		}),
	}
	c.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the new password from stdin (one line) instead of generating one")
	c.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the primary to apply it")
	return c
}

// readPassword reads one password from r: everything up to a final
// newline (LF or CRLF), which is not part of it.
func readPassword(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxPasswordInput+1))
	if err != nil {
		return "", fmt.Errorf("reading the password from stdin: %w", err)
	}
	if len(b) > maxPasswordInput {
		return "", fmt.Errorf("the password on stdin is longer than %d bytes", maxPasswordInput)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) == 0 {
		return "", errors.New("--password-stdin: stdin holds no password")
	}
	return string(b), nil
}

func newRotateCACmd(dir *string) *cobra.Command {
	var finish bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "rotate-ca",
		Short: "Replace the cluster's CA in two steps with no restart (start, then --finish once clients have the new ca.crt)",
		Long: "Without --finish: a new CA signs from now on, ca.crt trusts the new CA and the old one, and once every PostgreSQL " +
			"has reloaded it the replication and controller certificates are reissued; the server certificate stays on the old CA, " +
			"so clients holding the old ca.crt keep working. With --finish: the server certificate is reissued under the new CA, " +
			"then the old CA is trusted nowhere. Each step waits until every running instance confirms it.",
		Args: cobra.NoArgs,
		RunE: inStateDir(dir, func(cmd *cobra.Command, d string, _ []string) error {
			return local.RotateCA(cmd.Context(), local.RotateCAOptions{Dir: d, Finish: finish, Timeout: timeout, Out: cmd.OutOrStdout()})
		}),
	}
	c.Flags().BoolVar(&finish, "finish", false, "end the rotation: the server certificate moves to the new CA and the old CA is dropped")
	c.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long to wait for the instances at each step")
	return c
}
