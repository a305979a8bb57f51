package kube

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/pgward/pgward/internal/kube/build"
)

// The metrics endpoint authenticates and authorizes its scrapers through
// the API server; leader election keeps a Lease (and records events) in
// the operator's namespace only.
//
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=pgward-system,resources=leases,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",namespace=pgward-system,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// Config is everything `pgward operator` is told by its flags.
type Config struct {
	// Namespace is the operator's own namespace (leader election lease,
	// webhook certificate secret, NetworkPolicies' status-port peer).
	Namespace string
	// WatchNamespaces, when not empty, are the only namespaces whose
	// Clusters the operator reconciles (the namespaced install, which
	// grants it Roles there only); empty means every namespace (the
	// cluster-wide install's ClusterRole).
	WatchNamespaces []string
	// MetricsAddr serves Prometheus metrics over HTTPS with authentication
	// and authorization ("0" disables them).
	MetricsAddr string
	// ProbeAddr serves /healthz and /readyz over HTTP for the kubelet.
	ProbeAddr string
	// PprofAddr serves Go's profiles over plain HTTP ("" disables them,
	// the default); a loopback address only, since anyone who reaches it
	// can read goroutine stacks and stall the process with a CPU profile.
	PprofAddr string
	// LeaderElect makes replicas elect one reconciler.
	LeaderElect bool
	// Workers is how many Clusters are reconciled at once.
	Workers int
	// Webhooks, when false, runs without admission webhooks (tests of the
	// reconciler alone, or a cluster where they are installed elsewhere).
	Webhooks bool
	// WebhookPort, WebhookCertDir, WebhookService, WebhookSecret and
	// WebhookHosts configure the webhook server and its certificate.
	WebhookPort    int
	WebhookHost    string
	WebhookCertDir string
	WebhookService string
	WebhookSecret  string
	WebhookHosts   []string
	// MutatingWebhook and ValidatingWebhook name the configurations whose
	// CA bundle the operator keeps current.
	MutatingWebhook   string
	ValidatingWebhook string
	// Build shapes the instances' objects; Timing drives the planner.
	Build  build.Options
	Timing Timing
	// Instances overrides the mTLS instance client (tests only).
	Instances InstanceClient
}

// DefaultConfig is the configuration of the shipped manifests.
func DefaultConfig() Config {
	t := DefaultTiming()
	return Config{ // #nosec G101 -- names of Secrets and Services, no credentials
		Namespace:         "pgward-system",
		MetricsAddr:       ":8443",
		ProbeAddr:         ":8081",
		LeaderElect:       true,
		Workers:           4,
		Webhooks:          true,
		WebhookPort:       9443,
		WebhookCertDir:    "/tmp/k8s-webhook-server/serving-certs",
		WebhookService:    "pgward-webhook",
		WebhookSecret:     "pgward-webhook-cert",
		MutatingWebhook:   "pgward-mutating-webhook",
		ValidatingWebhook: "pgward-validating-webhook",
		Build: build.Options{
			Image:             "pgward/postgresql:15",
			ImagePullPolicy:   "IfNotPresent",
			PGBinDir:          "/usr/lib/postgresql/15/bin",
			OperatorNamespace: "pgward-system",
			ClusterDomain:     "cluster.local",
			SelfFenceSeconds:  int64(t.SelfFence / time.Second),
			LeaseRenew:        t.LeaseRenew,
			LeaseTimeout:      t.LeaseTimeout,
		},
		Timing: t,
	}
}

// Run runs the operator until ctx ends: the Cluster reconciler (on the
// elected leader), the admission webhooks and their certificate (on every
// replica), metrics and health probes.
func Run(ctx context.Context, restCfg *rest.Config, cfg Config) error {
	if cfg.Timing.SelfFence != time.Duration(cfg.Build.SelfFenceSeconds)*time.Second {
		return errors.New("the pods' self-fencing time and the planner's must agree")
	}
	if cfg.Build.LeaseRenew != cfg.Timing.LeaseRenew || cfg.Timing.LeaseRenew <= 0 || cfg.Timing.LeaseRenew >= cfg.Timing.SelfFence {
		return errors.New("the primary lease must be renewed (pods and planner agreeing) more often than the self-fencing time")
	}
	if err := cfg.Timing.CheckPrimaryLeaseRange(); err != nil {
		return fmt.Errorf("timings unsafe for spec.primaryLease: %w", err)
	}
	if err := checkLoopback(cfg.PprofAddr); err != nil {
		return fmt.Errorf("--pprof-bind-address: %w", err)
	}
	scheme, err := NewScheme()
	if err != nil {
		return err
	}
	// Cache only pgward's own objects (they all carry the cluster label):
	// an operator that watched every Secret of the cluster would hold all
	// of them in memory. Secrets named by users are read directly.
	ours, err := labels.NewRequirement(build.ClusterLabel, selection.Exists, nil)
	if err != nil {
		return fmt.Errorf("cache selector: %w", err)
	}
	// Namespaces are left to DefaultNamespaces below.
	owned := cache.ByObject{Label: labels.NewSelector().Add(*ours)}
	byObject := map[client.Object]cache.ByObject{}
	// The cluster Leases are cached too (the primary's instance manager
	// renews them; lease.go watches when each version arrives), but not
	// owned: their changes wake no reconcile.
	for _, o := range append(ownedKinds(), &coordinationv1.Lease{}) {
		byObject[o] = owned
	}
	metrics := metricsserver.Options{BindAddress: cfg.MetricsAddr}
	if cfg.MetricsAddr != "0" {
		metrics.SecureServing = true
		metrics.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	// managedFields are never read here, and they are most of a cached
	// pod's bytes and of the deep copies and comparisons each reconcile
	// makes (ensure's DeepEqual of current and desired).
	cacheOpts := cache.Options{ByObject: byObject, DefaultTransform: cache.TransformStripManagedFields()}
	if len(cfg.WatchNamespaces) == 0 {
		ctrl.Log.Info("reconciling Clusters in every namespace")
	} else {
		ctrl.Log.Info("reconciling Clusters in these namespaces only", "namespaces", cfg.WatchNamespaces)
		// Every informer (Clusters and what they own) lists and watches
		// these namespaces only, which is all the namespaced install's
		// Roles allow.
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range cfg.WatchNamespaces {
			cacheOpts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	direct, err := client.New(restCfg, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("API client: %w", err)
	}
	if err := checkAccess(ctx, direct, cfg.WatchNamespaces); err != nil {
		return err
	}
	opts := ctrl.Options{
		Scheme:                        scheme,
		Cache:                         cacheOpts,
		Metrics:                       metrics,
		HealthProbeBindAddress:        cfg.ProbeAddr,
		PprofBindAddress:              cfg.PprofAddr,
		LeaderElection:                cfg.LeaderElect,
		LeaderElectionID:              "pgward-operator.pgward.io",
		LeaderElectionNamespace:       cfg.Namespace,
		LeaderElectionReleaseOnCancel: true,
	}
	var certs *WebhookCerts
	if cfg.Webhooks {
		opts.WebhookServer = webhook.NewServer(webhook.Options{
			Host: cfg.WebhookHost, Port: cfg.WebhookPort, CertDir: cfg.WebhookCertDir,
		})
		certs = &WebhookCerts{
			Client: direct, Namespace: cfg.Namespace, SecretName: cfg.WebhookSecret,
			ServiceName: cfg.WebhookService, ClusterDomain: cfg.Build.ClusterDomain, Hosts: cfg.WebhookHosts,
			CertDir: cfg.WebhookCertDir, MutatingName: cfg.MutatingWebhook, ValidatingName: cfg.ValidatingWebhook,
			Interval: time.Hour,
		}
		// The server needs its certificate before it starts.
		if err := certs.Ensure(ctx); err != nil {
			return fmt.Errorf("webhook certificate: %w", err)
		}
	}
	mgr, err := ctrl.NewManager(restCfg, opts)
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	instances := cfg.Instances
	if instances == nil {
		instances = &MTLSInstances{Timeout: cfg.Timing.RequestTimeout}
	}
	r := &ClusterReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Instances: instances,
		Recorder:  mgr.GetEventRecorder("pgward-operator"),
		Options:   cfg.Build,
		Timing:    cfg.Timing,
	}
	if err := r.SetupWithManager(mgr, cfg.Workers); err != nil {
		return fmt.Errorf("registering the reconciler: %w", err)
	}
	// Backups get a connection pool of their own: the failover loop's is
	// keyed by its TLS material, which a second user would keep replacing.
	br := &BackupReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
		Instances: &MTLSInstances{Timeout: cfg.Timing.RequestTimeout},
		Recorder:  mgr.GetEventRecorder("pgward-operator"),
	}
	if err := br.SetupWithManager(mgr, cfg.Workers); err != nil {
		return fmt.Errorf("registering the backup reconciler: %w", err)
	}
	if err := (&ScheduledBackupReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("registering the scheduled backup reconciler: %w", err)
	}
	if err := (&DatabaseReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("registering the database reconciler: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if cfg.Webhooks {
		if err := SetupWebhookWithManager(mgr, cfg.WatchNamespaces); err != nil {
			return fmt.Errorf("registering the webhooks: %w", err)
		}
		if err := SetupBackupWebhooksWithManager(mgr); err != nil {
			return fmt.Errorf("registering the backup webhooks: %w", err)
		}
		if err := SetupImageCatalogWebhooksWithManager(mgr); err != nil {
			return fmt.Errorf("image catalog webhooks: %w", err)
		}
		if err := SetupDatabaseWebhookWithManager(mgr); err != nil {
			return fmt.Errorf("database webhook: %w", err)
		}
		if err := mgr.Add(certs); err != nil {
			return err
		}
		if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
			return err
		}
	} else if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// checkLoopback accepts "" (off) or a host:port whose host is a loopback IP
// or localhost: profiles are for someone already on the operator's host or
// in its pod (kubectl port-forward), never for the network.
func checkLoopback(addr string) error {
	if addr == "" || addr == "0" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%q: profiles are served to loopback only (127.0.0.1:PORT, [::1]:PORT or localhost:PORT)", addr)
}
