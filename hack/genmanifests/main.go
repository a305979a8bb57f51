// Command genmanifests writes the manifests that `kubectl apply -f`
// installs pgward's operator with: the operator's namespace and objects
// (config/manager), the CRD, the RBAC and the webhook configurations
// controller-gen generates (config/crd, config/rbac, config/webhook). The
// generated webhook configurations point at a placeholder Service; here
// they get their real names and the operator's Service.
//
// Without -namespaces it writes the cluster-wide install (dist/install.yaml):
// the generated ClusterRole as it is, so the operator reconciles Clusters in
// every namespace. With -namespaces it writes the namespaced install: the
// same rules, split by the scope of their resources. The namespaced ones go
// into a Role in each listed namespace, the ClusterRole keeps only the
// cluster-scoped ones, and the operator is told to watch those namespaces.
// Both come from the same markers, so neither can drift from the other.
//
//	go run ./hack/genmanifests -config config -out dist/install.yaml
//	go run ./hack/genmanifests -config config -namespaces db -out dist/install-namespaced.yaml
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/pgward/pgward/internal/kube"
)

// Names the shipped configuration uses; internal/kube's defaults match.
const (
	namespace      = "pgward-system"
	serviceAccount = "pgward-operator"
	webhookService = "pgward-webhook"
	mutatingName   = "pgward-mutating-webhook"
	validatingName = "pgward-validating-webhook"
	// watchedRoleName names the operator's Role and RoleBinding in each
	// watched namespace. A Cluster's objects are named after it (a DNS
	// label, plus suffixes of the same characters), so a name with a
	// colon can never be one of theirs: no Cluster can take it over or
	// block it.
	watchedRoleName = "pgward:operator"
)

// namespaced says, for each resource the operator's ClusterRole names,
// whether it lives in a namespace. The namespaced install grants the
// namespaced ones in each watched namespace and leaves only the others in
// its ClusterRole. A resource missing here stops the generator: a new
// marker needs that decision made. internal/kube's TestNamespacedInstallRBAC
// checks the result against a real API server's discovery.
var namespaced = map[string]bool{
	"/configmaps":                                      true,
	"monitoring.coreos.com/podmonitors":                true,
	"/persistentvolumeclaims":                          true,
	"/pods":                                            true,
	"/secrets":                                         true,
	"/serviceaccounts":                                 true,
	"/services":                                        true,
	"coordination.k8s.io/leases":                       true,
	"events.k8s.io/events":                             true,
	"networking.k8s.io/networkpolicies":                true,
	"policy/poddisruptionbudgets":                      true,
	"postgresql.pgward.io/clusters":                    true,
	"postgresql.pgward.io/clusters/finalizers":         true,
	"postgresql.pgward.io/clusters/status":             true,
	"postgresql.pgward.io/backups":                     true,
	"postgresql.pgward.io/backups/status":              true,
	"postgresql.pgward.io/scheduledbackups":            true,
	"postgresql.pgward.io/scheduledbackups/finalizers": true,
	"postgresql.pgward.io/scheduledbackups/status":     true,
	"postgresql.pgward.io/imagecatalogs":               true,
	"postgresql.pgward.io/databases":                   true,
	"postgresql.pgward.io/databases/finalizers":        true,
	"postgresql.pgward.io/databases/status":            true,
	// The catalogs every namespace's Clusters may name (read only).
	"postgresql.pgward.io/clusterimagecatalogs": false,
	"snapshot.storage.k8s.io/volumesnapshots":   true,
	"rbac.authorization.k8s.io/rolebindings":    true,
	"rbac.authorization.k8s.io/roles":           true,
	// The webhook configurations the operator keeps its CA in, and the
	// reviews that authorize scrapers of its metrics.
	"admissionregistration.k8s.io/mutatingwebhookconfigurations":   false,
	"admissionregistration.k8s.io/validatingwebhookconfigurations": false,
	"authentication.k8s.io/tokenreviews":                           false,
	"authorization.k8s.io/subjectaccessreviews":                    false,
	// Nodes' labels: the failure domains of synchronous standbys (get by name only).
	"/nodes": false,
}

func main() {
	configDir := flag.String("config", "config", "the config directory")
	out := flag.String("out", "dist/install.yaml", "the install manifest to write")
	watch := flag.String("namespaces", "", "comma-separated namespaces: write the namespaced install for them instead of the cluster-wide one")
	flag.Parse()
	namespaces, err := kube.ParseNamespaces(*watch)
	var data []byte
	if err == nil {
		data, err = generate(*configDir, namespaces)
	}
	if err == nil {
		err = os.WriteFile(*out, data, 0o644) // #nosec G306 -- a manifest meant to be published
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "genmanifests:", err)
		os.Exit(1)
	}
}

// generate returns the cluster-wide install, or with namespaces the
// namespaced install for them.
func generate(dir string, namespaces []string) ([]byte, error) {
	manager, err := readDocs(filepath.Join(dir, "manager", "operator.yaml"))
	if err != nil {
		return nil, err
	}
	if len(manager) == 0 || manager[0]["kind"] != "Namespace" {
		return nil, errors.New("config/manager/operator.yaml must start with the Namespace")
	}
	var crd []map[string]any
	for _, kind := range []string{"clusters", "backups", "scheduledbackups", "imagecatalogs", "clusterimagecatalogs", "databases"} {
		docs, err := readDocs(filepath.Join(dir, "crd", "bases", "postgresql.pgward.io_"+kind+".yaml"))
		if err != nil {
			return nil, err
		}
		crd = append(crd, docs...)
	}
	rbac, err := readDocs(filepath.Join(dir, "rbac", "role.yaml"))
	if err != nil {
		return nil, err
	}
	if len(namespaces) > 0 {
		if rbac, err = namespacedRBAC(rbac, namespaces); err != nil {
			return nil, err
		}
		if err := watchNamespaces(manager, namespaces); err != nil {
			return nil, err
		}
	}
	var docs []map[string]any
	docs = append(docs, manager[0])
	docs = append(docs, crd...)
	docs = append(docs, rbac...)
	docs = append(docs, manager[1:]...)
	hooks, err := readDocs(filepath.Join(dir, "webhook", "manifests.yaml"))
	if err != nil {
		return nil, err
	}
	for _, h := range hooks {
		if err := placeWebhook(h); err != nil {
			return nil, err
		}
		docs = append(docs, h)
	}
	var buf bytes.Buffer
	if len(namespaces) == 0 {
		buf.WriteString("# pgward operator: generated by `make manifests` (hack/genmanifests); do not edit.\n")
		buf.WriteString("# Install with: kubectl apply -f dist/install.yaml\n")
	} else {
		list := strings.Join(namespaces, ",")
		fmt.Fprintf(&buf, "# pgward operator, namespaced: reconciles Clusters in %s only, with Roles there and\n", list)
		fmt.Fprintf(&buf, "# cluster-scoped permissions only for its webhooks and metrics (docs/operator.md).\n")
		fmt.Fprintf(&buf, "# Generated by `make install-namespaced NAMESPACES=%s` (hack/genmanifests); do not edit.\n", list)
		buf.WriteString("# The namespaces must exist first. Install with: kubectl apply -f <this file>\n")
	}
	for _, d := range docs {
		b, err := yaml.Marshal(d)
		if err != nil {
			return nil, err
		}
		buf.WriteString("---\n")
		buf.Write(b)
	}
	return buf.Bytes(), nil
}

// namespacedRBAC splits the generated ClusterRole: rules on namespaced
// resources go into a Role (and a RoleBinding to the operator's
// ServiceAccount) in each watched namespace; the ClusterRole keeps the
// rest. The Role of the operator's own namespace is left as it is.
func namespacedRBAC(docs []map[string]any, namespaces []string) ([]map[string]any, error) {
	var out, watched []map[string]any
	found := false
	for _, d := range docs {
		if d["kind"] != "ClusterRole" {
			out = append(out, d)
			continue
		}
		found = true
		var cr rbacv1.ClusterRole
		if err := convert(d, &cr); err != nil {
			return nil, fmt.Errorf("the generated ClusterRole: %w", err)
		}
		inNS, cluster, err := splitRules(cr.Rules)
		if err != nil {
			return nil, err
		}
		d["rules"], err = toAny(cluster)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
		rules, err := toAny(inNS)
		if err != nil {
			return nil, err
		}
		for _, ns := range namespaces {
			meta := func() map[string]any {
				return map[string]any{
					"name": watchedRoleName, "namespace": ns,
					"labels": map[string]any{"app.kubernetes.io/name": "pgward-operator"},
				}
			}
			watched = append(watched, map[string]any{
				"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
				"metadata": meta(), "rules": rules,
			}, map[string]any{
				"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
				"metadata": meta(),
				"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": watchedRoleName},
				"subjects": []any{map[string]any{"kind": "ServiceAccount", "name": serviceAccount, "namespace": namespace}},
			})
		}
	}
	if !found {
		return nil, errors.New("config/rbac/role.yaml has no ClusterRole")
	}
	return append(out, watched...), nil
}

// splitRules divides rules by the scope of their resources, splitting a
// rule whose resources are of both kinds.
func splitRules(rules []rbacv1.PolicyRule) (inNS, cluster []rbacv1.PolicyRule, err error) {
	for _, r := range rules {
		if len(r.NonResourceURLs) > 0 {
			cluster = append(cluster, r)
			continue
		}
		var nsRes, clusterRes []string
		for _, res := range r.Resources {
			scope := map[bool]bool{}
			for _, g := range r.APIGroups {
				ns, ok := namespaced[g+"/"+res]
				if !ok {
					return nil, nil, fmt.Errorf("resource %s/%s: say in hack/genmanifests whether it is namespaced", g, res)
				}
				scope[ns] = true
			}
			if len(scope) != 1 {
				return nil, nil, fmt.Errorf("resource %s of groups %v is namespaced in some and not in others", res, r.APIGroups)
			}
			if scope[true] {
				nsRes = append(nsRes, res)
			} else {
				clusterRes = append(clusterRes, res)
			}
		}
		if len(nsRes) > 0 {
			inNS = append(inNS, withResources(r, nsRes))
		}
		if len(clusterRes) > 0 {
			cluster = append(cluster, withResources(r, clusterRes))
		}
	}
	return inNS, cluster, nil
}

func withResources(r rbacv1.PolicyRule, resources []string) rbacv1.PolicyRule {
	r = *r.DeepCopy()
	r.Resources = slices.Clone(resources)
	return r
}

// watchNamespaces tells the operator's Deployment which namespaces to
// watch.
func watchNamespaces(manager []map[string]any, namespaces []string) error {
	for _, d := range manager {
		if d["kind"] != "Deployment" {
			continue
		}
		spec, _ := d["spec"].(map[string]any)
		tmpl, _ := spec["template"].(map[string]any)
		pod, _ := tmpl["spec"].(map[string]any)
		containers, _ := pod["containers"].([]any)
		for _, c := range containers {
			ctr, _ := c.(map[string]any)
			if ctr["name"] != "operator" {
				continue
			}
			env, _ := ctr["env"].([]any)
			ctr["env"] = append(env, map[string]any{"name": kube.WatchNamespacesEnv, "value": strings.Join(namespaces, ",")})
			return nil
		}
	}
	return errors.New("config/manager/operator.yaml has no Deployment with an operator container")
}

// convert turns a parsed YAML document into a typed object.
func convert(doc map[string]any, into any) error {
	b, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, into)
}

// toAny turns a typed value back into the generic form of the documents.
func toAny(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	err = json.Unmarshal(b, &out)
	return out, err
}

// placeWebhook names a generated webhook configuration and points it at
// the operator's Service.
func placeWebhook(h map[string]any) error {
	meta, _ := h["metadata"].(map[string]any)
	switch h["kind"] {
	case "MutatingWebhookConfiguration":
		meta["name"] = mutatingName
	case "ValidatingWebhookConfiguration":
		meta["name"] = validatingName
	default:
		return fmt.Errorf("unexpected %v in the webhook manifests", h["kind"])
	}
	meta["labels"] = map[string]any{"app.kubernetes.io/name": "pgward-operator"}
	hooks, _ := h["webhooks"].([]any)
	for _, w := range hooks {
		cc, _ := w.(map[string]any)["clientConfig"].(map[string]any)
		svc, ok := cc["service"].(map[string]any)
		if !ok {
			return errors.New("a generated webhook has no service")
		}
		svc["name"], svc["namespace"] = webhookService, namespace
	}
	return nil
}

// readDocs parses every YAML document of a file.
func readDocs(path string) ([]map[string]any, error) {
	data, err := os.ReadFile(path) // #nosec G304 -- a path in the repository
	if err != nil {
		return nil, err
	}
	var docs []map[string]any
	for _, part := range strings.Split(string(data), "\n---") {
		if strings.TrimSpace(stripComments(part)) == "" || strings.TrimSpace(stripComments(part)) == "---" {
			continue
		}
		var m map[string]any
		if err := yaml.UnmarshalStrict([]byte(part), &m); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(m) > 0 {
			docs = append(docs, m)
		}
	}
	return docs, nil
}

func stripComments(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
