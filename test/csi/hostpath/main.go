// Command csi-hostpath is pgward's CSI TEST DRIVER for the one-node
// Kubernetes of hack/kube-up.sh (opt-in: PGWARD_KUBE_CSI=1). It is not for
// users and never ships: it exists because the upstream hostpath driver and
// node-driver-registrar cannot be fetched on these machines, and pgward's
// volume-snapshot backups need real CSI snapshots to be tested against.
//
// A volume is a directory under --root on the node; a snapshot is a full
// copy of one (cp -a: owner, mode, times and links kept) and is ready when
// CreateSnapshot returns; a volume created from a snapshot starts as a copy
// of it. Capacity is recorded, not enforced (directories have no size). The
// node side bind-mounts a volume's directory onto the kubelet's target path.
// The driver registers itself with the kubelet (plugin registration v1 on
// --registration-dir), which node-driver-registrar would otherwise do.
//
// It runs as root beside the kubelet (it mounts), talks only over unix
// sockets in directories of kube-up's 0700 state directory, and trusts only
// IDs it generated itself (anything else is NotFound), so no request can
// name a path outside --root.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

func main() {
	var (
		name     = flag.String("name", "hostpath.csi.pgward.io", "driver name (the StorageClass provisioner)")
		endpoint = flag.String("endpoint", "", "unix socket path to serve CSI on")
		root     = flag.String("root", "", "directory holding the volumes and snapshots")
		nodeID   = flag.String("node-id", "", "this node's name, as the kubelet knows it")
		regDir   = flag.String("registration-dir", "", "the kubelet's plugins_registry directory; empty: do not register")
	)
	flag.Parse()
	if *endpoint == "" || *root == "" || *nodeID == "" {
		log.Fatal("csi-hostpath: --endpoint, --root and --node-id are required")
	}
	d, err := newDriver(*name, *root, *nodeID)
	if err != nil {
		log.Fatalf("csi-hostpath: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	srv := grpc.NewServer(grpc.UnaryInterceptor(logErrors))
	d.register(srv)
	if err := serve(ctx, srv, *endpoint); err != nil {
		log.Fatalf("csi-hostpath: %v", err)
	}
	if *regDir != "" {
		reg := grpc.NewServer()
		registerapi.RegisterRegistrationServer(reg, &registration{name: *name, endpoint: *endpoint})
		if err := serve(ctx, reg, filepath.Join(*regDir, *name+"-reg.sock")); err != nil {
			log.Fatalf("csi-hostpath: %v", err)
		}
		defer reg.Stop()
	}
	log.Printf("csi-hostpath: %s serving on %s, volumes in %s", *name, *endpoint, *root)
	<-ctx.Done()
	srv.GracefulStop()
}

// serve listens on a unix socket only root can use (the kubelet and the
// sidecars run as root) and serves srv on it in the background.
func serve(ctx context.Context, srv *grpc.Server, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("old socket %s: %w", path, err)
	}
	old := syscall.Umask(0o077)
	l, err := (&net.ListenConfig{}).Listen(ctx, "unix", path)
	syscall.Umask(old)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", path, err)
	}
	go func() {
		if err := srv.Serve(l); err != nil {
			log.Printf("csi-hostpath: serving %s: %v", path, err)
		}
	}()
	return nil
}

// logErrors logs every failed call: the sidecars retry quietly, so the
// driver's log is where a failing test is explained.
func logErrors(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	if err != nil {
		log.Printf("csi-hostpath: %s: %v", info.FullMethod, err)
	}
	return resp, err
}

// registration answers the kubelet's plugin watcher, which finds the
// socket in its plugins_registry directory: the job of
// node-driver-registrar, which is not on the module proxy.
type registration struct {
	registerapi.UnimplementedRegistrationServer
	name, endpoint string
}

func (r *registration) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{
		Type:              registerapi.CSIPlugin,
		Name:              r.name,
		Endpoint:          r.endpoint,
		SupportedVersions: []string{"1.0.0"},
	}, nil
}

func (r *registration) NotifyRegistrationStatus(_ context.Context, s *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if s.GetPluginRegistered() {
		log.Printf("csi-hostpath: registered with the kubelet")
	} else {
		log.Printf("csi-hostpath: the kubelet refused the registration: %s", s.GetError())
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}

var _ csi.IdentityServer = (*driver)(nil)
