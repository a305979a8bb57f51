package instance

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/pki"
)

// fakeSource records what reaches the manager through the status server.
type fakeSource struct {
	reloads []instanceapi.ReloadRequest
	configs int
}

func (f *fakeSource) Observe(uint64) instanceapi.Status { return instanceapi.Status{} }
func (f *fakeSource) Peek() instanceapi.Status          { return instanceapi.Status{} }
func (f *fakeSource) Ready() bool                       { return true }
func (f *fakeSource) Submit(instanceapi.Command) error  { return nil }
func (f *fakeSource) StartBackup() (instanceapi.BackupRun, error) {
	return instanceapi.BackupRun{}, nil
}
func (f *fakeSource) ListBackups(context.Context) (instanceapi.BackupList, error) {
	return instanceapi.BackupList{}, nil
}
func (f *fakeSource) RequestReload(req instanceapi.ReloadRequest) error {
	if err := checkReloadRequest(req); err != nil {
		return err
	}
	f.reloads = append(f.reloads, req)
	return nil
}
func (f *fakeSource) AuditEvidence(context.Context) instanceapi.AuditEvidence {
	return instanceapi.AuditEvidence{}
}
func (f *fakeSource) ConfigFiles() instanceapi.ConfigFiles {
	f.configs++
	return instanceapi.ConfigFiles{Files: map[string]string{"postgresql.conf": "x = 1\n"}}
}

// TestReloadAndConfigNeedTheController: the two new paths of the status
// port are the controller's only, as /pg/command is: no certificate 401,
// another certificate of the cluster's client CA (streaming_replica's) 403,
// and nothing reaches the manager; the controller's is served, and a bad
// request is refused before the manager sees it.
func TestReloadAndConfigNeedTheController(t *testing.T) {
	src := &fakeSource{}
	h := newStatusServer("127.0.0.1:0", nil, src).Handler
	withCN := func(cn string) *tls.ConnectionState {
		return &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{Subject: pkix.Name{CommonName: cn}}}}}
	}
	for _, tc := range []struct {
		name, method, path, body string
		tls                      *tls.ConnectionState
		want                     int
	}{
		{"reload, no certificate", http.MethodPost, instanceapi.PathReload, `{"id":"a"}`, nil, http.StatusUnauthorized},
		{"reload, streaming_replica", http.MethodPost, instanceapi.PathReload, `{"id":"a"}`, withCN(pki.ReplicationCommonName), http.StatusForbidden},
		{"config, no certificate", http.MethodGet, instanceapi.PathConfig, "", nil, http.StatusUnauthorized},
		{"config, streaming_replica", http.MethodGet, instanceapi.PathConfig, "", withCN(pki.ReplicationCommonName), http.StatusForbidden},
		{"reload, bad id", http.MethodPost, instanceapi.PathReload, `{"id":"a b"}`, withCN(pki.ControllerCommonName), http.StatusBadRequest},
		{"reload, unknown field", http.MethodPost, instanceapi.PathReload, `{"id":"a","run":"x"}`, withCN(pki.ControllerCommonName), http.StatusBadRequest},
		{"reload, GET", http.MethodGet, instanceapi.PathReload, "", withCN(pki.ControllerCommonName), http.StatusMethodNotAllowed},
		{"reload, controller", http.MethodPost, instanceapi.PathReload, `{"id":"r1"}`, withCN(pki.ControllerCommonName), http.StatusAccepted},
		{"config, controller", http.MethodGet, instanceapi.PathConfig, "", withCN(pki.ControllerCommonName), http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequestWithContext(context.Background(), tc.method, tc.path, strings.NewReader(tc.body))
			r.TLS = tc.tls
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Fatalf("HTTP %d %q, want %d", w.Code, w.Body.String(), tc.want)
			}
			if tc.path == instanceapi.PathConfig && tc.want == http.StatusOK {
				var f instanceapi.ConfigFiles
				if err := json.Unmarshal(w.Body.Bytes(), &f); err != nil || f.Files["postgresql.conf"] != "x = 1\n" {
					t.Errorf("config answer %q: %v", w.Body.String(), err)
				}
			}
		})
	}
	if len(src.reloads) != 1 || src.reloads[0].ID != "r1" || src.configs != 1 {
		t.Errorf("reached the manager: %+v reloads, %d config reads; want only the controller's", src.reloads, src.configs)
	}
}
