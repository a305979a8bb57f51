package instance

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fakeRenewer stands in for the API server in the manager's test.
type fakeRenewer struct{ fail atomic.Bool }

func (f *fakeRenewer) Renew(context.Context) error {
	if f.fail.Load() {
		return errors.New("API server unreachable")
	}
	return nil
}

// TestLeaseRenewalKeepsPrimaryUnfenced: a primary that has no exchange
// with the controller stays unfenced for as long as its lease renewals
// succeed (an operator restart of any length), and fences itself within
// its bound once they fail.
func TestLeaseRenewalKeepsPrimaryUnfenced(t *testing.T) {
	const bound = 600 * time.Millisecond
	for _, c := range []struct {
		name      string
		fail      bool
		wantFence bool
	}{
		{"renewals succeed: unfenced past the bound", false, false},
		{"renewals fail: fenced within the bound", true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			pm := fakePostmaster(t)
			lease := &fakeRenewer{}
			lease.fail.Store(c.fail)
			start := time.Now()
			m := &Manager{
				cfg: &Config{Name: "c-1", ConfDir: t.TempDir()}, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
				contact: newContactTracker(start), selfFence: bound, lease: lease,
				pm: pm, primary: true, phase: PhaseRunning,
			}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Go(func() { m.renewLease(ctx, 100*time.Millisecond, time.Second) })
			defer func() { cancel(); wg.Wait() }()
			tick := time.NewTicker(FenceCheckInterval)
			defer tick.Stop()
			deadline := time.After(4 * bound)
			for {
				select {
				case <-pm.Done():
					took := time.Since(start)
					if !c.wantFence {
						t.Fatalf("fenced after %v although every renewal succeeded", took)
					}
					// The bound plus one check and the stop.
					if took > bound+FenceCheckInterval+500*time.Millisecond {
						t.Errorf("fenced only after %v (bound %v)", took, bound)
					}
					return
				case <-tick.C:
					m.checkSelfFence()
				case <-deadline:
					if c.wantFence {
						t.Fatal("renewals failed for four times the bound and postgres still runs")
					}
					if away := m.contact.since(time.Now()); away > 300*time.Millisecond {
						t.Errorf("last contact %v ago with renewals every 100ms", away)
					}
					return
				}
			}
		})
	}
}

// TestRenewOnceOnlyOnPrimary: a replica, or a fenced primary, never renews
// (it would claim a primacy it does not have).
func TestRenewOnceOnlyOnPrimary(t *testing.T) {
	for _, c := range []struct {
		name             string
		primary, fenced  bool
		wantRenewContact bool
	}{
		{"primary", true, false, true},
		{"replica", false, false, false},
		{"fenced primary", true, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			lease := &countingRenewer{}
			old := time.Now().Add(-time.Hour)
			m := &Manager{
				log: slog.New(slog.NewTextHandler(io.Discard, nil)), contact: newContactTracker(old),
				lease: lease, pm: &postmaster{}, primary: c.primary, st: persisted{Fenced: c.fenced},
			}
			if err := m.renewOnce(context.Background(), time.Second); err != nil {
				t.Fatal(err)
			}
			if got := lease.n.Load() == 1; got != c.wantRenewContact {
				t.Errorf("renewed: %v", got)
			}
			if got := m.contact.since(time.Now()) < time.Minute; got != c.wantRenewContact {
				t.Errorf("contact restarted: %v", got)
			}
		})
	}
}

type countingRenewer struct{ n atomic.Int32 }

func (c *countingRenewer) Renew(context.Context) error { c.n.Add(1); return nil }

// TestAPILeaseRenew drives the HTTP renewer against a stand-in API server
// (the real one is in internal/kube's envtest): it sends the token, writes
// back the resourceVersion it read, refuses to renew a Lease held by
// another instance, and reports a conflict.
func TestAPILeaseRenew(t *testing.T) {
	var (
		mu     sync.Mutex
		holder = "c-1"
		rv     = "7"
		puts   []coordinationv1.Lease
		status = http.StatusOK
	)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path != "/apis/coordination.k8s.io/v1/namespaces/ns/leases/c" || r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, `{"kind":"Status","message":"forbidden"}`, http.StatusForbidden)
			return
		}
		switch r.Method {
		case http.MethodGet:
			l := coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns", ResourceVersion: rv}}
			l.Spec.HolderIdentity = &holder
			_ = json.NewEncoder(w).Encode(l)
		case http.MethodPut:
			var l coordinationv1.Lease
			_ = json.NewDecoder(r.Body).Decode(&l)
			puts = append(puts, l)
			if status != http.StatusOK {
				w.WriteHeader(status)
				_, _ = w.Write([]byte(`{"kind":"Status","message":"the object has been modified"}`))
				return
			}
			_ = json.NewEncoder(w).Encode(l)
		}
	}))
	defer srv.Close()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := NewLeaseClient(srv.URL, caPEM, token, "ns", "c", "c-1")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := a.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if len(puts) != 1 || puts[0].ResourceVersion != "7" || puts[0].Spec.RenewTime == nil || *puts[0].Spec.HolderIdentity != "c-1" {
		t.Fatalf("update %+v: want resourceVersion 7, a renewTime, holder c-1", puts)
	}
	status = http.StatusConflict
	if err := a.Renew(ctx); err == nil {
		t.Error("a conflicting update counted as a renewal")
	}
	mu.Lock()
	holder, status = "c-2", http.StatusOK
	mu.Unlock()
	if err := a.Renew(ctx); !errors.Is(err, ErrNotHolder) {
		t.Errorf("renewing c-2's lease: %v", err)
	}
	if len(puts) != 2 {
		t.Errorf("%d updates: a lease held by another instance was written", len(puts))
	}
	if err := os.WriteFile(token, []byte("wrong"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = a.Renew(ctx)
	if err == nil {
		t.Fatal("a forbidden request counted")
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("the error shows the token: %v", err)
	}
}
