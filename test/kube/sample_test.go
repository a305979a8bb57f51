//go:build e2e_kube

package kube

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pgward/pgward/internal/kube/build"
)

// TestOperatorInstall: dist/install.yaml runs the operator from its image,
// two replicas of which one holds the leader lease, each as a non-root user
// with a read-only root filesystem and no capabilities.
func TestOperatorInstall(t *testing.T) {
	ctx := context.Background()
	var d appsv1.Deployment
	if err := cl.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: "pgward-operator"}, &d); err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 2 || d.Status.ReadyReplicas != 2 {
		t.Errorf("operator: %d of %d replicas ready, want 2 of 2", d.Status.ReadyReplicas, *d.Spec.Replicas)
	}
	var pods corev1.PodList
	if err := cl.List(ctx, &pods, client.InNamespace(operatorNamespace), client.MatchingLabels{"app.kubernetes.io/name": build.OperatorName}); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, p := range pods.Items {
		names[p.Name] = true
		if img := p.Spec.Containers[0].Image; !strings.HasPrefix(img, "pgward/pgward:") {
			t.Errorf("%s runs image %s", p.Name, img)
		}
		for _, proc := range containerProcs(t, &p, "operator") {
			if proc.status["Uid"] != "65532" || proc.status["Gid"] != "65532" || proc.status["CapEff"] != "0000000000000000" ||
				proc.status["NoNewPrivs"] != "1" || proc.status["Seccomp"] != "2" || !proc.readOnlyRoot {
				t.Errorf("operator %s pid %d: %v, read-only root %v", p.Name, proc.pid, proc.status, proc.readOnlyRoot)
			}
		}
	}
	eventually(t, time.Minute, "a leader", func() error {
		var l coordinationv1.Lease
		if err := cl.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: "pgward-operator.pgward.io"}, &l); err != nil {
			return err
		}
		holder := ""
		if l.Spec.HolderIdentity != nil {
			holder = strings.SplitN(*l.Spec.HolderIdentity, "_", 2)[0]
		}
		if !names[holder] {
			return fmt.Errorf("lease held by %q, not one of %v", holder, names)
		}
		return nil
	})
}

// TestSampleCluster runs config/samples/cluster-example.yaml in a namespace
// that enforces the restricted Pod Security Standard and checks what the
// security model promises against the running pods.
func TestSampleCluster(t *testing.T) {
	ns := newNamespace(t, "e2e-sample")
	c := newCluster(t, ns, "cluster-example.yaml", nil)
	primary := c.Status.CurrentPrimary
	replicas := []string{}
	for _, n := range c.Status.InstanceNames {
		if n != primary {
			replicas = append(replicas, n)
		}
	}
	if len(replicas) != 2 {
		t.Fatalf("instances %v, primary %s", c.Status.InstanceNames, primary)
	}

	t.Run("replicas stream over TLS 1.3 as streaming_replica with a certificate", func(t *testing.T) {
		eventually(t, time.Minute, "two streaming replicas", func() error {
			got := psqlLocal(t, ns, primary, "postgres", `select string_agg(application_name || ' ' || state || ' ' || ssl ||
				' ' || version || ' ' || coalesce(client_dn, '-') || ' ' || usename, ';' order by application_name)
				from pg_stat_replication join pg_stat_ssl using (pid)`)
			want := replicas[0] + " streaming true TLSv1.3 /CN=streaming_replica streaming_replica;" +
				replicas[1] + " streaming true TLSv1.3 /CN=streaming_replica streaming_replica"
			if got != want {
				return fmt.Errorf("pg_stat_replication: %q, want %q", got, want)
			}
			return nil
		})
	})

	t.Run("the app connects to -rw with verify-full and writes; -ro reaches only replicas", func(t *testing.T) {
		rw := build.ClientHost(c)
		ro := fmt.Sprintf("%s-ro.%s.svc", c.Name, ns)
		script := pgClientScript(c.Name+"-app", fmt.Sprintf(`
psql -h %[1]s -XAtq -v ON_ERROR_STOP=1 -c "create table e2e_sample(v text)" -c "insert into e2e_sample values ('written through rw')"
echo "rw: $(psql -h %[1]s -XAt -c "select pg_is_in_recovery(), current_user, (select ssl from pg_stat_ssl where pid = pg_backend_pid())")"
# Replication is asynchronous here: wait until both replicas have the row.
for i in $(seq 40); do
  [ "$(psql -h %[2]s -XAt -c "select count(*) from e2e_sample")$(psql -h %[2]s -XAt -c "select count(*) from e2e_sample")" = 11 ] && break
  sleep 0.5
done
for i in 1 2 3 4 5 6; do
  echo "ro: $(psql -h %[2]s -XAt -c "select pg_is_in_recovery(), inet_server_addr(), (select count(*) from e2e_sample)")"
done`, rw, ro))
		out, ok := runPod(t, clientPod(ns, "app-client", nil, script, c.Name+"-app"), 2*time.Minute)
		if !ok {
			t.Fatalf("client pod failed:\n%s", out)
		}
		if !strings.Contains(out, "rw: f|app|t") {
			t.Errorf("through %s: want a writable primary, as app, over TLS:\n%s", rw, out)
		}
		replicaIPs := map[string]bool{}
		for _, r := range replicas {
			var p corev1.Pod
			if err := cl.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: r}, &p); err != nil {
				t.Fatal(err)
			}
			replicaIPs[p.Status.PodIP] = true
		}
		n := 0
		for _, line := range strings.Split(out, "\n") {
			rest, ok := strings.CutPrefix(line, "ro: ")
			if !ok {
				continue
			}
			n++
			f := strings.Split(rest, "|")
			if len(f) != 3 || f[0] != "t" || !replicaIPs[f[1]] || f[2] != "1" {
				t.Errorf("through %s: %q; want a replica (%v) that has the row", ro, rest, replicaIPs)
			}
		}
		if n != 6 {
			t.Errorf("%d answers through %s, want 6:\n%s", n, ro, out)
		}
	})

	t.Run("containers run as uid 26 with no capabilities, no new privileges, seccomp and a read-only root", func(t *testing.T) {
		for _, name := range c.Status.InstanceNames {
			var pod corev1.Pod
			if err := cl.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &pod); err != nil {
				t.Fatal(err)
			}
			procs := containerProcs(t, &pod, "postgres")
			if len(procs) < 5 { // the manager, postgres and its workers
				t.Errorf("%s: only %d processes", name, len(procs))
			}
			for _, proc := range procs {
				st := proc.status
				if st["Uid"] != "26" || st["Gid"] != "26" || st["CapEff"] != "0000000000000000" ||
					st["CapPrm"] != "0000000000000000" || st["NoNewPrivs"] != "1" || st["Seccomp"] != "2" || !proc.readOnlyRoot {
					t.Errorf("%s pid %d (%s): %v, read-only root %v", name, proc.pid, st["Name"], st, proc.readOnlyRoot)
				}
			}
			out, err := podExecErr(ns, name, "sh", "-c", "touch /usr/local/bin/x || touch /etc/x")
			if err == nil || !strings.Contains(out, "Read-only file system") {
				t.Errorf("%s: the root filesystem is writable (%v): %s", name, err, out)
			}
		}
	})

	t.Run("no instance pod holds the CA key or the operator's certificate", func(t *testing.T) {
		var ca, ctrl corev1.Secret
		ctx := context.Background()
		if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: c.Name + "-ca"}, &ca); err != nil {
			t.Fatal(err)
		}
		if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: c.Name + "-controller"}, &ctrl); err != nil {
			t.Fatal(err)
		}
		needles := map[string]string{
			"the CA key":                        pemBodyLine(t, ca.Data["ca.key"]),
			"the operator's client key":         pemBodyLine(t, ctrl.Data["tls.key"]),
			"the operator's client certificate": pemBodyLine(t, ctrl.Data["tls.crt"]),
		}
		for _, pod := range c.Status.InstanceNames {
			for what, needle := range needles {
				// Everything the container can read: its configuration and
				// secrets, the data volume, the scratch and socket dirs.
				out, err := podExecErr(ns, pod, "grep", "-rlF", "--", needle, "/etc/pgward", "/var/lib/postgresql", "/tmp", "/run/postgresql")
				if err == nil {
					t.Errorf("%s holds %s in %s", pod, what, strings.TrimSpace(out))
				}
			}
			if out := mustExec(t, ns, pod, "ls", "-R", "/etc/pgward"); strings.Contains(out, "ca.key") {
				t.Errorf("%s: /etc/pgward lists a ca.key:\n%s", pod, out)
			}
		}
	})

	t.Run("the status port refuses pods without the operator's certificate", func(t *testing.T) {
		var p corev1.Pod
		if err := cl.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: primary}, &p); err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("%s:%d", p.Status.PodIP, build.StatusPort)
		status := func(dir string) string {
			args := fmt.Sprintf("pgward instance status --addr %s --ca /secrets/%s-app/ca.crt --server-name %s-rw", addr, c.Name, c.Name)
			if dir != "" {
				args += fmt.Sprintf(" --cert /secrets/%[1]s/tls.crt --key /secrets/%[1]s/tls.key", dir)
			}
			return args + " 2>&1; echo rc=$?"
		}
		script := "echo none: $(" + status("") + ")\n" +
			"echo replication: $(" + status(c.Name+"-replication") + ")\n" +
			"echo controller: $(" + status(c.Name+"-controller") + ")\n"
		out, ok := runPod(t, clientPod(ns, "status-client", nil, script, c.Name+"-app", c.Name+"-replication", c.Name+"-controller"), 2*time.Minute)
		if !ok {
			t.Fatalf("status client pod failed:\n%s", out)
		}
		for _, want := range []string{
			"none: error: instance answered 401",
			"replication: error: instance answered 403",
			// The positive control: the same request with the operator's
			// identity is answered, so the refusals are about identity.
			`"name": "` + primary + `", "role": "primary"`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("want %q in:\n%s", want, out)
			}
		}
	})

	t.Run("deleting the Cluster deletes its pods, volumes and secrets", func(t *testing.T) {
		ctx := context.Background()
		if err := cl.Delete(ctx, c); err != nil {
			t.Fatal(err)
		}
		sel := client.MatchingLabels{build.ClusterLabel: c.Name}
		eventually(t, 3*time.Minute, "the Cluster's objects gone", func() error {
			var pods corev1.PodList
			var pvcs corev1.PersistentVolumeClaimList
			var secrets corev1.SecretList
			for _, l := range []client.ObjectList{&pods, &pvcs, &secrets} {
				if err := cl.List(ctx, l, client.InNamespace(ns), sel); err != nil {
					return err
				}
			}
			if n := len(pods.Items) + len(pvcs.Items) + len(secrets.Items); n > 0 {
				return fmt.Errorf("%d pods, %d PVCs, %d secrets left", len(pods.Items), len(pvcs.Items), len(secrets.Items))
			}
			if err := cl.Get(ctx, client.ObjectKeyFromObject(c), c); !apierrors.IsNotFound(err) {
				return fmt.Errorf("the Cluster is still there (%w)", err)
			}
			return nil
		})
	})
}

// podExecErr is podExec returning stdout and stderr together.
func podExecErr(ns, pod string, cmd ...string) (string, error) {
	args := append([]string{"-n", ns, "exec", pod, "--"}, cmd...)
	return kubectl(args...)
}

// pemBodyLine is a line from the middle of a PEM block: present verbatim in
// any copy of it, and in nothing else.
func pemBodyLine(t testing.TB, pem []byte) string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(string(pem)), "\n")
	if len(lines) < 3 {
		t.Fatalf("not a PEM block: %d lines", len(lines))
	}
	return lines[1]
}
