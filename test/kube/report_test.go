//go:build e2e_kube

package kube

import (
	"archive/zip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube/build"
)

// TestPluginReportOnPods runs `kubectl pgward reload` and `report` against
// real pods. reload: work_mem changed in the Cluster is in effect on every
// instance when the verb returns. report: the application's password is
// planted where it would leak unredacted (a failed statement naming it,
// which PostgreSQL logs to the pod's log, and a pod annotation); the zip
// holds no value of any Secret of the cluster's or the operator's
// namespace and no private key, and holds what a maintainer needs (the
// planted log line, redacted; the configuration with the new work_mem;
// every instance's status; the operator's Deployment and logs).
func TestPluginReportOnPods(t *testing.T) {
	ns := newNamespace(t, "e2e-report")
	c := newCluster(t, ns, "cluster-example.yaml", func(c *v1.Cluster) { c.Spec.Instances = 2 })
	ctx := context.Background()
	primary := c.Status.CurrentPrimary
	pods := []string{c.Name + "-1", c.Name + "-2"}

	// reload: a reloadable parameter, in effect on every instance at once.
	cur := getCluster(t, ns, c.Name)
	if cur.Spec.PostgresConfiguration.Parameters == nil {
		cur.Spec.PostgresConfiguration.Parameters = map[string]string{}
	}
	cur.Spec.PostgresConfiguration.Parameters["work_mem"] = "7MB"
	if err := cl.Update(ctx, cur); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out := plugin(t, "reload", c.Name, "-n", ns)
	t.Logf("reload in %s:\n%s", time.Since(start).Round(time.Millisecond), out)
	for _, p := range pods {
		if !strings.Contains(out, p+": reloaded, configuration in effect") {
			t.Errorf("reload does not report %s in effect", p)
		}
		if got := psqlLocal(t, ns, p, "postgres", "SHOW work_mem"); got != "7MB" {
			t.Errorf("%s: work_mem %q right after reload", p, got)
		}
	}

	// Planted: the app password in a failed statement (in PostgreSQL's
	// log, the pod's) and in a pod annotation.
	var app corev1.Secret
	if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: build.Secrets(c).App}, &app); err != nil {
		t.Fatal(err)
	}
	password := string(app.Data["password"])
	if len(password) < 16 {
		t.Fatalf("app password of %d bytes", len(password))
	}
	ectx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := podExec(ectx, ns, primary, "psql", "-h", "/run/postgresql", "-U", "postgres", "-d", "app", "-X",
		"-c", fmt.Sprintf(`SELECT * FROM "%s"`, password)); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("the planted statement: %v", err)
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{"example.com/debug":"login with %s"}}}`, password)
	if err := cl.Patch(ctx, &corev1.Pod{ObjectMeta: objectMeta(ns, primary)}, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}

	zipPath := filepath.Join(t.TempDir(), "report.zip")
	start = time.Now()
	out = plugin(t, "report", c.Name, "-n", ns, "-o", zipPath, "--operator-namespace", operatorNamespace)
	t.Logf("report in %s: %s", time.Since(start).Round(time.Millisecond), out)

	var values []string
	for _, n := range []string{ns, operatorNamespace} {
		var l corev1.SecretList
		if err := cl.List(ctx, &l, client.InNamespace(n)); err != nil {
			t.Fatal(err)
		}
		for _, s := range l.Items {
			for k, v := range s.Data {
				if strings.HasSuffix(k, ".crt") || k == "username" || k == "host" || k == "port" || k == "dbname" {
					continue
				}
				// The instances' config Secrets: the manifest and settings,
				// no credential (those have their own Secrets).
				if strings.HasSuffix(s.Name, "-config") && (k == "cluster.json" || k == "config.json" || k == "custom-queries.json") {
					continue
				}
				if len(strings.TrimSpace(string(v))) >= 8 {
					values = append(values, string(v))
				}
				for line := range strings.SplitSeq(string(v), "\n") {
					if len(strings.TrimSpace(line)) >= 8 && !strings.HasPrefix(line, "-----") {
						values = append(values, strings.TrimSpace(line))
					}
				}
			}
		}
	}
	if len(values) < 10 {
		t.Fatalf("only %d secret values: the check would prove little", len(values))
	}
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = zr.Close() }()
	members := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		_ = rc.Close()
		members[f.Name] = string(b)
		for _, v := range values {
			if strings.Contains(string(b), v) {
				t.Errorf("%s holds a secret value (%d bytes)", f.Name, len(v))
			}
		}
		if strings.Contains(string(b), "PRIVATE KEY") {
			t.Errorf("%s holds a private key marker", f.Name)
		}
	}
	t.Logf("%d members checked against %d secret values; errors.txt:\n%s", len(members), len(values), members["errors.txt"])
	planted := false
	for name, body := range members {
		if strings.HasPrefix(name, "logs/"+primary+"/") && strings.Contains(body, `relation "<redacted>" does not exist`) {
			planted = true
		}
	}
	if !planted {
		t.Errorf("no log of %s has the planted statement, redacted: the check above proved nothing about logs", primary)
	}
	for member, wants := range map[string][]string{
		"cluster.yaml":                           {"name: " + c.Name, "work_mem: 7MB"},
		"pods.yaml":                              {"example.com/debug: login with <redacted>"},
		"config/" + primary + "/postgresql.conf": {"work_mem = '7MB'"},
		"config/" + primary + "/pg_hba.conf":     {"hostssl"},
		"operator/deployment.yaml":               {"name: pgward-operator"},
		"events.yaml":                            {c.Name},
		"secrets.txt":                            {c.Name + "-app\tkubernetes.io/basic-auth\t"},
	} {
		if !containsAll(members[member], wants) {
			t.Errorf("%s lacks %q (members: %d)", member, wants, len(members))
		}
	}
	var st struct {
		Instance []struct {
			Name, Role, Error string
		} `json:"instanceReports"`
	}
	if err := json.Unmarshal([]byte(members["status.json"]), &st); err != nil || len(st.Instance) != 2 {
		t.Errorf("status.json: %v\n%s", err, members["status.json"])
	}
	for _, i := range st.Instance {
		if i.Role != "primary" && i.Role != "replica" || i.Error != "" {
			t.Errorf("status.json: %+v", i)
		}
	}
	opLogs := false
	for name := range members {
		opLogs = opLogs || strings.HasPrefix(name, "operator/logs/")
	}
	if !opLogs {
		t.Error("no operator log in the report")
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
