package instance

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/pki"
)

// statusSource is what the server needs from the manager.
type statusSource interface {
	// Observe answers a status request that acknowledges answer ack.
	Observe(ack uint64) instanceapi.Status
	// Peek is the status without counting as contact (for watches and
	// the probes' streaming check).
	Peek() instanceapi.Status
	Ready() bool
	Submit(cmd instanceapi.Command) error
	StartBackup() (instanceapi.BackupRun, error)
	ListBackups(ctx context.Context) (instanceapi.BackupList, error)
	RequestReload(req instanceapi.ReloadRequest) error
	ConfigFiles() instanceapi.ConfigFiles
	// AuditEvidence gathers what `kubectl pgward audit` cannot see from
	// outside the pod.
	AuditEvidence(ctx context.Context) instanceapi.AuditEvidence
}

// newStatusServer builds the HTTPS status server. TLS 1.3 only. Client
// certificates are verified against the client CA when offered (a bad one
// fails the handshake); the probes need none, /pg/ needs the controller's.
func newStatusServer(addr string, files *tlsFiles, src statusSource) *http.Server {
	mux := http.NewServeMux()
	// A readiness or startup probe may ask for the streaming strategy in
	// its query string (probes.startup/readiness type streaming): the
	// instance passes only while it also passes instanceapi.Streaming's
	// check.
	streaming := func(w http.ResponseWriter, r *http.Request) bool {
		s, err := instanceapi.ParseStreaming(r.URL.Query())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return false
		}
		if s == nil {
			return true
		}
		st := src.Peek()
		if err := s.Check(&st); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return false
		}
		return true
	}
	mux.HandleFunc(instanceapi.PathHealthz, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc(instanceapi.PathReadyz, func(w http.ResponseWriter, r *http.Request) {
		if !src.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		if !streaming(w, r) {
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle(instanceapi.PathStatus, requireController(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		var ack uint64
		if v := r.URL.Query().Get(instanceapi.AckParam); v != "" {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				http.Error(w, "bad ack", http.StatusBadRequest)
				return
			}
			ack = n
		}
		st := src.Observe(ack)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})))
	mux.Handle(instanceapi.PathWatch, requireController(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		d := waitForChange(r.Context(), src.Peek, r.URL.Query().Get(instanceapi.SinceParam), instanceapi.WatchWait, watchTick)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(instanceapi.WatchAnswer{Digest: d})
	})))
	mux.Handle(instanceapi.PathCommand, requireController(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		var cmd instanceapi.Command
		dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cmd); err != nil {
			http.Error(w, "bad command: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := src.Submit(cmd); err != nil {
			code := http.StatusBadRequest
			switch {
			case errors.Is(err, errStaleEpoch):
				code = http.StatusConflict
			case errors.Is(err, errBackingOff):
				code = http.StatusServiceUnavailable
			}
			http.Error(w, err.Error(), code)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})))
	mux.Handle(instanceapi.PathReload, requireController(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		var req instanceapi.ReloadRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, 4<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			http.Error(w, "bad reload request: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := src.RequestReload(req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})))
	mux.Handle(instanceapi.PathConfig, requireController(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(src.ConfigFiles())
	})))
	mux.Handle(instanceapi.PathBackup, requireController(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost:
			run, err := src.StartBackup()
			if err != nil {
				http.Error(w, err.Error(), http.StatusConflict)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusAccepted)
			_ = json.NewEncoder(w).Encode(run)
		case http.MethodGet:
			// Under the server's write timeout: pgBackRest's info answers
			// in well under a second from a reachable store.
			ctx, cancel := context.WithTimeout(r.Context(), 8*time.Second)
			defer cancel()
			l, err := src.ListBackups(ctx)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(l)
		default:
			http.Error(w, "GET or POST", http.StatusMethodNotAllowed)
		}
	})))
	mux.Handle(instanceapi.PathAudit, requireController(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 8*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(src.AuditEvidence(ctx))
	})))
	return &http.Server{
		Addr:    addr,
		Handler: mux,
		// The configuration is rebuilt per connection from the files on
		// disk, so renewed certificates and CAs apply without a restart.
		TLSConfig: &tls.Config{
			MinVersion:         tls.VersionTLS13,
			GetConfigForClient: files.serverConfig,
		},
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
}

// watchTick is how often a watch looks at the status: what the manager
// knows changes at its own pace (the postmaster's exit is seen at once, the
// PostgreSQL sample every few hundred milliseconds), and a look is a few
// field reads.
const watchTick = 50 * time.Millisecond

// waitForChange returns the digest of peek's status as soon as it differs
// from since, or when wait has passed or ctx ended, whichever comes first.
func waitForChange(ctx context.Context, peek func() instanceapi.Status, since string, wait, tick time.Duration) string {
	st := peek()
	d := st.Digest()
	if d != since {
		return d
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return d
		case <-deadline.C:
			return d
		case <-t.C:
			st = peek()
			if d = st.Digest(); d != since {
				return d
			}
		}
	}
}

// requireController admits only a verified client certificate whose common
// name is the controller identity. The TLS layer has already checked the
// chain against the cluster's client CA; streaming_replica's certificate
// comes from the same CA and must not read the status.
func requireController(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			http.Error(w, "client certificate required", http.StatusUnauthorized)
			return
		}
		if cn := r.TLS.VerifiedChains[0][0].Subject.CommonName; cn != pki.ControllerCommonName {
			http.Error(w, "forbidden: certificate is not the controller's", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// serveHTTPS runs srv (the status server or the metrics exporter, named
// by what) until ctx ends.
func serveHTTPS(ctx context.Context, srv *http.Server, what string) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", srv.Addr)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("%s: %w", what, err)
	}
}
