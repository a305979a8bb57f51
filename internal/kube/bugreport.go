package kube

import (
	"archive/zip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/kube/build"
	"github.com/pgward/pgward/internal/secrets"
)

// This file is `kubectl pgward report`: a zip a user attaches to a bug
// report, the Kubernetes side of `pgward local report`. Nothing in it may
// carry a secret: Secrets are listed by name, type and keys only, and every
// member goes through a secrets.Redactor that knows every value of every
// Secret of the namespace (so reading them is required) and the shapes of
// secrets whatever their source; environment variables and annotations
// whose names say they hold a secret are blanked before that.

// LogSource reads the end of a container's log.
type LogSource interface {
	Logs(ctx context.Context, namespace, pod, container string, tail int64) ([]byte, error)
}

// KubeletLogs reads logs through the API server (pods/log), as
// `kubectl logs` does.
type KubeletLogs struct {
	Config *rest.Config
}

// Logs implements LogSource.
func (k KubeletLogs) Logs(ctx context.Context, namespace, pod, container string, tail int64) ([]byte, error) {
	cs, err := kubernetes.NewForConfig(k.Config)
	if err != nil {
		return nil, err
	}
	limit := int64(maxReportLog)
	return cs.CoreV1().Pods(namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container, TailLines: &tail, LimitBytes: &limit}).DoRaw(ctx)
}

// maxReportLog bounds each log in a report.
const maxReportLog = 4 << 20

// BugReportOptions configure WriteBugReport.
type BugReportOptions struct {
	Cluster types.NamespacedName
	// OperatorNamespace is where the operator's Deployment runs.
	OperatorNamespace string
	// TailLines is how many lines of each log to take.
	TailLines int64
	// Timeout bounds each instance's answers.
	Timeout time.Duration
	Now     time.Time
}

// OperatorDeployment is the operator's Deployment, as dist/install.yaml
// names it.
const OperatorDeployment = build.OperatorName

// WriteBugReport writes the report of o.Cluster to w and returns the
// names of its members. It fails only when the Cluster cannot be read or
// the namespace's Secrets cannot be read to redact their values; whatever
// else cannot be had (a forbidden list, an instance that does not answer)
// is said in errors.txt.
func WriteBugReport(ctx context.Context, cl client.Client, fw PodForwarder, logs LogSource, o BugReportOptions, w io.Writer) ([]string, error) {
	var c v1.Cluster
	if err := cl.Get(ctx, o.Cluster, &c); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", o.Cluster, err)
	}
	var nsSecrets corev1.SecretList
	if err := cl.List(ctx, &nsSecrets, client.InNamespace(c.Namespace)); err != nil {
		return nil, fmt.Errorf("listing the Secrets of namespace %s, to redact their values from the report (RBAC: list secrets): %w", c.Namespace, err)
	}
	br := &bugReport{zw: zip.NewWriter(w), now: o.Now}
	for _, s := range nsSecrets.Items {
		addSecretValues(&br.redact, &s)
	}
	if o.OperatorNamespace != "" && o.OperatorNamespace != c.Namespace {
		var opSecrets corev1.SecretList
		if err := cl.List(ctx, &opSecrets, client.InNamespace(o.OperatorNamespace)); err != nil {
			// The operator's logs are redacted by shape only then.
			br.fail("operator secrets", fmt.Errorf("not read, so the operator's logs are redacted by the shapes of secrets only: %w", err))
		}
		for _, s := range opSecrets.Items {
			addSecretValues(&br.redact, &s)
		}
	}
	br.collect(ctx, cl, fw, logs, o, &c, nsSecrets.Items)
	if len(br.errors) > 0 {
		br.add("errors.txt", []byte(strings.Join(br.errors, "\n")+"\n"))
	}
	if err := br.zw.Close(); err != nil {
		return nil, err
	}
	if br.err != nil {
		return nil, br.err
	}
	return br.names, nil
}

// publicSecretKeys hold names, not secrets (CloudNativePG's basic-auth
// secrets' username, host, port, dbname), and certificates are public:
// searching for them would erase the report's own names.
func publicSecretKey(key string) bool {
	switch key {
	case secrets.KeyUsername, secrets.KeyHost, secrets.KeyPort, secrets.KeyDBName, "user", "database":
		return true
	}
	return strings.HasSuffix(key, ".crt")
}

// configKeys are the keys of the instances' config Secrets, which the
// operator writes: the manifest and the instance's settings, no
// credential (those have Secrets of their own). Their lines are
// everyday text ("name": ...) that the report must keep.
var configKeys = []string{build.ClusterKeyJSON, build.ConfigKeyJSON, build.CustomQueriesKey}

func addSecretValues(r *secrets.Redactor, s *corev1.Secret) {
	ownConfig := false
	if ref := metav1.GetControllerOf(s); ref != nil && ref.Kind == "Cluster" && strings.HasPrefix(ref.APIVersion, v1.Group+"/") {
		ownConfig = strings.HasSuffix(s.Name, "-config")
	}
	for k, v := range s.Data {
		if ownConfig && slices.Contains(configKeys, k) {
			continue
		}
		if !publicSecretKey(k) {
			r.Add(v)
		}
	}
	for k, v := range s.StringData {
		if !publicSecretKey(k) {
			r.Add([]byte(v))
		}
	}
}

type bugReport struct {
	zw     *zip.Writer
	now    time.Time
	redact secrets.Redactor
	names  []string
	errors []string
	err    error // the first write error
}

func (b *bugReport) add(name string, data []byte) {
	if b.err != nil {
		return
	}
	w, err := b.zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: b.now})
	if err == nil {
		_, err = w.Write(b.redact.Redact(data))
	}
	if err != nil {
		b.err = fmt.Errorf("writing %s into the report: %w", name, err)
		return
	}
	b.names = append(b.names, name)
}

func (b *bugReport) fail(what string, err error) {
	b.errors = append(b.errors, what+": "+err.Error())
}

// addYAML adds objects as a YAML list.
func (b *bugReport) addYAML(name string, objs any) {
	out, err := yaml.Marshal(objs)
	if err != nil {
		b.fail(name, err)
		return
	}
	b.add(name, out)
}

func (b *bugReport) collect(ctx context.Context, cl client.Client, fw PodForwarder, logs LogSource, o BugReportOptions, c *v1.Cluster, nsSecrets []corev1.Secret) {
	ns := c.Namespace
	about := map[string]bool{"Cluster/" + c.Name: true}
	cc := c.DeepCopy()
	cc.APIVersion, cc.Kind = v1.SchemeGroupVersion.String(), "Cluster"
	scrubMeta(&cc.ObjectMeta)
	b.addYAML("cluster.yaml", cc)

	var backups v1.BackupList
	if err := cl.List(ctx, &backups, client.InNamespace(ns)); err != nil {
		b.fail("backups", err)
	}
	var bs []v1.Backup
	for _, x := range backups.Items {
		if x.Spec.Cluster.Name == c.Name {
			x.APIVersion, x.Kind = v1.SchemeGroupVersion.String(), "Backup"
			scrubMeta(&x.ObjectMeta)
			bs = append(bs, x)
			about["Backup/"+x.Name] = true
		}
	}
	b.addYAML("backups.yaml", bs)
	var scheduled v1.ScheduledBackupList
	if err := cl.List(ctx, &scheduled, client.InNamespace(ns)); err != nil {
		b.fail("scheduledbackups", err)
	}
	var ss []v1.ScheduledBackup
	for _, x := range scheduled.Items {
		if x.Spec.Cluster.Name == c.Name {
			x.APIVersion, x.Kind = v1.SchemeGroupVersion.String(), "ScheduledBackup"
			scrubMeta(&x.ObjectMeta)
			ss = append(ss, x)
			about["ScheduledBackup/"+x.Name] = true
		}
	}
	b.addYAML("scheduledbackups.yaml", ss)

	var pods corev1.PodList
	if err := cl.List(ctx, &pods, client.InNamespace(ns)); err != nil {
		b.fail("pods", err)
	}
	var ps []corev1.Pod
	for _, p := range pods.Items {
		if metav1.IsControlledBy(&p, c) {
			p.APIVersion, p.Kind = "v1", "Pod"
			scrubPod(&p)
			ps = append(ps, p)
			about["Pod/"+p.Name] = true
		}
	}
	b.addYAML("pods.yaml", ps)
	var pvcs corev1.PersistentVolumeClaimList
	if err := cl.List(ctx, &pvcs, client.InNamespace(ns)); err != nil {
		b.fail("persistentvolumeclaims", err)
	}
	var vs []corev1.PersistentVolumeClaim
	for _, p := range pvcs.Items {
		if metav1.IsControlledBy(&p, c) {
			p.APIVersion, p.Kind = "v1", "PersistentVolumeClaim"
			scrubMeta(&p.ObjectMeta)
			vs = append(vs, p)
			about["PersistentVolumeClaim/"+p.Name] = true
		}
	}
	b.addYAML("pvcs.yaml", vs)
	var svcs corev1.ServiceList
	if err := cl.List(ctx, &svcs, client.InNamespace(ns)); err != nil {
		b.fail("services", err)
	}
	var sv []corev1.Service
	for _, s := range svcs.Items {
		if metav1.IsControlledBy(&s, c) {
			s.APIVersion, s.Kind = "v1", "Service"
			scrubMeta(&s.ObjectMeta)
			sv = append(sv, s)
			about["Service/"+s.Name] = true
		}
	}
	b.addYAML("services.yaml", sv)
	b.add("secrets.txt", secretListing(c, nsSecrets))

	var events corev1.EventList
	if err := cl.List(ctx, &events, client.InNamespace(ns)); err != nil {
		b.fail("events", err)
	}
	b.addYAML("events.yaml", eventsAbout(events.Items, about))

	// Each instance's live status and configuration, through the same
	// mutual-TLS port-forward as status.
	if r, err := Report(ctx, cl, fw, o.Cluster, o.Timeout); err != nil {
		b.fail("status", err)
	} else if out, err := json.MarshalIndent(r, "", "  "); err == nil {
		b.add("status.json", out)
	}
	b.addConfigs(ctx, cl, fw, o, c, ps)
	for _, p := range ps {
		b.addLogs(ctx, logs, o, "logs/"+p.Name+"/", &p)
	}
	b.addOperator(ctx, cl, logs, o)
}

// addConfigs asks each running instance for its configuration files.
func (b *bugReport) addConfigs(ctx context.Context, cl client.Client, fw PodForwarder, o BugReportOptions, c *v1.Cluster, pods []corev1.Pod) {
	tlsm, err := pluginTLS(ctx, cl, c)
	if err != nil {
		b.fail("configuration", err)
		return
	}
	for _, p := range pods {
		if p.Status.Phase != corev1.PodRunning {
			b.fail("configuration of "+p.Name, fmt.Errorf("not asked: the pod is %s", orUnknown(string(p.Status.Phase))))
			continue
		}
		files, err := configOver(ctx, fw, c, p.Name, tlsm, o.Timeout)
		if err != nil {
			b.fail("configuration of "+p.Name, err)
			continue
		}
		for _, name := range sortedKeys(files.Files) {
			b.add("config/"+p.Name+"/"+name, []byte(files.Files[name]))
		}
		for _, name := range sortedKeys(files.Errors) {
			b.fail("configuration of "+p.Name+": "+name, fmt.Errorf("%s", files.Errors[name]))
		}
	}
}

func configOver(ctx context.Context, fw PodForwarder, c *v1.Cluster, pod string, tlsm *ClientTLS, timeout time.Duration) (*instanceapi.ConfigFiles, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addr, stop, err := fw.Forward(ctx, c.Namespace, pod, build.StatusPort)
	if err != nil {
		return nil, err
	}
	defer stop()
	cert, err := tlsKeyPair(tlsm)
	if err != nil {
		return nil, err
	}
	cli := instanceapi.NewClient(cert.pool, cert.cert, build.ServerName(c), timeout)
	defer cli.CloseIdle()
	return cli.Config(ctx, addr)
}

func (b *bugReport) addLogs(ctx context.Context, logs LogSource, o BugReportOptions, prefix string, p *corev1.Pod) {
	var names []string
	for _, ct := range p.Spec.InitContainers {
		names = append(names, ct.Name)
	}
	for _, ct := range p.Spec.Containers {
		names = append(names, ct.Name)
	}
	for _, ct := range names {
		out, err := logs.Logs(ctx, p.Namespace, p.Name, ct, o.TailLines)
		if err != nil {
			b.fail("log of "+p.Name+"/"+ct, err)
			continue
		}
		b.add(prefix+ct+".log", out)
	}
}

// addOperator adds the operator's Deployment and its pods' logs.
func (b *bugReport) addOperator(ctx context.Context, cl client.Client, logs LogSource, o BugReportOptions) {
	if o.OperatorNamespace == "" {
		return
	}
	var d appsv1.Deployment
	if err := cl.Get(ctx, types.NamespacedName{Namespace: o.OperatorNamespace, Name: OperatorDeployment}, &d); err != nil {
		b.fail("operator deployment", err)
		return
	}
	d.APIVersion, d.Kind = "apps/v1", "Deployment"
	scrubMeta(&d.ObjectMeta)
	scrubPodSpec(&d.Spec.Template.Spec)
	b.addYAML("operator/deployment.yaml", &d)
	var pods corev1.PodList
	if err := cl.List(ctx, &pods, client.InNamespace(o.OperatorNamespace), client.MatchingLabels(d.Spec.Selector.MatchLabels)); err != nil {
		b.fail("operator pods", err)
		return
	}
	for _, p := range pods.Items {
		b.addLogs(ctx, logs, o, "operator/logs/"+p.Name+"/", &p)
	}
}

// scrubMeta drops what only the API server needs and blanks annotations
// whose names say they hold a secret.
func scrubMeta(m *metav1.ObjectMeta) {
	m.ManagedFields = nil
	for k := range m.Annotations {
		if secrets.SecretLookingName(k) {
			m.Annotations[k] = "<redacted>"
		}
	}
}

func scrubPod(p *corev1.Pod) {
	scrubMeta(&p.ObjectMeta)
	scrubPodSpec(&p.Spec)
}

// scrubPodSpec blanks environment values whose names say they are
// secrets (a reference to a Secret stays: it holds no value).
func scrubPodSpec(s *corev1.PodSpec) {
	for _, cs := range [][]corev1.Container{s.InitContainers, s.Containers} {
		for i := range cs {
			for j := range cs[i].Env {
				if e := &cs[i].Env[j]; e.Value != "" && secrets.SecretLookingName(e.Name) {
					e.Value = "<redacted>"
				}
			}
		}
	}
}

// secretListing names the Secrets of the cluster (those it controls and
// those its spec names) with their type and keys, never their values.
func secretListing(c *v1.Cluster, all []corev1.Secret) []byte {
	spec, _ := json.Marshal(c.Spec)
	var b strings.Builder
	b.WriteString("# Secrets of the cluster: name, type, keys; never their values\n")
	for _, s := range all {
		if !metav1.IsControlledBy(&s, c) && !strings.Contains(string(spec), `"`+s.Name+`"`) {
			continue
		}
		keys := sortedKeys(s.Data)
		for k := range s.StringData {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
		fmt.Fprintf(&b, "%s\t%s\t%s\n", s.Name, s.Type, strings.Join(keys, ","))
	}
	return []byte(b.String())
}

// eventsAbout keeps the events whose object is one of about ("Kind/name").
func eventsAbout(events []corev1.Event, about map[string]bool) []corev1.Event {
	var out []corev1.Event
	for _, e := range events {
		if about[e.InvolvedObject.Kind+"/"+e.InvolvedObject.Name] {
			e.APIVersion, e.Kind = "v1", "Event"
			e.ManagedFields = nil
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].LastTimestamp.Before(&out[j].LastTimestamp) })
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

type clientIdentity struct {
	pool *x509.CertPool
	cert tls.Certificate
}

// tlsKeyPair is t as a client's trust pool and certificate.
func tlsKeyPair(t *ClientTLS) (*clientIdentity, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(t.ServerCA) {
		return nil, fmt.Errorf("the server CA holds no PEM certificate")
	}
	cert, err := tls.X509KeyPair(t.ClientCert, t.ClientKey)
	if err != nil {
		return nil, fmt.Errorf("controller certificate: %w", err)
	}
	return &clientIdentity{pool: pool, cert: cert}, nil
}
