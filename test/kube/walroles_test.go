//go:build e2e_kube

package kube

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/audit"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
)

// TestWalStorageAndRolesOnPods: spec.walStorage and spec.managed.roles on
// real pods, one cluster for both. Every instance's pg_wal is a link into
// its WAL volume's mount, PostgreSQL's (0700, uid 26), after initdb (the
// primary), pg_basebackup (a replica, and one added later), a failover
// that makes the old primary rejoin (pg_rewind, or a clone when the rewind
// cannot reach the new primary yet), and a pod restart. The
// primary has the declared roles with their attributes, puts back an
// attribute dropped by hand, lets a role log in with the password of its
// Secret and, once the Secret changes, with the new one only, and drops a
// role set to ensure: absent.
func TestWalStorageAndRolesOnPods(t *testing.T) {
	ns := newNamespace(t, "walroles")
	ctx := context.Background()
	secret := &corev1.Secret{ObjectMeta: objectMeta(ns, "walroles-dante"), Type: corev1.SecretTypeBasicAuth,
		StringData: map[string]string{"username": "dante", "password": "first-password-of-dante"}}
	if err := cl.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, ns, "cluster-example.yaml", func(c *v1.Cluster) {
		c.Name = "walroles"
		c.Spec.Instances = 2
		c.Spec.WalStorage = &v1.StorageConfiguration{Size: "1Gi"}
		c.Spec.Managed = &v1.ManagedConfiguration{Roles: []v1.RoleConfiguration{
			{Name: "dante", Login: true, CreateDB: true, ConnectionLimit: new(int64(4)), InRoles: []string{"pg_monitor"},
				Comment: "the poet", ValidUntil: &metav1.Time{Time: time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)},
				PasswordSecret: &v1.LocalObjectReference{Name: secret.Name}},
			{Name: "ghost", Login: false},
		}}
	})
	c = waitStreaming(t, ns, c.Name)
	primary := c.Status.CurrentPrimary

	walOn := func(pod string) {
		t.Helper()
		if got := strings.TrimSpace(mustExec(t, ns, pod, "readlink", build.DataDir+"/pg_wal")); got != build.WalDir {
			t.Errorf("%s: pg_wal links to %q, want %s", pod, got, build.WalDir)
		}
		if !strings.Contains(mustExec(t, ns, pod, "cat", "/proc/self/mountinfo"), " "+build.WalMount+" ") {
			t.Errorf("%s: nothing mounted at %s", pod, build.WalMount)
		}
		// The volume's root is setgid (fsGroup): the directory inherits
		// the bit, which says nothing of who may read it.
		if got := strings.TrimSpace(mustExec(t, ns, pod, "stat", "-c", "%a %u", build.WalDir)); strings.TrimPrefix(got, "2") != "700 26" {
			t.Errorf("%s: %s is %q, want 700 26", pod, build.WalDir, got)
		}
		if !strings.Contains(mustExec(t, ns, pod, "ls", build.WalDir), "0000000") {
			t.Errorf("%s: no WAL segment in %s", pod, build.WalDir)
		}
	}
	for _, pod := range c.Status.InstanceNames {
		walOn(pod)
	}
	seg := psqlLocal(t, ns, primary, "postgres", "SELECT pg_walfile_name(pg_current_wal_lsn())")
	if out := mustExec(t, ns, primary, "ls", build.WalDir); !strings.Contains(out, seg) {
		t.Errorf("%s: the current segment %s is not in %s", primary, seg, build.WalDir)
	}

	// The audit judges each instance's WAL directory.
	if by, _, _ := auditResults(t, ns, c.Name); by["wal-directory"].Status != audit.Pass || !strings.Contains(by["wal-directory"].Evidence, build.WalDir) {
		t.Errorf("audit wal-directory: %+v", by["wal-directory"])
	}

	// The declared roles, their drift repaired.
	const roleQuery = `SELECT rolcanlogin, rolcreatedb, rolconnlimit, to_char(rolvaliduntil AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
		shobj_description(oid, 'pg_authid'), pg_has_role(rolname, 'pg_monitor', 'member') FROM pg_roles WHERE rolname = 'dante'`
	const wantDante = "t|t|4|2099-01-01|the poet|t"
	roleIs := func(what, want string) {
		t.Helper()
		eventually(t, 2*time.Minute, what, func() error {
			pr := getCluster(t, ns, c.Name).Status.CurrentPrimary
			if got := psqlLocal(t, ns, pr, "postgres", roleQuery); got != want {
				return fmt.Errorf("dante on %s: %q, want %q", pr, got, want)
			}
			return nil
		})
	}
	roleIs("dante declared", wantDante)
	if got := psqlLocal(t, ns, primary, "postgres", "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'ghost'"); got != "f" {
		t.Errorf("ghost: %q", got)
	}
	psqlLocal(t, ns, primary, "postgres", "ALTER ROLE dante NOCREATEDB CONNECTION LIMIT 9")
	roleIs("dante's attributes put back", wantDante)
	if cond := findCond(getCluster(t, ns, c.Name), kube.ConditionManagedRoles); cond == nil || cond.Status != metav1.ConditionTrue {
		t.Errorf("ManagedRoles condition: %+v", cond)
	}

	// Logging in as dante over TLS, the password on stdin, never on a
	// command line.
	login := func(pod, password string) error {
		out, err := kubectlIn(password+"\n", "-n", ns, "exec", "-i", pod, "--", "sh", "-c",
			`read -r PGPASSWORD && export PGPASSWORD && psql "host=127.0.0.1 port=5432 sslmode=require user=dante dbname=app connect_timeout=5" -XAtc "SELECT current_user"`)
		if err != nil || strings.TrimSpace(out) != "dante" {
			return fmt.Errorf("login as dante on %s: %w %q", pod, err, out)
		}
		return nil
	}
	if err := login(primary, "first-password-of-dante"); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur corev1.Secret
		if err := cl.Get(ctx, client.ObjectKeyFromObject(secret), &cur); err != nil {
			return err
		}
		cur.Data["password"] = []byte("second-password-of-dante")
		return cl.Update(ctx, &cur)
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Minute, "the new password", func() error { return login(primary, "second-password-of-dante") })
	t.Logf("the new password works %v after the Secret changed", time.Since(changed).Round(time.Second))
	if err := login(primary, "first-password-of-dante"); err == nil {
		t.Error("the old password still logs in")
	}

	// A failover: the primary's postgres killed, the replica promoted, the
	// old primary rejoining.
	mustExec(t, ns, primary, "sh", "-c", "kill -9 $(head -1 "+build.DataDir+"/postmaster.pid)")
	eventually(t, 2*time.Minute, "another primary", func() error {
		if p := getCluster(t, ns, c.Name).Status.CurrentPrimary; p == primary || p == "" {
			return fmt.Errorf("primary still %q", p)
		}
		return nil
	})
	c = waitStreaming(t, ns, c.Name)
	for _, n := range c.Status.InstanceNames {
		walOn(n)
	}
	// Whether the old primary rejoined by pg_rewind or, when the rewind's
	// CHECKPOINT through the -rw Service could not connect yet, by a fresh
	// pg_basebackup depends on the Service's timing, not on the WAL
	// volume: either way its WAL must be on the volume (walOn above).
	how := "pg_rewind"
	if logs := mustKubectl(t, "-n", ns, "logs", primary); strings.Contains(logs, "pg_rewind failed") {
		how = "a fresh clone (pg_rewind failed)"
	}
	t.Logf("%s rejoined by %s", primary, how)
	roleIs("dante on the new primary", wantDante)

	// A pod restart (the old primary's, now a replica) keeps the WAL on
	// its volume.
	var pod corev1.Pod
	if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: primary}, &pod); err != nil {
		t.Fatal(err)
	}
	if err := cl.Delete(ctx, &pod); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Minute, "the pod recreated", func() error {
		var cur corev1.Pod
		if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: primary}, &cur); err != nil {
			return err
		}
		if cur.UID == pod.UID {
			return fmt.Errorf("still the old pod")
		}
		return nil
	})
	waitStreaming(t, ns, c.Name)
	walOn(primary)

	// A new replica, and ghost to be absent.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := getCluster(t, ns, c.Name)
		cur.Spec.Instances = 3
		cur.Spec.Managed.Roles[1].Ensure = "absent"
		return cl.Update(ctx, cur)
	}); err != nil {
		t.Fatal(err)
	}
	c = waitStreaming(t, ns, c.Name)
	for _, n := range c.Status.InstanceNames {
		walOn(n)
	}
	eventually(t, 2*time.Minute, "ghost dropped", func() error {
		pr := getCluster(t, ns, c.Name).Status.CurrentPrimary
		if got := psqlLocal(t, ns, pr, "postgres", "SELECT count(*) FROM pg_roles WHERE rolname = 'ghost'"); got != "0" {
			return fmt.Errorf("ghost on %s: %s", pr, got)
		}
		return nil
	})
}

func findCond(c *v1.Cluster, typ string) *metav1.Condition {
	for i := range c.Status.Conditions {
		if c.Status.Conditions[i].Type == typ {
			return &c.Status.Conditions[i]
		}
	}
	return nil
}
