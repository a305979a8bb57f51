package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// needRoot: the node side bind-mounts and the restore test chowns, as the
// driver does beside the kubelet. CI runs as root.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (bind mounts, chown): run as root, as CI does")
	}
}

// startDriver serves a driver over a real unix socket, as the sidecars and
// the kubelet reach it.
func startDriver(t *testing.T) (sock, root string) {
	t.Helper()
	dir := t.TempDir()
	root = filepath.Join(dir, "store")
	d, err := newDriver("hostpath.csi.pgward.io", root, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	d.register(srv)
	sock = filepath.Join(dir, "csi.sock")
	if err := serve(context.Background(), srv, sock); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return sock, root
}

// TestSanity runs the CSI community's conformance suite (csi-sanity)
// against the driver: identity, controller (volumes, snapshots, listing
// with pagination) and node (publish as a bind mount), with their error
// codes and idempotency.
func TestSanity(t *testing.T) {
	needRoot(t)
	sock, _ := startDriver(t)
	cfg := sanity.NewTestConfig()
	cfg.Address = sock
	work := t.TempDir()
	cfg.TargetPath = filepath.Join(work, "target")
	cfg.StagingPath = filepath.Join(work, "staging")
	sanity.Test(t, cfg)
}

// TestRestoreKeepsOwnerAndMode: what PostgreSQL needs from a volume made
// from a snapshot: the files' owner (uid 26), modes (0700 data directory,
// 0600 files), the volume root's group and setgid bit that the kubelet set
// for fsGroup, a symlink; and the snapshot is a copy, not a view: later
// writes to the source do not show.
func TestRestoreKeepsOwnerAndMode(t *testing.T) {
	needRoot(t)
	_, root := startDriver(t)
	d := &driver{name: "t", root: root, nodeID: "n"}
	ctx := context.Background()
	caps := []*csi.VolumeCapability{{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}}
	src, err := d.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "src", VolumeCapabilities: caps})
	if err != nil {
		t.Fatal(err)
	}
	vdir := d.volumeDir(src.GetVolume().GetVolumeId())
	// As the kubelet leaves it for fsGroup 26, and as initdb writes.
	must(t, os.Chown(vdir, 0, 26))
	must(t, os.Chmod(vdir, 0o770|os.ModeSetgid))
	must(t, os.Mkdir(filepath.Join(vdir, "pgdata"), 0o700))
	must(t, os.WriteFile(filepath.Join(vdir, "pgdata", "PG_VERSION"), []byte("15\n"), 0o600))
	must(t, os.Symlink("PG_VERSION", filepath.Join(vdir, "pgdata", "link")))
	for _, p := range []string{"pgdata", "pgdata/PG_VERSION", "pgdata/link"} {
		must(t, os.Lchown(filepath.Join(vdir, p), 26, 26))
	}

	snap, err := d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s1", SourceVolumeId: src.GetVolume().GetVolumeId()})
	if err != nil {
		t.Fatal(err)
	}
	if !snap.GetSnapshot().GetReadyToUse() || snap.GetSnapshot().GetSizeBytes() != 3 {
		t.Fatalf("snapshot: ready %v, size %d; want ready, 3 bytes", snap.GetSnapshot().GetReadyToUse(), snap.GetSnapshot().GetSizeBytes())
	}
	must(t, os.WriteFile(filepath.Join(vdir, "pgdata", "later"), nil, 0o600))

	restored, err := d.CreateVolume(ctx, &csi.CreateVolumeRequest{
		Name: "restored", VolumeCapabilities: caps,
		VolumeContentSource: &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
			Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: snap.GetSnapshot().GetSnapshotId()},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	rdir := d.volumeDir(restored.GetVolume().GetVolumeId())
	for _, c := range []struct {
		path     string
		uid, gid uint32
		perm     os.FileMode // permission bits; the type and setgid must match the source too
	}{
		{"", 0, 26, 0o770},
		{"pgdata", 26, 26, 0o700},
		{"pgdata/PG_VERSION", 26, 26, 0o600},
		{"pgdata/link", 26, 26, 0o777},
	} {
		want, err := os.Lstat(filepath.Join(vdir, c.path))
		if err != nil {
			t.Fatal(err)
		}
		info, err := os.Lstat(filepath.Join(rdir, c.path))
		if err != nil {
			t.Fatal(err)
		}
		st := info.Sys().(*syscall.Stat_t)
		if st.Uid != c.uid || st.Gid != c.gid || info.Mode().Perm() != c.perm || info.Mode() != want.Mode() {
			t.Errorf("%q restored as %d:%d %v; want %d:%d %v (source %v)", c.path, st.Uid, st.Gid, info.Mode(), c.uid, c.gid, c.perm, want.Mode())
		}
	}
	if info, err := os.Stat(rdir); err != nil || info.Mode()&os.ModeSetgid == 0 {
		t.Errorf("restored volume root lost its setgid bit (fsGroup): %v %v", info.Mode(), err)
	}
	if b, err := os.ReadFile(filepath.Join(rdir, "pgdata", "PG_VERSION")); err != nil || string(b) != "15\n" {
		t.Errorf("restored PG_VERSION = %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(rdir, "pgdata", "later")); !os.IsNotExist(err) {
		t.Errorf("a file written after the snapshot is in the restored volume (err %v)", err)
	}
}

// TestIDsNeverPaths: the class of requests naming a path through an ID
// (traversal, absolute paths, another kind's ID) finds nothing and touches
// nothing outside the store.
func TestIDsNeverPaths(t *testing.T) {
	_, root := startDriver(t)
	d := &driver{name: "t", root: root, nodeID: "n"}
	outside := filepath.Join(filepath.Dir(root), "victim")
	must(t, os.Mkdir(outside, 0o700))
	ctx := context.Background()
	for _, id := range []string{"../victim", "../../victim", outside, "vol-../../victim", makeID("snap", "x"), "vol-" + "ABCDEF0123456789ABCDEF0123456789", ""} {
		if _, err := d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil && status.Code(err) != codes.InvalidArgument {
			t.Errorf("DeleteVolume(%q): %v", id, err)
		}
		if _, err := d.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: id}); err != nil && status.Code(err) != codes.InvalidArgument {
			t.Errorf("DeleteSnapshot(%q): %v", id, err)
		}
		_, err := d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "n", SourceVolumeId: id})
		if c := status.Code(err); c != codes.NotFound && c != codes.InvalidArgument {
			t.Errorf("CreateSnapshot from %q: %v; want NotFound", id, err)
		}
	}
	if _, err := os.Stat(outside); err != nil {
		t.Fatalf("a directory outside the store was removed: %v", err)
	}
}

func TestPaginate(t *testing.T) {
	for _, c := range []struct {
		n       int
		token   string
		limit   int
		from    int
		to      int
		next    string
		wantErr bool
	}{
		{n: 5, from: 0, to: 5},
		{n: 5, limit: 2, from: 0, to: 2, next: "2"},
		{n: 5, token: "2", limit: 2, from: 2, to: 4, next: "4"},
		{n: 5, token: "4", limit: 2, from: 4, to: 5},
		{n: 5, token: "5", from: 5, to: 5},
		{n: 0, limit: 3, from: 0, to: 0},
		{n: 5, token: "6", wantErr: true},
		{n: 5, token: "-1", wantErr: true},
		{n: 5, token: "x", wantErr: true},
	} {
		page, next, err := paginate(c.n, c.token, c.limit)
		if (err != nil) != c.wantErr {
			t.Errorf("paginate(%d, %q, %d) error %v", c.n, c.token, c.limit, err)
			continue
		}
		if err == nil && (page != [2]int{c.from, c.to} || next != c.next) {
			t.Errorf("paginate(%d, %q, %d) = %v %q; want [%d %d] %q", c.n, c.token, c.limit, page, next, c.from, c.to, c.next)
		}
	}
}

func TestCapacity(t *testing.T) {
	for _, c := range []struct {
		req, lim, want int64
		wantErr        bool
	}{
		{want: defaultCapacity},
		{req: 10, want: 10},
		{lim: 10, want: 10},
		{lim: 2 * defaultCapacity, want: defaultCapacity},
		{req: 10, lim: 5, wantErr: true},
		{req: -1, wantErr: true},
	} {
		got, err := capacityFor(&csi.CapacityRange{RequiredBytes: c.req, LimitBytes: c.lim})
		if (err != nil) != c.wantErr || (err == nil && got != c.want) {
			t.Errorf("capacityFor(%d, %d) = %d, %v; want %d (error %v)", c.req, c.lim, got, err, c.want, c.wantErr)
		}
	}
}

// TestExpandVolume: a larger request is recorded and answered (no node
// step), a repeat is idempotent, a smaller one keeps the capacity, the
// record survives a restart of the driver (a new driver on the same store
// reports it through a repeated CreateVolume), and an unknown or malformed
// ID is NotFound, never a path.
func TestExpandVolume(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	d, err := newDriver("t", root, "n")
	must(t, err)
	ctx := context.Background()
	caps := []*csi.VolumeCapability{{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}}
	cr, err := d.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "v", VolumeCapabilities: caps,
		CapacityRange: &csi.CapacityRange{RequiredBytes: 1 << 20}})
	must(t, err)
	id := cr.GetVolume().GetVolumeId()
	for _, c := range []struct {
		req, want int64
	}{{2 << 20, 2 << 20}, {2 << 20, 2 << 20}, {1 << 20, 2 << 20}, {3 << 20, 3 << 20}} {
		r, err := d.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: id,
			CapacityRange: &csi.CapacityRange{RequiredBytes: c.req}, VolumeCapability: caps[0]})
		must(t, err)
		if r.GetCapacityBytes() != c.want || r.GetNodeExpansionRequired() {
			t.Errorf("expand to %d: capacity %d, node step %v; want %d, none", c.req, r.GetCapacityBytes(), r.GetNodeExpansionRequired(), c.want)
		}
	}
	d2, err := newDriver("t", root, "n")
	must(t, err)
	again, err := d2.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "v", VolumeCapabilities: caps,
		CapacityRange: &csi.CapacityRange{RequiredBytes: 3 << 20}})
	must(t, err)
	if got := again.GetVolume().GetCapacityBytes(); got != 3<<20 {
		t.Errorf("after a restart the volume reports %d; want %d", got, 3<<20)
	}
	for _, bad := range []string{"vol-" + strings.Repeat("0", 32), "../../etc", "vol-../x"} {
		_, err := d2.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: bad,
			CapacityRange: &csi.CapacityRange{RequiredBytes: 1}})
		if status.Code(err) != codes.NotFound {
			t.Errorf("expand %q: %v; want NotFound", bad, err)
		}
	}
	_, err = d2.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: id,
		CapacityRange: &csi.CapacityRange{RequiredBytes: 8 << 20, LimitBytes: 4 << 20}})
	if status.Code(err) != codes.OutOfRange {
		t.Errorf("expand above the limit: %v; want OutOfRange", err)
	}
}

func TestUnescapeMountPath(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", "/plain": "/plain", `/t\011x`: "/t\tx", `/end\`: `/end\`} {
		if got := unescapeMountPath(in); got != want {
			t.Errorf("unescapeMountPath(%q) = %q; want %q", in, got, want)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
