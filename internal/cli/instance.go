package cli

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgward/pgward/internal/instance"
	"github.com/pgward/pgward/internal/instanceapi"
)

// NewInstanceCmd returns `pgward instance`, the instance manager.
func NewInstanceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "instance",
		Short: "Instance manager commands (run inside each pod or local instance)",
	}
	var configPath string
	run := &cobra.Command{
		Use:   "run",
		Short: "Run the instance manager: create or clone PGDATA, run postgres, serve status on the status port",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if os.Geteuid() == 0 {
				return errors.New("the instance manager never runs as root: PostgreSQL must run as an unprivileged user (run it as that user, or use `pgward local up --run-as`)")
			}
			cfg, err := instance.LoadConfig(configPath)
			if err != nil {
				return err
			}
			log, level := newLeveledLogger()
			log = log.With("instance", cfg.Name)
			m, err := instance.NewManager(cfg, log)
			if err != nil {
				return err
			}
			m.SetLogLevel(level)
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return m.Run(ctx)
		},
	}
	run.Flags().StringVar(&configPath, "config", "", "instance manager config file (JSON)")
	_ = run.MarkFlagRequired("config")
	install := &cobra.Command{
		Use:    "install-binary DEST",
		Short:  "Copy this pgward binary to DEST (the init container of a pod whose image has no pgward)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := instance.InstallBinary(args[0]); err != nil {
				return err
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "pgward copied to %s\n", args[0])
			return err
		},
	}
	cmd.AddCommand(run, install, newInstanceStatusCmd())
	return cmd
}

// newInstanceStatusCmd is `pgward instance status`: read one instance
// manager's status port with the identity given, as the operator or the
// local controller does with theirs. It is how a person (or a test) checks
// which certificates the port accepts; it never sends commands.
func newInstanceStatusCmd() *cobra.Command {
	var addr, caFile, certFile, keyFile, serverName string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "status --addr HOST:PORT --ca CA.crt [--cert tls.crt --key tls.key]",
		Short: "Read an instance manager's status over TLS with the given client certificate",
		Example: `  # inside a pod holding the operator's client certificate of cluster c:
  pgward instance status --addr 10.244.0.7:8000 --ca ca.crt --cert tls.crt --key tls.key --server-name c-rw`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			caPEM, err := os.ReadFile(caFile) // #nosec G304 -- a path the user names
			if err != nil {
				return fmt.Errorf("--ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(caPEM) {
				return fmt.Errorf("--ca %s: no PEM certificate", caFile)
			}
			var cert tls.Certificate
			if certFile != "" || keyFile != "" {
				if cert, err = tls.LoadX509KeyPair(certFile, keyFile); err != nil {
					return fmt.Errorf("--cert/--key: %w", err)
				}
			}
			c := instanceapi.NewClient(pool, cert, serverName, timeout)
			defer c.CloseIdle()
			st, err := c.Status(cmd.Context(), addr, 0)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "", "the instance's status address (host:port)")
	f.StringVar(&caFile, "ca", "", "CA that issued the instance's server certificate")
	f.StringVar(&certFile, "cert", "", "client certificate to present (none if empty)")
	f.StringVar(&keyFile, "key", "", "its private key")
	f.StringVar(&serverName, "server-name", "", "name the server certificate is checked against (default: the host of --addr)")
	f.DurationVar(&timeout, "timeout", 5*time.Second, "connection and request timeout")
	_ = cmd.MarkFlagRequired("addr")
	_ = cmd.MarkFlagRequired("ca")
	return cmd
}
