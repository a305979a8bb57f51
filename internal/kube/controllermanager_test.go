package kube_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// gcControllers are the only controllers the tests' kube-controller-manager
// runs: the garbage collector, which deletes the objects a deleted Cluster
// owns, and PVC protection, which removes the kubernetes.io/pvc-protection
// finalizer (added to every PVC by the API server's
// StorageObjectInUseProtection admission plugin) once no scheduled pod uses
// the claim. Without the latter a deleted PVC would stay, terminating,
// forever.
var gcControllers = []string{"garbage-collector-controller", "persistentvolumeclaim-protection-controller"}

// controllerManager is a kube-controller-manager process started by the
// tests against envtest's API server.
type controllerManager struct {
	cmd     *exec.Cmd
	cancel  context.CancelFunc
	dir     string
	log     *os.File
	done    chan struct{} // closed once the process has exited
	waitErr error         // how it exited, once done is closed
}

// startControllerManager starts kube-controller-manager from the assets
// directory, authenticated as a system:masters user of env's API server,
// with only gcControllers enabled, and waits until its /healthz answers.
func startControllerManager(assets string) (*controllerManager, error) {
	bin := filepath.Join(assets, "kube-controller-manager")
	dir, err := os.MkdirTemp("", "pgward-kcm-")
	if err != nil {
		return nil, err
	}
	m := &controllerManager{dir: dir}
	ok := false
	defer func() {
		if !ok {
			m.stop()
		}
	}()
	user, err := env.AddUser(envtest.User{Name: "pgward-test-kcm", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, fmt.Errorf("adding the controller manager's user: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return nil, err
	}
	kubeconfigPath := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		return nil, err
	}
	port, err := loopbackPort()
	if err != nil {
		return nil, err
	}
	if m.log, err = os.Create(filepath.Join(dir, "kube-controller-manager.log")); err != nil { // #nosec G304 -- our own temporary directory
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.cmd = exec.CommandContext(ctx, bin, // #nosec G204 -- the developer's own asset directory
		"--kubeconfig="+kubeconfigPath,
		"--controllers="+strings.Join(gcControllers, ","),
		"--leader-elect=false",
		"--use-service-account-credentials=false",
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(port),
		"--cert-dir="+filepath.Join(dir, "certs"),
		// Serve /healthz without asking the API server who is calling.
		"--authentication-skip-lookup",
		"--authorization-always-allow-paths=/healthz,/readyz,/livez",
		"--v=1",
	)
	m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
	// stop cancels ctx: SIGTERM, then SIGKILL if it has not exited 10 s later.
	m.cmd.Cancel = func() error { return m.cmd.Process.Signal(syscall.SIGTERM) }
	m.cmd.WaitDelay = 10 * time.Second
	// Best effort if the test binary dies without running the cleanup.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	m.done = make(chan struct{})
	go func() {
		m.waitErr = m.cmd.Wait()
		close(m.done)
	}()
	if err := m.waitHealthy(port, time.Minute); err != nil {
		return nil, fmt.Errorf("kube-controller-manager: %w\n%s", err, m.logTail())
	}
	ok = true
	return m, nil
}

func (m *controllerManager) waitHealthy(port int, timeout time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		// Its serving certificate is self-signed; this only asks whether it runs.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // #nosec G402 -- health probe of a local test process
	}}
	url := fmt.Sprintf("https://127.0.0.1:%d/healthz", port)
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-m.done:
			return fmt.Errorf("exited before becoming healthy: %w", m.waitErr)
		default:
		}
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req) // #nosec G704 -- a loopback address of our own
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", url, resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not healthy after %v: %w", timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stop terminates the process, waits for it and removes its directory.
func (m *controllerManager) stop() {
	if m.cancel != nil {
		m.cancel()
	}
	if m.done != nil {
		<-m.done
	}
	if m.log != nil {
		_ = m.log.Close()
	}
	if err := os.RemoveAll(m.dir); err != nil {
		fmt.Fprintln(os.Stderr, "removing", m.dir, err)
	}
}

// logTail is the end of the process's log, for error messages.
func (m *controllerManager) logTail() string {
	data, err := os.ReadFile(filepath.Join(m.dir, "kube-controller-manager.log")) // #nosec G304 -- our own temporary directory
	if err != nil {
		return err.Error()
	}
	if len(data) > 4000 {
		data = data[len(data)-4000:]
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	return string(data)
}

// loopbackPort is a TCP port free on 127.0.0.1 right now.
func loopbackPort() (int, error) {
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("not a TCP address")
	}
	return addr.Port, nil
}
