package local

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/pki"
	"github.com/pgward/pgward/internal/secrets"
)

func cluster(t *testing.T, certs *v1.CertificatesConfiguration) *v1.Cluster {
	t.Helper()
	c := &v1.Cluster{}
	c.Name = "demo"
	c.Spec.Instances = 2
	c.Spec.Certificates = certs
	v1.SetDefaults(c)
	return c
}

func TestEnsurePKIGeneratesOnceAndRenewsWhenDue(t *testing.T) {
	store := secrets.DirStore{Root: t.TempDir()}
	now := time.Now()
	names, notes, err := ensurePKI(store, cluster(t, nil), rand.Reader, now)
	if err != nil {
		t.Fatal(err)
	}
	if names.ServerCA != "demo-ca" || names.ClientCA != "demo-ca" || names.Replication != "demo-replication" || names.Metrics != "demo-metrics" || len(notes) != 5 {
		t.Fatalf("names %+v notes %v", names, notes)
	}
	first, _ := store.Get("demo-server")
	if _, notes, err = ensurePKI(store, cluster(t, nil), rand.Reader, now.Add(time.Hour)); err != nil || len(notes) != 0 {
		t.Fatalf("a second run reissued %v (%v)", notes, err)
	}
	// Within RenewBefore of expiry every leaf is reissued. The CA is kept:
	// replacing it at once would break clients holding its ca.crt; the
	// running controller renews it with an overlap (autoRenewCA).
	caBefore, _ := store.Get("demo-ca")
	later := now.Add(pki.Validity - pki.RenewBefore + time.Hour)
	if _, notes, err = ensurePKI(store, cluster(t, nil), rand.Reader, later); err != nil || len(notes) != 4 {
		t.Fatalf("renewal reissued %v (%v)", notes, err)
	}
	second, _ := store.Get("demo-server")
	if string(first["tls.crt"]) == string(second["tls.crt"]) {
		t.Fatal("server certificate not renewed")
	}
	if caAfter, _ := store.Get("demo-ca"); string(caAfter["ca.crt"]) != string(caBefore["ca.crt"]) {
		t.Fatal("a CA due for renewal was replaced at once")
	}
	// An expired CA verifies nothing any more: it is replaced at once,
	// with every leaf.
	expired := now.Add(pki.Validity + time.Minute)
	if _, notes, err = ensurePKI(store, cluster(t, nil), rand.Reader, expired); err != nil || len(notes) != 5 {
		t.Fatalf("an expired CA: %v (%v)", notes, err)
	}
	repl, _ := store.Get("demo-replication")
	kp, err := pki.ParseKeyPair(repl["tls.crt"], repl["tls.key"])
	if err != nil || kp.Cert.Subject.CommonName != "streaming_replica" {
		t.Fatalf("replication certificate: %v %v", kp, err)
	}
	// The scraper's identity: a client certificate of the client CA.
	mc, _ := store.Get("demo-metrics")
	kp, err = pki.ParseKeyPair(mc["tls.crt"], mc["tls.key"])
	if err != nil || kp.Cert.Subject.CommonName != pki.MetricsCommonName {
		t.Fatalf("metrics certificate: %v %v", kp, err)
	}
}

func TestEnsurePKIUsesUserCertificates(t *testing.T) {
	store := secrets.DirStore{Root: t.TempDir()}
	now := time.Now()
	ca, _ := pki.NewCA(rand.Reader, now, "my CA")
	srv, _ := ca.IssueServer(rand.Reader, now, "db", []string{"localhost"}, nil)
	put := func(name string, data map[string][]byte) {
		if err := store.Put(name, data); err != nil {
			t.Fatal(err)
		}
	}
	put("my-ca", map[string][]byte{"ca.crt": ca.CertPEM})
	put("my-server", map[string][]byte{"tls.crt": srv.CertPEM, "tls.key": srv.KeyPEM})
	certs := &v1.CertificatesConfiguration{ServerCASecret: "my-ca", ServerTLSSecret: "my-server"}
	names, _, err := ensurePKI(store, cluster(t, certs), rand.Reader, now)
	if err != nil {
		t.Fatal(err)
	}
	if names.ServerTLS != "my-server" || names.ServerCA != "my-ca" || names.ClientCA != "demo-ca" {
		t.Fatalf("names %+v", names)
	}
	if got, _ := store.Get("my-server"); string(got["tls.crt"]) != string(srv.CertPEM) {
		t.Fatal("a user-provided certificate was replaced")
	}
	// A server certificate from another CA is refused with both names.
	other, _ := pki.NewCA(rand.Reader, now, "other")
	bad, _ := other.IssueServer(rand.Reader, now, "db", []string{"localhost"}, nil)
	put("my-server", map[string][]byte{"tls.crt": bad.CertPEM, "tls.key": bad.KeyPEM})
	_, _, err = ensurePKI(store, cluster(t, certs), rand.Reader, now)
	if err == nil || !strings.Contains(err.Error(), `"my-server" is not signed by CA secret "my-ca"`) {
		t.Fatalf("got %v", err)
	}
}

func TestHealthy(t *testing.T) {
	lag := int64(0)
	cs := &ClusterStatus{TargetPrimary: "a", CurrentPrimary: "a", Instances: []InstanceReport{
		{Name: "a", Role: "primary", State: "running"},
		{Name: "b", Role: "replica", State: "streaming", LagBytes: &lag},
	}}
	if ok, why := healthy(cs, ""); !ok {
		t.Fatalf("healthy cluster reported %s", why)
	}
	if ok, _ := healthy(cs, "b"); ok {
		t.Fatal("wrong primary accepted")
	}
	cs.Instances[1].State = "startup"
	if ok, _ := healthy(cs, "a"); ok {
		t.Fatal("replica not streaming accepted")
	}
}

func TestOrderForURI(t *testing.T) {
	// c-10 shows instance order, not name order; c-11 is beyond the size.
	st := &State{Instances: []InstanceState{{Name: "c-1"}, {Name: "c-2"}, {Name: "c-3"}, {Name: "c-10"}, {Name: "c-11"}}}
	names := func(is []InstanceState) string {
		var out []string
		for _, i := range is {
			out = append(out, i.Name)
		}
		return strings.Join(out, ",")
	}
	if got := names(orderForURI(st, 4, "c-2", false)); got != "c-2,c-1,c-3,c-10" {
		t.Errorf("read-write order %s", got)
	}
	if got := names(orderForURI(st, 4, "c-2", true)); got != "c-1,c-3,c-10,c-2" {
		t.Errorf("read-only order %s", got)
	}
	if got := names(orderForURI(st, 1, "c-1", true)); got != "c-1" {
		t.Errorf("one instance, read-only: %s", got)
	}
}

func TestCanTraverse(t *testing.T) {
	// canTraverse judges from modes and owners alone, so any stranger works:
	// nobody (65534) owns none of these directories.
	u := &Owner{Name: "nobody", UID: 65534, GID: 65534}
	base := t.TempDir()
	private := filepath.Join(base, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	err := u.canTraverse(filepath.Join(private, "state"))
	if err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Fatalf("got %v", err)
	}
	if err := os.Chmod(private, 0o711); err != nil { // #nosec G302 -- the point of the test
		t.Fatal(err)
	}
	fi, err := os.Stat(private)
	if err != nil {
		t.Fatal(err)
	}
	if !u.mayExecute(fi) {
		t.Fatal("a 0711 directory is traversable by others")
	}
}

func TestHASettings(t *testing.T) {
	h, err := HASettings{}.withDefaults(0, 0)
	if err != nil || h.UnreachableTimeout.Duration != time.Second || h.SelfFence.Duration != 3*time.Second {
		t.Fatalf("defaults: %+v %v", h, err)
	}
	h, err = h.withDefaults(2*time.Second, 0)
	if err != nil || h.UnreachableTimeout.Duration != 2*time.Second || h.SelfFence.Duration != 3*time.Second {
		t.Fatalf("override: %+v %v", h, err)
	}
	if _, err := h.withDefaults(0, 100*time.Millisecond); err == nil {
		t.Fatal("accepted a 100ms self-fence")
	}
	// The derived wait before replacing an unreachable primary exceeds
	// everything the primary needs to fence itself.
	bound, err := fenceTiming(h).Bound()
	if err != nil || bound <= requestTimeout+h.SelfFence.Duration+fenceStopTime {
		t.Fatalf("bound %s, %v", bound, err)
	}
}

func TestPpidFromStat(t *testing.T) {
	if got := ppidFromStat("123 (postgres: app (x)) S 45 123 123"); got != 45 {
		t.Fatalf("ppid %d", got)
	}
}

func TestIsManagerOf(t *testing.T) {
	cfg := "/s/instances/c-1/config.json"
	if !isManagerOf("/s/bin/pgward\x00instance\x00run\x00--config\x00"+cfg+"\x00", cfg) {
		t.Fatal("manager not recognised")
	}
	if isManagerOf("/usr/bin/vi\x00--config\x00"+cfg+"\x00", cfg) || isManagerOf("/s/bin/pgward\x00instance\x00run\x00--config\x00/other\x00", cfg) {
		t.Fatal("something else taken for the manager")
	}
}

// Every instance gets ports of its own: new ones are allocated together
// (one at a time, the kernel handed two instances the same port), ports
// already fixed are kept, and a clash left by that bug is repaired.
func TestAssignPortsAreDistinct(t *testing.T) {
	c := cluster(t, nil)
	c.Spec.Instances = 3
	for range 20 {
		st := &State{}
		if err := st.assignPorts(c); err != nil {
			t.Fatal(err)
		}
		seen := map[int]bool{}
		for _, is := range st.Instances {
			for _, p := range []int{is.Port, is.StatusPort, is.MetricsPort} {
				if p == 0 || seen[p] {
					t.Fatalf("ports %+v", st.Instances)
				}
				seen[p] = true
			}
		}
	}
	st := &State{Instances: []InstanceState{
		{Name: "demo-1", Port: 35637, StatusPort: 39687},
		{Name: "demo-2", Port: 42035, StatusPort: 43675},
		{Name: "demo-3", Port: 35637, StatusPort: 35231},
	}}
	if err := st.assignPorts(c); err != nil {
		t.Fatal(err)
	}
	if st.Instances[0].Port != 35637 || st.Instances[1].Port != 42035 || st.Instances[2].StatusPort != 35231 {
		t.Errorf("fixed ports changed: %+v", st.Instances)
	}
	if p := st.Instances[2].Port; p == 35637 || p == 0 {
		t.Errorf("the clash was not repaired: %+v", st.Instances)
	}
	// A state written before the metrics exporter existed gets a metrics
	// port for every instance and keeps every other port.
	before := append([]InstanceState(nil), st.Instances...)
	for i := range st.Instances {
		st.Instances[i].MetricsPort = 0
		before[i].MetricsPort = 0
	}
	if err := st.assignPorts(c); err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for i, is := range st.Instances {
		if is.Port != before[i].Port || is.StatusPort != before[i].StatusPort {
			t.Errorf("resuming moved a port: %+v, was %+v", is, before[i])
		}
		for _, p := range []int{is.Port, is.StatusPort, is.MetricsPort} {
			if p == 0 || seen[p] {
				t.Fatalf("ports %+v", st.Instances)
			}
			seen[p] = true
		}
	}
}
