package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/audit"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/kube"
)

// PluginName is the base name under which the binary is a kubectl plugin:
// kubectl runs `kubectl-pgward` for `kubectl pgward ...`.
const PluginName = "kubectl-pgward"

// NewRootCmdFor returns the command tree for a binary started as argv0:
// the Kubernetes verbs at the top level when it is the kubectl plugin,
// pgward's whole tree otherwise.
func NewRootCmdFor(argv0 string) *cobra.Command {
	if strings.TrimSuffix(filepath.Base(argv0), ".exe") == PluginName {
		return newPluginCmd()
	}
	return NewRootCmd()
}

// newPluginCmd is `kubectl pgward`.
func newPluginCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           PluginName,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl pgward"},
		Version:       Version,
		Short:         "Day-2 operations on pgward Clusters on Kubernetes (a kubectl plugin)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	addKubeVerbs(root)
	return root
}

// newKubeCmd is `pgward kube`: the plugin's verbs from the main binary.
func newKubeCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "kube",
		Short: "Day-2 operations on Clusters on Kubernetes (also installed as `kubectl pgward`)",
	}
	addKubeVerbs(c)
	return c
}

// kubeConn holds what every Kubernetes verb needs to reach the API server,
// with kubectl's flags and loading rules (--kubeconfig, $KUBECONFIG,
// ~/.kube/config; --context, --cluster, --user, -n).
type kubeConn struct {
	rules     *clientcmd.ClientConfigLoadingRules
	overrides clientcmd.ConfigOverrides
}

func addKubeVerbs(parent *cobra.Command) {
	kc := &kubeConn{rules: clientcmd.NewDefaultClientConfigLoadingRules()}
	fs := parent.PersistentFlags()
	fs.StringVar(&kc.rules.ExplicitPath, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	// Only the flags that choose among what the kubeconfig holds: no
	// token, password or key flags, so no credential is ever put on a
	// command line (where ps and shell history would see it).
	ctx := clientcmd.RecommendedContextOverrideFlags("")
	fs.StringVar(&kc.overrides.CurrentContext, "context", "", "the kubeconfig context to use")
	clientcmd.BindContextFlags(&kc.overrides.Context, fs, ctx)
	parent.AddCommand(newKubeStatusCmd(kc), newPromoteVerb(kc), newKubeFenceCmd(kc), newKubeHibernateCmd(kc), newKubeRestartCmd(kc), newKubeAuditCmd(kc))
	parent.AddCommand(newKubeCertificateCmd(kc), newKubePsqlCmd(kc))
	// pgward validate, so that plugin users have it: the same checks,
	// no API call.
	parent.AddCommand(newValidateCmd(), newKubeReloadCmd(kc), newKubeReportCmd(kc))
}

// client returns the REST config, a client for pgward's kinds and the
// namespace the command works in.
func (kc *kubeConn) client() (*rest.Config, client.Client, string, error) {
	// client-go logs what it handles itself (a port-forward's closed
	// stream) to stderr through klog: not the plugin's output.
	if !strings.EqualFold(os.Getenv("PGWARD_LOG_LEVEL"), "debug") {
		quietKlog()
	}
	cfg := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(kc.rules, &kc.overrides)
	ns, _, err := cfg.Namespace()
	if err != nil {
		return nil, nil, "", fmt.Errorf("kubeconfig: %w", err)
	}
	rc, err := cfg.ClientConfig()
	if err != nil {
		return nil, nil, "", fmt.Errorf("kubeconfig: %w", err)
	}
	scheme, err := kube.NewScheme()
	if err != nil {
		return nil, nil, "", err
	}
	cl, err := client.New(rc, client.Options{Scheme: scheme})
	if err != nil {
		return nil, nil, "", fmt.Errorf("connecting to the API server: %w", err)
	}
	return rc, cl, ns, nil
}

func newKubeStatusCmd(kc *kubeConn) *cobra.Command {
	var output string
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "status CLUSTER",
		Short: "Show a Cluster on Kubernetes: primary, instances with role, LSN, lag, timeline, replication TLS, certificates, archiving",
		Long: `Shows the Cluster's status as the operator wrote it, and each instance as it
reports itself on its status port (reached through a port-forward, with
mutual TLS end to end, presenting the cluster's controller certificate).

RBAC needed in the Cluster's namespace: get on clusters.postgresql.pgward.io,
get on pods, create on pods/portforward, and get on the secret
<cluster>-controller (plus the spec.certificates.serverCASecret secret when
the server CA is the user's). That secret lets its reader command the
instances: grant it only to those who may operate the cluster. Without it
(or without pods/portforward) the command still shows the Cluster's status
and says why each instance was not asked.`,
		Example: `  kubectl pgward status cluster-example -n db
  kubectl pgward status cluster-example -o json
  pgward kube status cluster-example --context prod`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("--output: unknown format %q (table or json)", output)
			}
			rc, cl, ns, err := kc.client()
			if err != nil {
				return err
			}
			r, err := kube.Report(cmd.Context(), cl, kube.PortForwarder{Config: rc}, types.NamespacedName{Namespace: ns, Name: args[0]}, timeout)
			if err != nil {
				return err
			}
			return printReport(cmd.OutOrStdout(), r, output)
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	c.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for each instance's answer")
	return c
}

func printReport(out io.Writer, r *kube.ClusterReport, output string) error {
	if output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	_, _ = fmt.Fprintf(out, "Cluster %s/%s  phase: %s  primary: %s (target %s)  ready: %d/%d  timeline: %d\n",
		r.Namespace, r.Cluster, dash(r.Phase), dash(r.CurrentPrimary), dash(r.TargetPrimary), r.ReadyInstances, r.Instances, r.TimelineID)
	if r.Ready != "" {
		_, _ = fmt.Fprintf(out, "Ready: %s\n", r.Ready)
	}
	for k, v := range r.Annotations {
		_, _ = fmt.Fprintf(out, "Requested: %s=%s\n", k, v)
	}
	_, _ = fmt.Fprintln(out)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(w, "INSTANCE\tROLE\tSTATE\tTL\tLSN\tLAG\tTLS\tPOD\tNODE")
	for _, i := range r.Instance {
		lsn := i.CurrentLSN
		if lsn == "" {
			lsn = i.ReplayedLSN
		}
		lag := "-"
		if i.LagBytes != nil {
			lag = fmt.Sprintf("%d B", *i.LagBytes)
		}
		_, _ = fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", i.Name, i.Role, i.State, i.Timeline, dash(lsn), lag, dash(i.TLS), dash(i.PodPhase), dash(i.Node))
	}
	_ = w.Flush()
	if len(r.Certificates) > 0 {
		_, _ = fmt.Fprintln(out, "\nCertificates:")
		for _, c := range r.Certificates {
			_, _ = fmt.Fprintf(out, "  %s (CN %s) expires %s (in %s)\n", c.Name, c.Subject, c.NotAfter.Format(time.RFC3339), time.Until(c.NotAfter).Round(time.Hour))
		}
	}
	for _, i := range r.Instance {
		if i.ServerCertNotAfter != nil {
			_, _ = fmt.Fprintf(out, "  %s server certificate expires %s\n", i.Name, i.ServerCertNotAfter.Format(time.RFC3339))
		}
	}
	for _, i := range r.Instance {
		if a := i.Archive; a != nil {
			_, _ = fmt.Fprintf(out, "\n%s archiving: %d archived, last %s, %d waiting, %d failed", i.Name, a.ArchivedCount, dash(a.LastArchivedWAL), a.Pending, a.FailedCount)
		}
		if b := i.Backup; b != nil {
			_, _ = fmt.Fprintf(out, "\n%s last backup (started %s): %s %s %s", i.Name, b.Started.Format(time.RFC3339), b.Phase, b.Label, b.Error)
		}
	}
	if r.Error != "" {
		_, _ = fmt.Fprintf(out, "\ncluster: %s", r.Error)
	}
	for _, i := range r.Instance {
		if i.Error != "" {
			_, _ = fmt.Fprintf(out, "\n%s: %s", i.Name, i.Error)
		}
	}
	_, _ = fmt.Fprintln(out)
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// newPromoteVerb is `kubectl pgward promote`, the same request as
// `pgward promote`.
func newPromoteVerb(kc *kubeConn) *cobra.Command {
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "promote CLUSTER INSTANCE",
		Short: "Switch over a Cluster to INSTANCE and wait until it is the primary",
		Long: `Asks the operator for a switchover through the Cluster's
pgward.io/switchover-to annotation and waits until the Cluster's status names
INSTANCE as its primary. Needs get and patch on clusters.postgresql.pgward.io.`,
		Example: `  kubectl pgward promote cluster-example cluster-example-2 -n db`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, cl, ns, err := kc.client()
			if err != nil {
				return err
			}
			return promoteOnKube(cmd, cl, types.NamespacedName{Namespace: ns, Name: args[0]}, args[1], timeout)
		},
	}
	c.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long to wait for the switchover")
	return c
}

func promoteOnKube(cmd *cobra.Command, cl client.Client, key types.NamespacedName, to string, timeout time.Duration) error {
	start := time.Now()
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	if err := kube.RequestSwitchover(ctx, cl, key, to, timeout); err != nil {
		return err
	}
	_, _ = fmt.Fprintf(cmd.OutOrStdout(), "%s is the primary of %s (%s)\n", to, key, time.Since(start).Round(time.Millisecond))
	return nil
}

func newKubeFenceCmd(kc *kubeConn) *cobra.Command {
	return &cobra.Command{
		Use:   "fence on|off CLUSTER INSTANCE|*",
		Short: "Fence an instance (PostgreSQL shut down and kept down; a fenced primary is not failed over), or unfence it",
		Long: `Adds INSTANCE to (on) or removes it from the Cluster's
cnpg.io/fencedInstances annotation ("*": every instance); the operator shuts
PostgreSQL down cleanly on it and keeps it down, the pod running and not
ready. A fenced primary is not failed over: writes stop until it is
unfenced, when it comes back as the primary. Needs get and patch on
clusters.postgresql.pgward.io.`,
		Example: `  kubectl pgward fence on cluster-example cluster-example-2 -n db
  kubectl pgward fence off cluster-example cluster-example-2 -n db
  kubectl pgward fence on cluster-example '*'`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			on, err := onOff(args[0])
			if err != nil {
				return err
			}
			_, cl, ns, err := kc.client()
			if err != nil {
				return err
			}
			key := types.NamespacedName{Namespace: ns, Name: args[1]}
			if err := kube.SetFencing(cmd.Context(), cl, key, args[2], on); err != nil {
				return err
			}
			_, _ = fmt.Fprintf(cmd.OutOrStdout(), "fencing of %s %s requested on %s (kubectl pgward status %s shows it)\n", args[2], args[0], key, args[1])
			return nil
		},
	}
}

func newKubeHibernateCmd(kc *kubeConn) *cobra.Command {
	return &cobra.Command{
		Use:   "hibernate on|off CLUSTER",
		Short: "Shut every instance down cleanly and delete the pods, PVCs kept (on); bring the cluster back on the same data (off)",
		Long: `Sets the Cluster's cnpg.io/hibernation annotation. on: the operator shuts
every instance down cleanly (the primary first), then deletes the pods and
keeps the PVCs. off: the pods are made again on the same PVCs and the same
primary starts first. Needs get and patch on clusters.postgresql.pgward.io.`,
		Example: `  kubectl pgward hibernate on cluster-example -n db
  kubectl pgward hibernate off cluster-example -n db`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			on, err := onOff(args[0])
			if err != nil {
				return err
			}
			_, cl, ns, err := kc.client()
			if err != nil {
				return err
			}
			key := types.NamespacedName{Namespace: ns, Name: args[1]}
			if err := kube.SetHibernation(cmd.Context(), cl, key, on); err != nil {
				return err
			}
			_, _ = fmt.Fprintf(cmd.OutOrStdout(), "hibernation %s requested on %s\n", args[0], key)
			return nil
		},
	}
}

func newKubeRestartCmd(kc *kubeConn) *cobra.Command {
	var wait bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "restart CLUSTER [INSTANCE]",
		Short: "Restart PostgreSQL: every instance, rolling (replicas one at a time, then a switchover), or one instance",
		Long: `Sets the Cluster's pgward.io/restart annotation; the operator takes it into
its planner's memory, removes it, and restarts as for settings that need a
restart: the replicas one at a time, each back streaming before the next,
then a switchover to the most advanced (primaryUpdateMethod: restart
restarts the primary in place; primaryUpdateStrategy: supervised waits for
your promote). With INSTANCE, that instance only. Waits until it is done
(--wait=false: only asks). Needs get and patch on
clusters.postgresql.pgward.io.`,
		Example: `  kubectl pgward restart cluster-example -n db
  kubectl pgward restart cluster-example cluster-example-3 -n db`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, cl, ns, err := kc.client()
			if err != nil {
				return err
			}
			instance := ""
			if len(args) == 2 {
				instance = args[1]
			}
			key := types.NamespacedName{Namespace: ns, Name: args[0]}
			if err := kube.RequestRestart(cmd.Context(), cl, key, instance); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			_, _ = fmt.Fprintf(out, "restart requested on %s\n", key)
			if !wait {
				return nil
			}
			return waitRestart(cmd.Context(), cl, key, timeout, out)
		},
	}
	c.Flags().BoolVar(&wait, "wait", true, "wait until every instance restarted and the cluster is healthy again")
	c.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "how long to wait")
	return c
}

// waitRestart polls the Cluster until kube.RestartProgress says the restart
// is over, printing each new state.
func waitRestart(ctx context.Context, cl client.Client, key types.NamespacedName, timeout time.Duration, out io.Writer) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := ""
	for {
		var c v1.Cluster
		if err := cl.Get(ctx, key, &c); err != nil {
			return fmt.Errorf("reading cluster %s: %w", key, err)
		}
		done, note, err := kube.RestartProgress(&c)
		if err != nil {
			return err
		}
		if note != last && note != "" {
			_, _ = fmt.Fprintln(out, note)
			last = note
		}
		if done {
			_, _ = fmt.Fprintf(out, "restart of %s done in %s\n", key, time.Since(start).Round(100*time.Millisecond))
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("restart of %s not done after %s (%s): see kubectl pgward status %s", key, timeout, last, key.Name)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func newKubeReloadCmd(kc *kubeConn) *cobra.Command {
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "reload CLUSTER",
		Short: "Apply the Cluster's configuration now on every instance, and wait until it is in effect",
		Long: `Sets the Cluster's pgward.io/reloadedAt annotation to a new request; the
operator passes it to every instance whose PostgreSQL runs, which re-reads
its manifest, secrets and certificates as its Secrets hold them now
(the operator has the kubelet refresh them at once), re-renders
postgresql.conf, pg_hba.conf and pg_ident.conf and reloads PostgreSQL.
reload waits until every instance reports the outcome (asking each on its
status port through a port-forward, as status does): a parameter that
needs a restart is named, with the restart command; an instance that
refused the configuration is named with PostgreSQL's reason, and the
command fails. Without it, instances apply a changed configuration at
their periodic check (10 s after the kubelet updated the Secret, which
may take a minute or more).

RBAC needed: get and patch on clusters.postgresql.pgward.io, and what
status needs to ask the instances (get on pods, create on pods/portforward,
get on the secret <cluster>-controller).`,
		Example: `  kubectl apply -f cluster.yaml                  # work_mem changed
  kubectl pgward reload cluster-example -n db    # in effect on every instance when it returns`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rc, cl, ns, err := kc.client()
			if err != nil {
				return err
			}
			key := types.NamespacedName{Namespace: ns, Name: args[0]}
			id, err := kube.RequestReload(cmd.Context(), cl, key, time.Now())
			if err != nil {
				return err
			}
			_, _ = fmt.Fprintf(cmd.OutOrStdout(), "reload %s requested on %s; waiting for every instance\n", id, key)
			outcomes, err := kube.WaitReload(cmd.Context(), cl, kube.PortForwarder{Config: rc}, key, id, timeout)
			if err != nil {
				return err
			}
			lines, err := instanceapi.SummarizeReload(outcomes, "kubectl pgward restart "+key.Name+" -n "+key.Namespace)
			_, _ = fmt.Fprintln(cmd.OutOrStdout(), strings.Join(lines, "\n"))
			if err != nil && noneAnswered(outcomes) {
				err = fmt.Errorf("%w (the operator passes the request to the instances: is it running? kubectl pgward status %s shows what they report)", err, key.Name)
			}
			return err
		},
	}
	c.Flags().DurationVar(&timeout, "timeout", 3*time.Minute, "how long to wait for every instance (the kubelet may take a while to refresh a pod's Secrets)")
	return c
}

func newKubeReportCmd(kc *kubeConn) *cobra.Command {
	var out, opNS string
	var tail int64
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "report CLUSTER [-o FILE.zip]",
		Short: "Write a zip to attach to a bug report: the Cluster, its pods, PVCs, services, events, statuses, configuration and logs; secrets redacted",
		Long: `Writes a zip of what a maintainer needs to understand a problem: the
Cluster and its Backups and ScheduledBackups, its pods, PVCs and Services,
the namespace's events about them, each instance's live status and the
configuration files PostgreSQL runs with (asked on the status port through
a port-forward, as status does), the last --tail lines of every container's
log, and the operator's Deployment and logs. Secrets appear by name, type
and key names only. Every value of every Secret of the namespace is
replaced wherever it appears, and so are private keys, tokens, SCRAM
verifiers, pg_hba secrets and password=/token= pairs whatever their source;
environment variables and annotations whose names say "password", "token",
"secret" or "key" are blanked. What could not be had is in errors.txt.

RBAC needed in the Cluster's namespace: what status needs (get on
clusters.postgresql.pgward.io, get on pods, create on pods/portforward, get
on the secret <cluster>-controller), list on secrets (to know every value to
redact; the command refuses to run without it), list on pods, PVCs,
services, events, backups and scheduledbackups, get on pods/log; and, in
the operator's namespace, get on its Deployment, list on pods and secrets,
get on pods/log (without these the report says so and goes on).`,
		Example: `  kubectl pgward report cluster-example -n db
  kubectl pgward report cluster-example -o /tmp/bug.zip --tail 5000`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if tail < 1 {
				return fmt.Errorf("--tail: at least 1 line")
			}
			rc, cl, ns, err := kc.client()
			if err != nil {
				return err
			}
			now := time.Now().UTC()
			if out == "" {
				out = fmt.Sprintf("pgward-report-%s-%s.zip", args[0], now.Format("20060102T150405Z"))
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) // #nosec G304 -- the user's path
			if err != nil {
				return fmt.Errorf("--output: %w", err)
			}
			names, err := kube.WriteBugReport(cmd.Context(), cl, kube.PortForwarder{Config: rc}, kube.KubeletLogs{Config: rc}, kube.BugReportOptions{
				Cluster: types.NamespacedName{Namespace: ns, Name: args[0]}, OperatorNamespace: opNS, TailLines: tail, Timeout: timeout, Now: now,
			}, f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				_ = os.Remove(out)
				return err
			}
			_, _ = fmt.Fprintf(cmd.OutOrStdout(), "%s: %d files, secrets redacted\n", out, len(names))
			return nil
		},
	}
	c.Flags().StringVarP(&out, "output", "o", "", "the zip to write, which must not exist (default pgward-report-CLUSTER-TIME.zip)")
	c.Flags().Int64Var(&tail, "tail", 1000, "lines of each container's log")
	c.Flags().StringVar(&opNS, "operator-namespace", "pgward-system", "the operator's namespace (\"\": leave the operator out)")
	c.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for each instance's answers")
	return c
}

// noneAnswered reports whether no asked instance reported the request.
func noneAnswered(outcomes []instanceapi.ReloadOutcome) bool {
	for _, o := range outcomes {
		if o.Result != nil || o.Skipped != "" {
			return false
		}
	}
	return true
}

// quietKlog sends klog nowhere. Without logtostderr, klog still copies
// errors at or above its stderr threshold to stderr (a port-forward's
// "Error copying from local connection" when a stream closes), so the
// threshold goes above every level that is logged.
func quietKlog() {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	for k, v := range map[string]string{"logtostderr": "false", "alsologtostderr": "false", "stderrthreshold": "FATAL", "legacy_stderr_threshold_behavior": "false"} {
		_ = fs.Set(k, v) // every name exists in klog v2; a missing one only leaves the default
	}
	klog.SetOutput(io.Discard)
}

// kubeAuditLong is the audit's help, with the RBAC it needs, as
// docs/operations.md lists it (the tests run the audit as a user holding
// exactly that).
const kubeAuditLong = `Checks a running Cluster against pgward's security controls and prints one
line per control:

  PASS|WARN|FAIL  <control>  <evidence>  [fix: ...]

From the API server: the pods' security contexts as admitted, the secrets
they project and with which modes, the NetworkPolicies when the Cluster
enables them, the certificates' expiry and chain, and that no superuser
secret exists while superuser access is off. Through a port-forward to each
instance, as an attacker on the cluster's network would: streaming_replica
with a password (must be refused for want of a certificate), TLS 1.2 to
PostgreSQL and to the status port, the status port without a certificate,
with streaming_replica's and with a certificate of another CA. From each
instance manager (GET /pg/audit on the status port, with the controller's
certificate): who its processes run as, what postgresql.auto.conf sets
(ALTER SYSTEM drift), the fixed parameters as rendered and as running, and
pg_hba.conf's order and catch-all.

The exit status is 1 when any control fails; a check that cannot tell (a
pod not running, a forbidden read) is a WARN.

RBAC needed in the Cluster's namespace: get on clusters.postgresql.pgward.io,
pods and networkpolicies.networking.k8s.io; create on pods/portforward; get
on the secrets <cluster>-controller, <cluster>-server, <cluster>-replication
and <cluster>-superuser (read as metadata only: whether it exists), or the
spec.certificates secrets that replace them. Those secrets let their reader
command the instances and replicate the data: grant them only to those who
may operate the cluster.`

func newKubeAuditCmd(kc *kubeConn) *cobra.Command {
	var output string
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "audit CLUSTER",
		Short: "Check a running Cluster against pgward's security controls: one PASS/WARN/FAIL line per control (exit status 1 on any FAIL)",
		Long:  kubeAuditLong,
		Example: `  kubectl pgward audit cluster-example -n db
  kubectl pgward audit cluster-example -o json | jq '.[] | select(.status != "PASS")'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output: unknown format %q (text or json)", output)
			}
			rc, cl, ns, err := kc.client()
			if err != nil {
				return err
			}
			rs, err := kube.Audit(cmd.Context(), cl, kube.PortForwarder{Config: rc}, types.NamespacedName{Namespace: ns, Name: args[0]}, kube.AuditOptions{Timeout: timeout})
			if err != nil {
				return err
			}
			if err := audit.Print(cmd.OutOrStdout(), rs, output); err != nil {
				return err
			}
			if audit.Failed(rs) {
				// The report says which control failed.
				return &ExitCodeError{Code: 1}
			}
			return nil
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	c.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long each instance's checks may take")
	return c
}
