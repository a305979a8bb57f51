package cli

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/customqueries"
	"github.com/pgward/pgward/internal/local"
)

// newValidateCmd is `pgward validate`: the validation both runtimes run on
// a manifest, with no side effect (no directory, no server, no API call).
func newValidateCmd() *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "validate -f MANIFEST",
		Short: "Check a Cluster manifest (and the Secrets in the same file) as both runtimes would, changing nothing",
		Long: `Check a Cluster manifest as pgward local up and the operator's admission
webhook do, without creating anything. The file may hold, besides the
Cluster, the Secrets it refers to (its app or superuser credentials, its
certificates), as CloudNativePG's samples do; each is checked for what pgward
reads from it. CloudNativePG's apiVersion (postgresql.cnpg.io/v1) is read
too. Exit status 0 when valid, 1 with every problem named otherwise.`,
		Example: `  pgward validate -f cluster.yaml
  pgward validate -f - < cluster.yaml
  kubectl pgward validate -f cluster.yaml   # the same, from the kubectl plugin (no API call)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := readManifest(file)
			if err != nil {
				return err
			}
			summary, err := validateManifestFile(data)
			if err != nil {
				return err
			}
			_, _ = fmt.Fprintln(cmd.OutOrStdout(), summary)
			return nil
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "the manifest (YAML or JSON; - for standard input)")
	_ = c.MarkFlagRequired("file")
	return c
}

// typeMeta is what tells documents apart.
type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
}

// secretDoc is what pgward reads from a Secret in the same file.
type secretDoc struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Type       string            `json:"type"`
	Data       map[string]string `json:"data"`
	StringData map[string]string `json:"stringData"`
}

func (s secretDoc) has(key string) bool {
	_, a := s.Data[key]
	_, b := s.StringData[key]
	return a || b
}

// username is the Secret's username, from stringData or data (base64).
func (s secretDoc) username() (string, bool) {
	if u, ok := s.StringData["username"]; ok {
		return u, true
	}
	if b64, ok := s.Data["username"]; ok {
		if u, err := base64.StdEncoding.DecodeString(b64); err == nil {
			return string(u), true
		}
	}
	return "", false
}

// validateManifestFile checks every document: exactly one Cluster, any
// number of Secrets, nothing else.
func validateManifestFile(data []byte) (string, error) {
	docs := v1.SplitDocuments(data)
	if len(docs) == 0 {
		return "", errors.New("the manifest is empty")
	}
	var (
		problems, skipped []string
		cluster           *v1.Cluster
		secrets           = map[string]secretDoc{}
		configMaps        = map[string]map[string][]byte{}
		// issued maps a Secret's name to the cert-manager Certificate
		// that fills it: CloudNativePG's samples ship such Secrets
		// empty, for cert-manager to write on Kubernetes.
		issued   = map[string]string{}
		catalogs = map[string]*v1.ImageCatalogSpec{}
		dbs      []*v1.Database
	)
	for i, doc := range docs {
		var tm typeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			problems = append(problems, fmt.Sprintf("document %d: %v", i+1, err))
			continue
		}
		switch {
		case tm.Kind == v1.Kind:
			if cluster != nil {
				problems = append(problems, fmt.Sprintf("document %d: a second Cluster: give one per file", i+1))
				continue
			}
			c, err := v1.LoadAndValidate(doc)
			if err != nil {
				problems = append(problems, fmt.Sprintf("document %d (Cluster %q): %v", i+1, tm.Metadata.Name, err))
				continue
			}
			cluster = c
		case tm.Kind == v1.ImageCatalogKind || tm.Kind == v1.ClusterImageCatalogKind:
			kind, name, spec, err := v1.LoadImageCatalog(doc)
			if err != nil {
				problems = append(problems, fmt.Sprintf("document %d (%s %q): %v", i+1, tm.Kind, tm.Metadata.Name, err))
				continue
			}
			catalogs[kind+"/"+name] = spec
		case tm.Kind == v1.DatabaseKind:
			d, err := v1.LoadDatabase(doc)
			if err != nil {
				problems = append(problems, fmt.Sprintf("document %d: %v", i+1, err))
				continue
			}
			dbs = append(dbs, d)
		case tm.Kind == "Secret" && tm.APIVersion == "v1":
			var s secretDoc
			if err := yaml.UnmarshalStrict(doc, &s); err != nil {
				problems = append(problems, fmt.Sprintf("document %d (Secret %q): %v", i+1, tm.Metadata.Name, err))
				continue
			}
			secrets[s.Metadata.Name] = s
		case tm.Kind == "ConfigMap" && tm.APIVersion == "v1":
			name, data, err := local.ParseConfigMapDoc(doc)
			if err != nil {
				problems = append(problems, fmt.Sprintf("document %d (ConfigMap %q): %v", i+1, tm.Metadata.Name, err))
				continue
			}
			configMaps[name] = data
		case tm.Kind == "Certificate" && strings.HasPrefix(tm.APIVersion, "cert-manager.io/"):
			var crt struct {
				Spec struct {
					SecretName string `json:"secretName"`
				} `json:"spec"`
			}
			if err := yaml.Unmarshal(doc, &crt); err == nil && crt.Spec.SecretName != "" {
				issued[crt.Spec.SecretName] = tm.Metadata.Name
			}
			skipped = append(skipped, fmt.Sprintf("skipped: %s %q (applied with kubectl; cert-manager fills Secret %q)", tm.Kind, tm.Metadata.Name, crt.Spec.SecretName))
		default:
			// Issuers, PodMonitors... are applied with
			// kubectl; pgward reads only the Cluster and its Secrets.
			skipped = append(skipped, fmt.Sprintf("skipped: %s %q (not read by pgward)", tm.Kind, tm.Metadata.Name))
		}
	}
	if cluster == nil && len(problems) == 0 {
		problems = append(problems, "no Cluster in the file")
	}
	if cluster != nil {
		for _, name := range slices.Sorted(maps.Keys(issued)) {
			crt := issued[name]
			if _, ok := secrets[name]; ok {
				// Its keys are cert-manager's to write: the operator
				// reads them when they exist; locally `up` checks them.
				delete(secrets, name)
				skipped = append(skipped, fmt.Sprintf("not checked: Secret %q (filled by cert-manager's Certificate %q on Kubernetes; pgward local up needs its keys in the file)", name, crt))
			}
		}
		problems = append(problems, checkSecretDocs(cluster, secrets)...)
		if err := local.CheckDatabases(cluster, dbs); err != nil {
			problems = append(problems, strings.Split(err.Error(), "\n")...)
		}
		problems = append(problems, checkCustomQueries(cluster, secrets, configMaps)...)
		// A catalog in the same file must have the entry the Cluster
		// selects; one applied separately is checked by the operator.
		if ref := cluster.Spec.ImageCatalogRef; ref != nil {
			if spec, ok := catalogs[ref.Kind+"/"+ref.Name]; ok {
				if _, ok := spec.ImageFor(ref.Major); !ok {
					problems = append(problems, fmt.Sprintf("spec.imageCatalogRef: %s %q in this file has no image for major %d", ref.Kind, ref.Name, ref.Major))
				}
			}
		}
		problems = append(problems, checkSQLRefDocs(cluster, secrets, configMaps)...)
	}
	if len(problems) > 0 {
		return "", fmt.Errorf("invalid:\n  %s", strings.Join(problems, "\n  "))
	}
	summary := fmt.Sprintf("Cluster %q is valid (%d instance(s)); %d Secret(s) checked", cluster.Name, cluster.Spec.Instances, len(secrets))
	if len(configMaps) > 0 {
		summary += fmt.Sprintf("; %d ConfigMap(s) checked", len(configMaps))
	}
	if len(dbs) > 0 {
		summary += fmt.Sprintf("; %d Database(s) checked", len(dbs))
	}
	for _, f := range cluster.Spec.KubernetesOnlySnapshotFields() {
		skipped = append(skipped, fmt.Sprintf("note: %s is Kubernetes-only (CSI VolumeSnapshots): the operator implements it, `pgward local up` refuses it", f))
	}
	return strings.Join(append([]string{summary}, skipped...), "\n"), nil
}

// checkSecretDocs checks the Secrets of the file that the Cluster names:
// credentials need a username (the role they are for) and a password,
// certificates a certificate and, except a CA given without its key, a key.
func checkSecretDocs(c *v1.Cluster, secrets map[string]secretDoc) []string {
	type need struct {
		name, what string
		keys       []string
		user       string
	}
	var needs []need
	if b := c.Spec.Bootstrap; b != nil && b.InitDB != nil && b.InitDB.Secret != nil {
		needs = append(needs, need{b.InitDB.Secret.Name, "spec.bootstrap.initdb.secret", []string{"username", "password"}, b.InitDB.Owner})
	}
	if s := c.Spec.SuperuserSecret; s != nil {
		needs = append(needs, need{s.Name, "spec.superuserSecret", []string{"username", "password"}, v1.SuperuserRole})
	}
	if cert := c.Spec.Certificates; cert != nil {
		for _, n := range []need{
			{cert.ServerTLSSecret, "spec.certificates.serverTLSSecret", []string{"tls.crt", "tls.key"}, ""},
			{cert.ReplicationTLSSecret, "spec.certificates.replicationTLSSecret", []string{"tls.crt", "tls.key"}, ""},
			{cert.ServerCASecret, "spec.certificates.serverCASecret", []string{"ca.crt"}, ""},
			{cert.ClientCASecret, "spec.certificates.clientCASecret", []string{"ca.crt"}, ""},
		} {
			if n.name != "" {
				needs = append(needs, n)
			}
		}
	}
	var problems []string
	for _, n := range needs {
		s, ok := secrets[n.name]
		if !ok {
			continue // it must exist where the cluster runs; not this file's business
		}
		for _, k := range n.keys {
			if !s.has(k) {
				problems = append(problems, fmt.Sprintf("Secret %q (%s) has no key %q", n.name, n.what, k))
			}
		}
		if u, ok := s.username(); ok && n.user != "" && u != n.user {
			problems = append(problems, fmt.Sprintf("Secret %q (%s) is for user %q, not %q", n.name, n.what, u, n.user))
		}
	}
	return problems
}

// checkSQLRefDocs checks bootstrap.initdb's SQL references to the Secrets
// and ConfigMaps of the file: the key must be there. One not in the file
// must exist where the cluster runs (locally, a ConfigMap must be in the
// file: `up` says so).
func checkSQLRefDocs(c *v1.Cluster, secrets map[string]secretDoc, configMaps map[string]map[string][]byte) []string {
	var problems []string
	_, _ = c.Spec.ResolveSQLRefs(func(secret bool, name, key string) (string, error) {
		if secret {
			if s, ok := secrets[name]; ok && !s.has(key) {
				problems = append(problems, fmt.Sprintf("Secret %q (a bootstrap.initdb SQL reference) has no key %q", name, key))
			}
			return "", nil
		}
		if cm, ok := configMaps[name]; ok {
			if _, ok := cm[key]; !ok {
				problems = append(problems, fmt.Sprintf("ConfigMap %q (a bootstrap.initdb SQL reference) has no key %q", name, key))
			}
		}
		return "", nil
	})
	return problems
}

// checkCustomQueries parses the custom queries the Cluster names from the
// file's ConfigMaps and Secrets, as both runtimes will; one not in the file
// must exist where the cluster runs, and is checked there.
func checkCustomQueries(c *v1.Cluster, secrets map[string]secretDoc, configMaps map[string]map[string][]byte) []string {
	sources, err := local.CustomQuerySources(c, func(kind, name string) (map[string][]byte, error) {
		if kind == "ConfigMap" {
			if d, ok := configMaps[name]; ok {
				return d, nil
			}
		} else if s, ok := secrets[name]; ok {
			d := map[string][]byte{}
			for k, v := range s.StringData {
				d[k] = []byte(v)
			}
			for k, v := range s.Data {
				b, err := base64.StdEncoding.DecodeString(v)
				if err != nil {
					return nil, fmt.Errorf("data[%s] is not base64", k)
				}
				d[k] = b
			}
			return d, nil
		}
		return nil, errNotInFile
	})
	var problems []string
	if err != nil {
		for _, e := range unjoin(err) {
			if !errors.Is(e, errNotInFile) {
				problems = append(problems, e.Error())
			}
		}
	}
	if _, err := customqueries.Parse(sources); err != nil {
		problems = append(problems, unjoinStrings(err)...)
	}
	return problems
}

var errNotInFile = errors.New("not in the file")

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func unjoinStrings(err error) []string {
	var out []string
	for _, e := range unjoin(err) {
		out = append(out, e.Error())
	}
	return out
}
