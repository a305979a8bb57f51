package build

import (
	"testing"

	v1 "github.com/pgward/pgward/api/v1"
)

// TestConfigProjectionLDAP: the pods get postgresql.ldap's bind password
// and CA as files under secrets/<secret>/<key>, the layout the instance
// manager reads (hbaSecrets, ldapEnv), and only those keys.
func TestConfigProjectionLDAP(t *testing.T) {
	c := &v1.Cluster{}
	c.Name, c.Namespace = "demo", "ns"
	c.Spec.Instances = 1
	c.Spec.PostgresConfiguration.LDAP = &v1.LDAPConfig{Server: "l", Scheme: "ldaps",
		CASecret: &v1.SecretKeySelector{Name: "dir-ca", Key: "ca.pem"},
		BindSearchAuth: &v1.LDAPBindSearchAuth{BaseDN: "dc=x", BindDN: "cn=s",
			BindPassword: &v1.SecretKeySelector{Name: "dir-bind", Key: "pw"}}}
	got := map[string][]string{}
	for _, p := range configProjection(c, "demo-1") {
		if p.Secret == nil {
			continue
		}
		for _, it := range p.Secret.Items {
			got[p.Secret.Name] = append(got[p.Secret.Name], it.Key+"->"+it.Path)
		}
	}
	for secret, want := range map[string]string{"dir-ca": "ca.pem->secrets/dir-ca/ca.pem", "dir-bind": "pw->secrets/dir-bind/pw"} {
		if len(got[secret]) != 1 || got[secret][0] != want {
			t.Errorf("secret %s: projected %v, want only %s", secret, got[secret], want)
		}
	}
}
