package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
	"github.com/pgward/pgward/internal/local"
	"github.com/pgward/pgward/internal/secrets"
)

// newKubeCertificateCmd is `kubectl pgward certificate CLUSTER --user USER`.
func newKubeCertificateCmd(kc *kubeConn) *cobra.Command {
	var user, secret, out string
	var validity time.Duration
	c := &cobra.Command{
		Use:   "certificate CLUSTER --user USER (--secret NAME | --out DIR)",
		Short: "Issue a client certificate for a PostgreSQL user, signed by the cluster's client CA (for cert pg_hba lines)",
		Long: `Issue a client certificate whose common name is USER, signed by the Cluster's
client CA, for pg_hba lines with the cert method (hostssl ... cert). The key is
generated here, on this machine, and written only where you say:

  --out DIR     a new directory (0700) on this machine with tls.crt, tls.key
                and the server CA's ca.crt (each 0600); the printed connection
                string uses them with sslmode=verify-full;
  --secret NAME a kubernetes.io/tls Secret in the Cluster's namespace (tls.crt,
                tls.key, ca.crt), labelled for and owned by the Cluster. An
                existing Secret is replaced only if pgward wrote it for this
                Cluster (a renewal), never otherwise.

The same users are refused as by pgward local certificate: pgward's own
identities (streaming_replica, pgward-controller, pgward-metrics,
pgward_monitor), PostgreSQL's pg_ roles, and postgres unless
enableSuperuserAccess is true. The certificate is valid for 7 days unless
--valid-for says otherwise (at most 90 days): nothing can revoke it.

RBAC needed in the Cluster's namespace: get on clusters.postgresql.pgward.io
and get on the secret <cluster>-ca (the client CA, key included; with
spec.certificates.clientCASecret, that secret, and serverCASecret's too);
with --secret, get, create and update on secrets. Reading the CA's key lets
its reader sign a certificate for any role a cert line admits: it is
database-administrator power, grant it as such (docs/security.md).`,
		Example: `  kubectl pgward certificate cluster-example --user app --out ./app-cert -n db
  kubectl pgward certificate cluster-example --user app --secret app-client-cert --valid-for 24h`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (secret == "") == (out == "") {
				return errors.New("give exactly one of --secret NAME (a Secret) or --out DIR (files on this machine)")
			}
			_, cl, ns, err := kc.client()
			if err != nil {
				return err
			}
			key := types.NamespacedName{Namespace: ns, Name: args[0]}
			ctx := cmd.Context()
			uc, err := kube.IssueUserCertificate(ctx, cl, key, user, validity, time.Now())
			if err != nil {
				return err
			}
			if secret != "" {
				created, err := kube.StoreUserCertificate(ctx, cl, uc, secret)
				if err != nil {
					return err
				}
				verb := map[bool]string{true: "created", false: "renewed"}[created]
				_, _ = fmt.Fprintf(cmd.OutOrStdout(), "secret %s/%s %s: a client certificate for %q, expires %s\n", ns, secret, verb, user, uc.Cert.Cert.NotAfter.UTC().Format(time.RFC3339))
				return nil
			}
			abs, err := filepath.Abs(out)
			if err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			if err := local.WriteCertificateDir(abs, uc.Cert.CertPEM, uc.Cert.KeyPEM, uc.ServerCA); err != nil {
				return err
			}
			_, _ = fmt.Fprintln(cmd.OutOrStdout(), certConninfo(build.ClientHost(uc.Cluster), build.PostgresPort, user, abs))
			return nil
		},
	}
	c.Flags().StringVar(&user, "user", "", "the PostgreSQL role the certificate is for (its common name)")
	c.Flags().StringVar(&secret, "secret", "", "write a kubernetes.io/tls Secret of this name in the Cluster's namespace")
	c.Flags().StringVar(&out, "out", "", "write tls.crt, tls.key and ca.crt into this new directory on this machine")
	c.Flags().DurationVar(&validity, "valid-for", v1.DefaultUserCertificateValidity, "how long the certificate is valid (at most 2160h)")
	_ = c.MarkFlagRequired("user")
	return c
}

// certConninfo is the libpq connection string for a certificate written
// into dir: the read-write Service, verify-full against the server CA.
func certConninfo(host string, port int, user, dir string) string {
	return strings.Join([]string{
		"host=" + conninfoValue(host), "port=" + strconv.Itoa(port), "user=" + conninfoValue(user), "sslmode=verify-full",
		"sslrootcert=" + conninfoValue(filepath.Join(dir, "ca.crt")),
		"sslcert=" + conninfoValue(filepath.Join(dir, "tls.crt")),
		"sslkey=" + conninfoValue(filepath.Join(dir, "tls.key")),
	}, " ")
}

// conninfoValue quotes a libpq keyword/value when it needs it (a path with
// a space or a quote): single quotes, with ' and \ escaped by a backslash.
func conninfoValue(s string) string {
	if s != "" && !strings.ContainsAny(s, " '\\\t\n\r=") {
		return s
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// newKubePsqlCmd is `kubectl pgward psql CLUSTER [INSTANCE] [-- PSQL_ARGS]`.
func newKubePsqlCmd(kc *kubeConn) *cobra.Command {
	var superuser bool
	c := &cobra.Command{
		Use:   "psql CLUSTER [INSTANCE] [-- PSQL_ARGS]",
		Short: "Run psql on this machine as the app owner (or postgres with --superuser) over verify-full TLS to the primary, through a port-forward",
		Long: `Runs psql (from your PATH) on this machine, connected through a port-forward
to the primary's PostgreSQL (or INSTANCE's) as the application owner, or as
postgres with --superuser when the Cluster's spec.enableSuperuserAccess is
true. TLS is verify-full: the server's certificate is checked against the
cluster's CA for the name it carries (the read-write Service), while the
connection goes to the forwarded port on 127.0.0.1. The password reaches libpq
through a temporary pgpass file (0600, in a 0700 directory removed when psql
exits), never on a command line or in the environment. psql's exit status is
the command's.

RBAC needed in the Cluster's namespace: get on clusters.postgresql.pgward.io,
get on pods, create on pods/portforward, and get on the secret <cluster>-app
(with --superuser, <cluster>-superuser or spec.superuserSecret).`,
		Example: `  kubectl pgward psql cluster-example -n db
  kubectl pgward psql cluster-example -- -c 'SELECT current_user'
  kubectl pgward psql cluster-example cluster-example-2 -- -c 'SELECT pg_is_in_recovery()'
  kubectl pgward psql cluster-example --superuser`,
		Args: func(cmd *cobra.Command, args []string) error {
			n := len(args)
			if at := cmd.ArgsLenAtDash(); at >= 0 {
				n = at
			}
			if n < 1 || n > 2 {
				return fmt.Errorf("want CLUSTER [INSTANCE] before --, got %d arguments", n)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			own, psqlArgs := args, []string(nil)
			if at := cmd.ArgsLenAtDash(); at >= 0 {
				own, psqlArgs = args[:at], args[at:]
			}
			instance := ""
			if len(own) == 2 {
				instance = own[1]
			}
			bin, err := exec.LookPath("psql")
			if err != nil {
				return fmt.Errorf("psql is not in your PATH (install PostgreSQL's client): %w", err)
			}
			rc, cl, ns, err := kc.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			t, err := kube.ResolvePsql(ctx, cl, types.NamespacedName{Namespace: ns, Name: own[0]}, instance, superuser)
			if err != nil {
				return err
			}
			addr, stop, err := kube.PortForwarder{Config: rc}.Forward(ctx, ns, t.Pod, build.PostgresPort)
			if err != nil {
				return err
			}
			defer stop()
			return runPsql(cmd, bin, addr, t, psqlArgs)
		},
	}
	c.Flags().BoolVar(&superuser, "superuser", false, "connect as postgres (needs spec.enableSuperuserAccess: true)")
	return c
}

// runPsql writes the temporary CA and pgpass files, runs psql with the
// terminal passed through and removes the files; psql's exit status
// becomes an ExitCodeError.
func runPsql(cmd *cobra.Command, bin, addr string, t *kube.PsqlTarget, psqlArgs []string) error {
	_, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return fmt.Errorf("port-forward address %q: %w", addr, err)
	}
	line, err := secrets.PgpassLine(t.Login, t.ServerName, port)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "pgward-psql-") // 0700
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	files := map[string][]byte{"pgpass": []byte(line), "ca.crt": t.ServerCA}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	argv, env := psqlInvocation(dir, t.ServerName, port, t.Login, psqlArgs, os.Environ())
	// #nosec G204 -- the user's psql, with the user's own arguments
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	p := exec.CommandContext(ctx, bin, argv[1:]...)
	p.Env = env
	p.Stdin, p.Stdout, p.Stderr = cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()
	// Ctrl-C is psql's (it cancels the query): the plugin, in the same
	// process group, must not die of it and leave the files behind. A
	// caught signal is reset to the default in psql, an ignored one would
	// not be.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	err = p.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if code := exit.ExitCode(); code > 0 {
			return &ExitCodeError{Code: code}
		}
		return fmt.Errorf("psql: %w", err)
	}
	return err
}

// psqlInvocation is psql's argv and environment: a connection string
// with verify-full to serverName at 127.0.0.1:port, the CA and the
// pgpass file in dir, then the user's arguments. The environment is the
// terminal's (psqlEnv: nothing that could redirect the connection or
// carry a password) and PGPASSFILE, a path: the password is in the file.
func psqlInvocation(dir, serverName string, port int, login secrets.Credentials, psqlArgs, environ []string) ([]string, []string) {
	conninfo := strings.Join([]string{
		"host=" + conninfoValue(serverName), "hostaddr=127.0.0.1", "port=" + strconv.Itoa(port),
		"user=" + conninfoValue(login.Username), "dbname=" + conninfoValue(login.DBName),
		"sslmode=verify-full", "sslrootcert=" + conninfoValue(filepath.Join(dir, "ca.crt")),
		"application_name=kubectl-pgward",
	}, " ")
	argv := append([]string{"psql", "-d", conninfo}, psqlArgs...)
	env := append(filterPsqlEnv(environ), "PGPASSFILE="+filepath.Join(dir, "pgpass"))
	return argv, env
}
