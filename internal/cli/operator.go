package cli

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/pgward/pgward/internal/kube"
)

// NewOperatorCmd returns `pgward operator`, the Kubernetes operator: it
// reconciles Clusters into pods, services, secrets and certificates, and
// serves the Cluster admission webhooks.
func NewOperatorCmd() *cobra.Command {
	cfg := kube.DefaultConfig()
	var (
		logLevel   string
		webhooks   = true
		selfFence  = cfg.Timing.SelfFence
		webhookIPs string
		watch      = os.Getenv(kube.WatchNamespacesEnv)
	)
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		cfg.Namespace = ns
	}
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "Run the Kubernetes operator (reconciler, admission webhooks, metrics, probes)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			level := zapcore.InfoLevel
			if strings.EqualFold(logLevel, "debug") {
				level = zapcore.DebugLevel
			}
			ctrl.SetLogger(zap.New(zap.UseDevMode(false), zap.Level(level), zap.WriteTo(os.Stderr)))
			cfg.Webhooks = webhooks
			cfg.Build.OperatorNamespace = cfg.Namespace
			cfg.Timing.SelfFence = selfFence.Truncate(time.Second)
			cfg.Build.SelfFenceSeconds = int64(cfg.Timing.SelfFence / time.Second)
			if webhookIPs != "" {
				cfg.WebhookHosts = strings.Split(webhookIPs, ",")
			}
			namespaces, err := kube.ParseNamespaces(watch)
			if err != nil {
				return fmt.Errorf("--watch-namespaces: %w", err)
			}
			cfg.WatchNamespaces = namespaces
			rest, err := ctrl.GetConfig()
			if err != nil {
				return fmt.Errorf("finding the API server (in-cluster or KUBECONFIG): %w", err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return kube.Run(ctx, rest, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Namespace, "namespace", cfg.Namespace, "the operator's namespace ($POD_NAMESPACE when set)")
	f.StringVar(&watch, "watch-namespaces", watch, "comma-separated namespaces whose Clusters are reconciled, for the namespaced install (default every namespace; $"+kube.WatchNamespacesEnv+" when set)")
	f.StringVar(&cfg.MetricsAddr, "metrics-bind-address", cfg.MetricsAddr, "HTTPS metrics address, authenticated and authorized through the API server (0 disables)")
	f.StringVar(&cfg.ProbeAddr, "health-probe-bind-address", cfg.ProbeAddr, "address of /healthz and /readyz")
	f.StringVar(&cfg.PprofAddr, "pprof-bind-address", cfg.PprofAddr, "loopback address serving Go profiles (/debug/pprof/) for diagnosis; off by default")
	f.BoolVar(&cfg.LeaderElect, "leader-elect", cfg.LeaderElect, "elect one active reconciler among replicas")
	f.IntVar(&cfg.Workers, "workers", cfg.Workers, "Clusters reconciled concurrently")
	f.BoolVar(&webhooks, "webhooks", webhooks, "serve the admission webhooks")
	f.IntVar(&cfg.WebhookPort, "webhook-port", cfg.WebhookPort, "webhook server port")
	f.StringVar(&cfg.WebhookHost, "webhook-host", cfg.WebhookHost, "webhook server address (default all)")
	f.StringVar(&cfg.WebhookCertDir, "webhook-cert-dir", cfg.WebhookCertDir, "where the managed webhook certificate is written")
	f.StringVar(&cfg.WebhookService, "webhook-service", cfg.WebhookService, "the webhook Service, whose DNS names the certificate carries")
	f.StringVar(&cfg.WebhookSecret, "webhook-secret", cfg.WebhookSecret, "the Secret holding the webhook CA and certificate")
	f.StringVar(&webhookIPs, "webhook-extra-hosts", "", "comma-separated extra names or IPs for the webhook certificate")
	f.StringVar(&cfg.MutatingWebhook, "mutating-webhook", cfg.MutatingWebhook, "MutatingWebhookConfiguration whose CA bundle is kept current")
	f.StringVar(&cfg.ValidatingWebhook, "validating-webhook", cfg.ValidatingWebhook, "ValidatingWebhookConfiguration whose CA bundle is kept current")
	f.StringVar(&cfg.Build.Image, "instance-image", cfg.Build.Image, "image of the instances (pgward and PostgreSQL)")
	f.StringVar(&cfg.Build.ImagePullPolicy, "instance-image-pull-policy", cfg.Build.ImagePullPolicy, "pull policy of the instance image")
	f.StringVar(&cfg.Build.PGBinDir, "pg-bin-dir", cfg.Build.PGBinDir, "PostgreSQL's bin directory inside the instance image")
	f.StringVar(&cfg.Build.ClusterDomain, "cluster-domain", cfg.Build.ClusterDomain, "DNS suffix of Services")
	f.DurationVar(&selfFence, "self-fence", selfFence, "how long a primary accepts writes without hearing from the operator or renewing its Lease (more than the 1s renew period; the operator replaces a silent primary after a derived, longer bound)")
	f.StringVar(&logLevel, "log-level", "info", "info or debug")
	return cmd
}
