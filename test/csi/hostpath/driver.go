package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const defaultCapacity = 1 << 30

// driver serves the three CSI services from one store on the node's disk:
//
//	<root>/volumes/<id>        a volume's directory
//	<root>/volumes/<id>.json   its record, written once the directory is complete
//	<root>/snapshots/<id>      a snapshot: a copy of a volume's directory
//	<root>/snapshots/<id>.json its record
//
// A directory without a record is a half-done create (the driver died
// mid-copy): it does not exist for any call, and the next create of the
// same name starts it over.
type driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer
	csi.UnimplementedNodeServer
	csi.UnimplementedGroupControllerServer

	name, root, nodeID string
	// One lock for every call: a test driver, where simple beats fast.
	mu sync.Mutex
}

// volume and snapshot are the records kept beside the directories.
type volume struct {
	Name     string `json:"name"`
	Capacity int64  `json:"capacity"`
	// FromSnapshot is the snapshot the volume was restored from, if any:
	// CreateVolume with the same name must name the same source.
	FromSnapshot string `json:"fromSnapshot,omitempty"`
}

type snapshot struct {
	Name     string    `json:"name"`
	SourceID string    `json:"sourceVolumeId"`
	Created  time.Time `json:"created"`
	Size     int64     `json:"size"`
}

func newDriver(name, root, nodeID string) (*driver, error) {
	for _, dir := range []string{"volumes", "snapshots"} {
		// Only root's: pods reach a volume through its bind mount, never
		// through the store's path.
		if err := os.MkdirAll(filepath.Join(root, dir), 0o700); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	return &driver{name: name, root: root, nodeID: nodeID}, nil
}

func (d *driver) register(s *grpc.Server) {
	csi.RegisterIdentityServer(s, d)
	csi.RegisterControllerServer(s, d)
	csi.RegisterNodeServer(s, d)
	csi.RegisterGroupControllerServer(s, d)
}

// IDs are derived from the CO's names, so a repeated create finds its first
// result; only IDs of this exact shape are ever turned into paths.
var idPattern = regexp.MustCompile(`^(vol|snap)-[0-9a-f]{32}$`)

func makeID(kind, name string) string {
	sum := sha256.Sum256([]byte(name))
	return kind + "-" + hex.EncodeToString(sum[:16])
}

// validID: an ID this driver could have made for that kind.
func validID(kind, id string) bool {
	return idPattern.MatchString(id) && strings.HasPrefix(id, kind+"-")
}

func (d *driver) volumeDir(id string) string   { return filepath.Join(d.root, "volumes", id) }
func (d *driver) snapshotDir(id string) string { return filepath.Join(d.root, "snapshots", id) }

// readRecord loads <dir>.json into v; false when there is none (no such
// object, or one whose create never finished).
func readRecord(dir string, v any) (bool, error) {
	b, err := os.ReadFile(filepath.Clean(dir + ".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, status.Errorf(codes.Internal, "read %s.json: %v", dir, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, status.Errorf(codes.Internal, "parse %s.json: %v", dir, err)
	}
	return true, nil
}

// writeRecord writes <dir>.json atomically: the object exists from then on.
func writeRecord(dir string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return status.Errorf(codes.Internal, "record: %v", err)
	}
	tmp := dir + ".json.tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return status.Errorf(codes.Internal, "record: %v", err)
	}
	if err := os.Rename(tmp, dir+".json"); err != nil {
		return status.Errorf(codes.Internal, "record: %v", err)
	}
	return nil
}

// copyTree makes dst a copy of src, the top directory included: cp -a keeps
// owner, mode, times, symlinks and hard links, which PostgreSQL's data
// directory needs (0700, uid 26) and a restored volume must not lose.
func copyTree(ctx context.Context, src, dst string) error {
	if err := os.RemoveAll(dst); err != nil {
		return fmt.Errorf("remove leftover %s: %w", dst, err)
	}
	out, err := exec.CommandContext(ctx, "cp", "-a", "--", src, dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cp -a %s %s: %w: %s", src, dst, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// treeSize is the bytes of the regular files under dir.
func treeSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() {
			info, err := e.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	return n, err
}

// --- Identity

func (d *driver) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: d.name, VendorVersion: "0.1.0"}, nil
}

func (d *driver) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	return &csi.GetPluginCapabilitiesResponse{Capabilities: []*csi.PluginCapability{{
		Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{
			Type: csi.PluginCapability_Service_CONTROLLER_SERVICE,
		}},
	}, {
		// ONLINE: a volume grows while a pod has it mounted, which is what
		// CloudNativePG's resizeInUseVolumes asks of a StorageClass.
		Type: &csi.PluginCapability_VolumeExpansion_{VolumeExpansion: &csi.PluginCapability_VolumeExpansion{
			Type: csi.PluginCapability_VolumeExpansion_ONLINE,
		}},
	}}}, nil
}

func (d *driver) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{}, nil
}

// --- Controller

func (d *driver) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	var caps []*csi.ControllerServiceCapability
	for _, c := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_LIST_SNAPSHOTS,
		csi.ControllerServiceCapability_RPC_EXPAND_VOLUME,
	} {
		caps = append(caps, &csi.ControllerServiceCapability{
			Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: c}},
		})
	}
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: caps}, nil
}

// GroupControllerGetCapabilities says: no group snapshots. Served so that
// csi-snapshotter asks and gets an answer instead of logging an error.
func (d *driver) GroupControllerGetCapabilities(context.Context, *csi.GroupControllerGetCapabilitiesRequest) (*csi.GroupControllerGetCapabilitiesResponse, error) {
	return &csi.GroupControllerGetCapabilitiesResponse{}, nil
}

// checkCapabilities: mounted (not block) volumes used from one node, which
// is all a directory bind-mounted on one node can honestly offer.
func checkCapabilities(caps []*csi.VolumeCapability) error {
	if len(caps) == 0 {
		return errors.New("volume capabilities are required")
	}
	for _, c := range caps {
		if c.GetMount() == nil {
			return errors.New("only mounted volumes are supported, not block")
		}
		switch c.GetAccessMode().GetMode() {
		case csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER,
			csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY,
			csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER,
			csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER:
		default:
			return fmt.Errorf("access mode %v is not supported: volumes live on one node", c.GetAccessMode().GetMode())
		}
	}
	return nil
}

// capacityFor chooses a new volume's recorded capacity from the request.
func capacityFor(r *csi.CapacityRange) (int64, error) {
	req, lim := r.GetRequiredBytes(), r.GetLimitBytes()
	if req < 0 || lim < 0 || (lim > 0 && req > lim) {
		return 0, fmt.Errorf("capacity range %d..%d is not valid", req, lim)
	}
	switch {
	case req > 0:
		return req, nil
	case lim > 0 && lim < defaultCapacity:
		return lim, nil
	}
	return defaultCapacity, nil
}

// fits: an existing volume satisfies a repeated request's range.
func fits(capacity int64, r *csi.CapacityRange) bool {
	return capacity >= r.GetRequiredBytes() && (r.GetLimitBytes() == 0 || capacity <= r.GetLimitBytes())
}

func (d *driver) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "name is required")
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	capacity, err := capacityFor(req.GetCapacityRange())
	if err != nil {
		return nil, status.Error(codes.OutOfRange, err.Error())
	}
	src := req.GetVolumeContentSource()
	if src != nil && src.GetSnapshot() == nil {
		return nil, status.Error(codes.InvalidArgument, "only snapshots can be a volume's content source (no cloning)")
	}
	fromSnap := src.GetSnapshot().GetSnapshotId()

	d.mu.Lock()
	defer d.mu.Unlock()
	id := makeID("vol", req.GetName())
	dir := d.volumeDir(id)
	var v volume
	if ok, err := readRecord(dir, &v); err != nil {
		return nil, err
	} else if ok {
		if !fits(v.Capacity, req.GetCapacityRange()) || v.FromSnapshot != fromSnap {
			return nil, status.Errorf(codes.AlreadyExists, "volume %q exists with another size or source", req.GetName())
		}
		return d.volumeResponse(id, v), nil
	}

	v = volume{Name: req.GetName(), Capacity: capacity, FromSnapshot: fromSnap}
	if fromSnap != "" {
		var s snapshot
		ok := false
		if validID("snap", fromSnap) {
			if ok, err = readRecord(d.snapshotDir(fromSnap), &s); err != nil {
				return nil, err
			}
		}
		if !ok {
			return nil, status.Errorf(codes.NotFound, "snapshot %q does not exist", fromSnap)
		}
		if err := copyTree(ctx, d.snapshotDir(fromSnap), dir); err != nil {
			return nil, status.Errorf(codes.Internal, "restore snapshot %s: %v", fromSnap, err)
		}
	} else {
		if err := os.RemoveAll(dir); err != nil {
			return nil, status.Errorf(codes.Internal, "remove leftover: %v", err)
		}
		// root's, not world-readable: the kubelet gives the pod's fsGroup
		// access (CSIDriver fsGroupPolicy File), as it does for local volumes.
		if err := os.Mkdir(dir, 0o750); err != nil {
			return nil, status.Errorf(codes.Internal, "create volume directory: %v", err)
		}
	}
	if err := writeRecord(dir, v); err != nil {
		return nil, err
	}
	return d.volumeResponse(id, v), nil
}

func (d *driver) volumeResponse(id string, v volume) *csi.CreateVolumeResponse {
	out := &csi.Volume{VolumeId: id, CapacityBytes: v.Capacity}
	if v.FromSnapshot != "" {
		out.ContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
			Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: v.FromSnapshot},
		}}
	}
	return &csi.CreateVolumeResponse{Volume: out}
}

func (d *driver) DeleteVolume(_ context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	}
	if !validID("vol", req.GetVolumeId()) {
		return &csi.DeleteVolumeResponse{}, nil // never ours: already gone
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	dir := d.volumeDir(req.GetVolumeId())
	// The record first: a half-deleted volume no longer exists.
	if err := os.Remove(dir + ".json"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, status.Errorf(codes.Internal, "delete volume: %v", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, status.Errorf(codes.Internal, "delete volume: %v", err)
	}
	return &csi.DeleteVolumeResponse{}, nil
}

// ControllerExpandVolume records a larger capacity for a volume. A volume
// is a directory on the node's filesystem, so there is nothing to grow on
// disk and no node step: the answer says node expansion is not required,
// and the kubelet never calls NodeExpandVolume (the node service does not
// offer it). The recorded capacity is what the PV and the PVC's status then
// show. Shrinking is not a thing in CSI: a smaller request keeps the
// current capacity.
func (d *driver) ControllerExpandVolume(_ context.Context, req *csi.ControllerExpandVolumeRequest) (*csi.ControllerExpandVolumeResponse, error) {
	id, r := req.GetVolumeId(), req.GetCapacityRange()
	switch {
	case id == "":
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	case r == nil:
		return nil, status.Error(codes.InvalidArgument, "capacity range is required")
	}
	if req.GetVolumeCapability() != nil {
		if err := checkCapabilities([]*csi.VolumeCapability{req.GetVolumeCapability()}); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
	}
	want, err := expandedCapacity(r)
	if err != nil {
		return nil, status.Error(codes.OutOfRange, err.Error())
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var v volume
	ok := false
	if validID("vol", id) {
		if ok, err = readRecord(d.volumeDir(id), &v); err != nil {
			return nil, err
		}
	}
	if !ok {
		return nil, status.Errorf(codes.NotFound, "volume %q does not exist", id)
	}
	if want > v.Capacity {
		if r.GetLimitBytes() > 0 && want > r.GetLimitBytes() {
			return nil, status.Errorf(codes.OutOfRange, "capacity %d is above the limit %d", want, r.GetLimitBytes())
		}
		v.Capacity = want
		if err := writeRecord(d.volumeDir(id), v); err != nil {
			return nil, err
		}
	}
	return &csi.ControllerExpandVolumeResponse{CapacityBytes: v.Capacity, NodeExpansionRequired: false}, nil
}

// expandedCapacity: the capacity an expand request asks for (its required
// bytes, or its limit when only that is set).
func expandedCapacity(r *csi.CapacityRange) (int64, error) {
	req, lim := r.GetRequiredBytes(), r.GetLimitBytes()
	if req < 0 || lim < 0 || (lim > 0 && req > lim) || (req == 0 && lim == 0) {
		return 0, fmt.Errorf("capacity range %d..%d is not valid", req, lim)
	}
	if req == 0 {
		return lim, nil
	}
	return req, nil
}

// volumeExists: a complete volume with that ID.
func (d *driver) volumeExists(id string) (bool, error) {
	if !validID("vol", id) {
		return false, nil
	}
	var v volume
	return readRecord(d.volumeDir(id), &v)
}

func (d *driver) ValidateVolumeCapabilities(_ context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "volume capabilities are required")
	}
	d.mu.Lock()
	ok, err := d.volumeExists(req.GetVolumeId())
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, status.Errorf(codes.NotFound, "volume %q does not exist", req.GetVolumeId())
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: err.Error()}, nil
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext:      req.GetVolumeContext(),
		VolumeCapabilities: req.GetVolumeCapabilities(),
		Parameters:         req.GetParameters(),
	}}, nil
}

func (d *driver) CreateSnapshot(ctx context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "name is required")
	}
	if req.GetSourceVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "source volume ID is required")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	id := makeID("snap", req.GetName())
	dir := d.snapshotDir(id)
	var s snapshot
	if ok, err := readRecord(dir, &s); err != nil {
		return nil, err
	} else if ok {
		if s.SourceID != req.GetSourceVolumeId() {
			return nil, status.Errorf(codes.AlreadyExists, "snapshot %q exists for another volume", req.GetName())
		}
		return &csi.CreateSnapshotResponse{Snapshot: snapshotInfo(id, s)}, nil
	}
	if ok, err := d.volumeExists(req.GetSourceVolumeId()); err != nil {
		return nil, err
	} else if !ok {
		return nil, status.Errorf(codes.NotFound, "volume %q does not exist", req.GetSourceVolumeId())
	}
	// Cut while the volume may be in use, as a storage array's snapshot
	// is: PostgreSQL recovers from such a copy as from a crash, and
	// CloudNativePG's online snapshots bracket it with backup start/stop.
	if err := copyTree(ctx, d.volumeDir(req.GetSourceVolumeId()), dir); err != nil {
		return nil, status.Errorf(codes.Internal, "copy volume: %v", err)
	}
	size, err := treeSize(dir)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "snapshot size: %v", err)
	}
	s = snapshot{Name: req.GetName(), SourceID: req.GetSourceVolumeId(), Created: time.Now().UTC(), Size: size}
	if err := writeRecord(dir, s); err != nil {
		return nil, err
	}
	return &csi.CreateSnapshotResponse{Snapshot: snapshotInfo(id, s)}, nil
}

func snapshotInfo(id string, s snapshot) *csi.Snapshot {
	return &csi.Snapshot{
		SnapshotId:     id,
		SourceVolumeId: s.SourceID,
		CreationTime:   timestamppb.New(s.Created),
		SizeBytes:      s.Size,
		ReadyToUse:     true, // the copy is complete when CreateSnapshot returns
	}
}

func (d *driver) DeleteSnapshot(_ context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	if req.GetSnapshotId() == "" {
		return nil, status.Error(codes.InvalidArgument, "snapshot ID is required")
	}
	if !validID("snap", req.GetSnapshotId()) {
		return &csi.DeleteSnapshotResponse{}, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	dir := d.snapshotDir(req.GetSnapshotId())
	if err := os.Remove(dir + ".json"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, status.Errorf(codes.Internal, "delete snapshot: %v", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, status.Errorf(codes.Internal, "delete snapshot: %v", err)
	}
	return &csi.DeleteSnapshotResponse{}, nil
}

func (d *driver) ListSnapshots(_ context.Context, req *csi.ListSnapshotsRequest) (*csi.ListSnapshotsResponse, error) {
	if req.GetMaxEntries() < 0 {
		return nil, status.Error(codes.InvalidArgument, "max_entries must not be negative")
	}
	d.mu.Lock()
	all, err := d.snapshots()
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var match []*csi.Snapshot
	for _, s := range all {
		if (req.GetSnapshotId() == "" || s.GetSnapshotId() == req.GetSnapshotId()) &&
			(req.GetSourceVolumeId() == "" || s.GetSourceVolumeId() == req.GetSourceVolumeId()) {
			match = append(match, s)
		}
	}
	page, next, err := paginate(len(match), req.GetStartingToken(), int(req.GetMaxEntries()))
	if err != nil {
		return nil, status.Error(codes.Aborted, err.Error())
	}
	resp := &csi.ListSnapshotsResponse{NextToken: next}
	for _, s := range match[page[0]:page[1]] {
		resp.Entries = append(resp.Entries, &csi.ListSnapshotsResponse_Entry{Snapshot: s})
	}
	return resp, nil
}

// snapshots lists every complete snapshot, by ID.
func (d *driver) snapshots() ([]*csi.Snapshot, error) {
	entries, err := os.ReadDir(filepath.Join(d.root, "snapshots"))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list snapshots: %v", err)
	}
	var out []*csi.Snapshot
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !validID("snap", id) {
			continue
		}
		var s snapshot
		if ok, err := readRecord(d.snapshotDir(id), &s); err != nil {
			return nil, err
		} else if ok {
			out = append(out, snapshotInfo(id, s))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetSnapshotId() < out[j].GetSnapshotId() })
	return out, nil
}

// paginate picks the [from, to) slice of n entries for a token (the index
// to start at, as the previous page's next token said) and a page size
// (0: all), and the next page's token ("" at the end).
func paginate(n int, token string, limit int) ([2]int, string, error) {
	from := 0
	if token != "" {
		i, err := strconv.Atoi(token)
		if err != nil || i < 0 || i > n {
			return [2]int{}, "", fmt.Errorf("starting token %q is not valid", token)
		}
		from = i
	}
	to := n
	if limit > 0 && from+limit < n {
		to = from + limit
	}
	next := ""
	if to < n {
		next = strconv.Itoa(to)
	}
	return [2]int{from, to}, next, nil
}

// --- Node

func (d *driver) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: d.nodeID}, nil
}

func (d *driver) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	// No staging, no stats: publish is a bind mount.
	return &csi.NodeGetCapabilitiesResponse{}, nil
}

func (d *driver) NodePublishVolume(_ context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	id, target := req.GetVolumeId(), req.GetTargetPath()
	switch {
	case id == "":
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	case target == "":
		return nil, status.Error(codes.InvalidArgument, "target path is required")
	case !filepath.IsAbs(target) || filepath.Clean(target) != strings.TrimSuffix(target, "/"):
		return nil, status.Errorf(codes.InvalidArgument, "target path %q must be absolute and clean", target)
	case req.GetVolumeCapability() == nil:
		return nil, status.Error(codes.InvalidArgument, "volume capability is required")
	}
	if err := checkCapabilities([]*csi.VolumeCapability{req.GetVolumeCapability()}); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if ok, err := d.volumeExists(id); err != nil {
		return nil, err
	} else if !ok {
		return nil, status.Errorf(codes.NotFound, "volume %q does not exist", id)
	}
	mounted, err := isMountPoint(target)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	if mounted {
		return &csi.NodePublishVolumeResponse{}, nil
	}
	if err := os.MkdirAll(target, 0o750); err != nil {
		return nil, status.Errorf(codes.Internal, "create target: %v", err)
	}
	if err := syscall.Mount(d.volumeDir(id), target, "", syscall.MS_BIND, ""); err != nil {
		return nil, status.Errorf(codes.Internal, "bind mount %s: %v", target, err)
	}
	if req.GetReadonly() {
		flags := uintptr(syscall.MS_BIND | syscall.MS_REMOUNT | syscall.MS_RDONLY)
		if err := syscall.Mount("", target, "", flags, ""); err != nil {
			_ = syscall.Unmount(target, 0)
			return nil, status.Errorf(codes.Internal, "make %s read-only: %v", target, err)
		}
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

func (d *driver) NodeUnpublishVolume(_ context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	}
	target := req.GetTargetPath()
	if target == "" {
		return nil, status.Error(codes.InvalidArgument, "target path is required")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	mounted, err := isMountPoint(target)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	if mounted {
		if err := syscall.Unmount(target, 0); err != nil {
			return nil, status.Errorf(codes.Internal, "unmount %s: %v", target, err)
		}
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, status.Errorf(codes.Internal, "remove target: %v", err)
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// isMountPoint: path is the mount point of a mount in this mount namespace
// (a bind mount of a directory on the same file system has the same device,
// so comparing st_dev with the parent's would not see it).
func isMountPoint(path string) (bool, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, fmt.Errorf("read mountinfo: %w", err)
	}
	want := filepath.Clean(path)
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMountPath(f[4]) == want {
			return true, nil
		}
	}
	return false, nil
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space...).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
