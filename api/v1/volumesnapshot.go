package v1

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Volume snapshots (CSI VolumeSnapshots of an instance's volumes) are a
// Kubernetes-only backup method: the local runtime has no volumes to
// snapshot, and `pgward local up` refuses these fields naming them.
const (
	BackupMethodVolumeSnapshot = "volumeSnapshot"
	// Backup targets, CloudNativePG's words.
	BackupTargetPrimary       = "primary"
	BackupTargetPreferStandby = "prefer-standby"
	// VolumeSnapshotGroup and VolumeSnapshotKind are the only kind a
	// recovery may name: external-snapshotter's.
	VolumeSnapshotGroup = "snapshot.storage.k8s.io"
	VolumeSnapshotKind  = "VolumeSnapshot"
	// Owners a volumeSnapshot backup can give its VolumeSnapshots.
	SnapshotOwnerNone    = "none"
	SnapshotOwnerCluster = "cluster"
	SnapshotOwnerBackup  = "backup"
	// Snapshot element types (BackupSnapshotElementStatus.Type).
	SnapshotTypePGData     = "PG_DATA"
	SnapshotTypePGWAL      = "PG_WAL"
	SnapshotTypeTablespace = "PG_TABLESPACE"
)

// VolumeSnapshotConfiguration is CloudNativePG's spec.backup.volumeSnapshot.
// pgward takes cold snapshots only: online (pg_backup_start/stop) and its
// onlineConfiguration are refused, where CloudNativePG defaults to online.
type VolumeSnapshotConfiguration struct {
	// Labels are added to every VolumeSnapshot taken.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations are added to every VolumeSnapshot taken.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
	// ClassName is the VolumeSnapshotClass of the snapshots (empty: the
	// cluster's default class).
	// +optional
	ClassName string `json:"className,omitempty"`
	// WalClassName is the class of the WAL volume's snapshot (default
	// ClassName).
	// +optional
	WalClassName string `json:"walClassName,omitempty"`
	// TablespaceClassName is the class of each tablespace volume's
	// snapshot, by tablespace (default ClassName).
	// +optional
	TablespaceClassName map[string]string `json:"tablespaceClassName,omitempty"`
	// SnapshotOwnerReference is what owns the snapshots: none (they stay,
	// the default), cluster or backup (deleted with it).
	// +optional
	// +kubebuilder:validation:Enum=none;cluster;backup
	SnapshotOwnerReference string `json:"snapshotOwnerReference,omitempty"`
	// Online must be false or left out: pgward stops the instance cleanly
	// before it snapshots its volumes (a cold backup).
	// +optional
	Online *bool `json:"online,omitempty"`
}

// TypedLocalObjectReference names an object of the namespace by group,
// kind and name (Kubernetes' type, CloudNativePG's field names).
type TypedLocalObjectReference struct {
	// APIGroup must be snapshot.storage.k8s.io.
	// +optional
	APIGroup *string `json:"apiGroup,omitempty"`
	// Kind must be VolumeSnapshot.
	Kind string `json:"kind"`
	// Name is the VolumeSnapshot's name.
	Name string `json:"name"`
}

// DataSource is bootstrap.recovery.volumeSnapshots: the snapshots the first
// instance's volumes are created from.
type DataSource struct {
	// Storage is the snapshot of the data volume (PGDATA).
	Storage TypedLocalObjectReference `json:"storage"`
	// WalStorage is the snapshot of the WAL volume (with spec.walStorage).
	// +optional
	WalStorage *TypedLocalObjectReference `json:"walStorage,omitempty"`
	// TablespaceStorage is the snapshot of each tablespace's volume, by
	// tablespace name (one for every entry of spec.tablespaces).
	// +optional
	TablespaceStorage map[string]TypedLocalObjectReference `json:"tablespaceStorage,omitempty"`
}

// BackupSnapshotStatus lists a volumeSnapshot backup's snapshots.
type BackupSnapshotStatus struct {
	// +optional
	Elements []BackupSnapshotElementStatus `json:"elements,omitempty"`
}

// BackupSnapshotElementStatus is one VolumeSnapshot of a backup.
type BackupSnapshotElementStatus struct {
	// Name is the VolumeSnapshot's name.
	Name string `json:"name"`
	// Type is PG_DATA, PG_WAL or PG_TABLESPACE.
	Type string `json:"type"`
	// TablespaceName is the tablespace of a PG_TABLESPACE snapshot.
	// +optional
	TablespaceName string `json:"tablespaceName,omitempty"`
}

// SnapshotDataSource returns bootstrap.recovery.volumeSnapshots, nil when
// the cluster is not recovered from snapshots.
func (s *ClusterSpec) SnapshotDataSource() *DataSource {
	if s.Bootstrap == nil || s.Bootstrap.Recovery == nil {
		return nil
	}
	return s.Bootstrap.Recovery.VolumeSnapshots
}

// KubernetesOnlySnapshotFields names the volume snapshot fields set in s:
// they mean something only where there are volumes to snapshot.
func (s *ClusterSpec) KubernetesOnlySnapshotFields() []string {
	var out []string
	if s.Backup != nil && s.Backup.VolumeSnapshot != nil {
		out = append(out, "spec.backup.volumeSnapshot")
	}
	if s.SnapshotDataSource() != nil {
		out = append(out, "spec.bootstrap.recovery.volumeSnapshots")
	}
	return out
}

// validateSnapshotMetadata checks user labels or annotations before they reach an
// object: keys as Kubernetes checks them, and no key in pgward's or
// CloudNativePG's prefixes, which carry pgward's own bookkeeping.
func validateSnapshotMetadata(m map[string]string, p *field.Path, labels bool) field.ErrorList {
	var errs field.ErrorList
	for _, k := range slices.Sorted(maps.Keys(m)) {
		for _, msg := range validation.IsQualifiedName(k) {
			errs = append(errs, field.Invalid(p.Key(k), k, msg))
		}
		if isReservedKey(k) {
			errs = append(errs, field.Forbidden(p.Key(k), "keys under pgward.io/ and cnpg.io/ are pgward's own"))
		}
		if labels {
			for _, msg := range validation.IsValidLabelValue(m[k]) {
				errs = append(errs, field.Invalid(p.Key(k), truncate(m[k]), msg))
			}
		} else if len(m[k]) > 4096 {
			errs = append(errs, field.TooLong(p.Key(k), "", 4096))
		}
	}
	return errs
}

func isReservedKey(k string) bool {
	prefix, _, ok := strings.Cut(k, "/")
	if !ok {
		return false
	}
	for _, d := range []string{"pgward.io", "cnpg.io"} {
		if prefix == d || strings.HasSuffix(prefix, "."+d) {
			return true
		}
	}
	return false
}

// validateClassName checks a VolumeSnapshotClass name (a DNS subdomain).
func validateClassName(p *field.Path, name string) field.ErrorList {
	if name == "" {
		return nil
	}
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Subdomain(name) {
		errs = append(errs, field.Invalid(p, truncate(name), msg))
	}
	return errs
}

// validateVolumeSnapshotConfig checks spec.backup.volumeSnapshot.
func (s *ClusterSpec) validateVolumeSnapshotConfig(p *field.Path) field.ErrorList {
	vs := s.Backup.VolumeSnapshot
	var errs field.ErrorList
	errs = append(errs, validateSnapshotMetadata(vs.Labels, p.Child("labels"), true)...)
	errs = append(errs, validateSnapshotMetadata(vs.Annotations, p.Child("annotations"), false)...)
	errs = append(errs, validateClassName(p.Child("className"), vs.ClassName)...)
	errs = append(errs, validateClassName(p.Child("walClassName"), vs.WalClassName)...)
	if vs.WalClassName != "" && s.WalStorage == nil {
		errs = append(errs, field.Forbidden(p.Child("walClassName"), "the cluster has no spec.walStorage volume to snapshot"))
	}
	for _, k := range slices.Sorted(maps.Keys(vs.TablespaceClassName)) {
		errs = append(errs, validateClassName(p.Child("tablespaceClassName").Key(k), vs.TablespaceClassName[k])...)
		if !s.hasTablespace(k) {
			errs = append(errs, field.NotFound(p.Child("tablespaceClassName").Key(k), k))
		}
	}
	switch vs.SnapshotOwnerReference {
	case "", SnapshotOwnerNone, SnapshotOwnerCluster, SnapshotOwnerBackup:
	default:
		errs = append(errs, field.NotSupported(p.Child("snapshotOwnerReference"), vs.SnapshotOwnerReference,
			[]string{SnapshotOwnerNone, SnapshotOwnerCluster, SnapshotOwnerBackup}))
	}
	if vs.Online != nil && *vs.Online {
		errs = append(errs, field.Forbidden(p.Child("online"), errOnlineSnapshot))
	}
	return errs
}

// errOnlineSnapshot says why online snapshots are refused.
const errOnlineSnapshot = "pgward takes cold volume snapshots only (the instance, a standby by default, is stopped cleanly while its volumes are snapshotted): set online: false or leave it out (CloudNativePG's default is online)"

func (s *ClusterSpec) hasTablespace(name string) bool {
	for _, t := range s.Tablespaces {
		if t.Name == name {
			return true
		}
	}
	return false
}

// validateSnapshotRef checks one VolumeSnapshot reference: only
// external-snapshotter's VolumeSnapshot kind, and a name the API server
// would accept.
func validateSnapshotRef(r TypedLocalObjectReference, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if r.APIGroup == nil || *r.APIGroup != VolumeSnapshotGroup {
		got := ""
		if r.APIGroup != nil {
			got = *r.APIGroup
		}
		errs = append(errs, field.NotSupported(p.Child("apiGroup"), got, []string{VolumeSnapshotGroup}))
	}
	if r.Kind != VolumeSnapshotKind {
		errs = append(errs, field.NotSupported(p.Child("kind"), r.Kind, []string{VolumeSnapshotKind}))
	}
	if r.Name == "" {
		errs = append(errs, field.Required(p.Child("name"), "the VolumeSnapshot's name"))
	} else {
		for _, msg := range validation.IsDNS1123Subdomain(r.Name) {
			errs = append(errs, field.Invalid(p.Child("name"), truncate(r.Name), msg))
		}
	}
	return errs
}

// validateVolumeSnapshots checks bootstrap.recovery.volumeSnapshots: the
// snapshots must cover exactly the volumes the cluster declares, and the
// recovery replays only the WAL the snapshots hold.
func (s *ClusterSpec) validateVolumeSnapshots(p *field.Path) field.ErrorList {
	r := s.Bootstrap.Recovery
	ds := r.VolumeSnapshots
	vp := p.Child("volumeSnapshots")
	var errs field.ErrorList
	errs = append(errs, validateSnapshotRef(ds.Storage, vp.Child("storage"))...)
	switch {
	case ds.WalStorage != nil && s.WalStorage == nil:
		errs = append(errs, field.Forbidden(vp.Child("walStorage"), "the cluster has no spec.walStorage for it: declare spec.walStorage"))
	case ds.WalStorage != nil:
		errs = append(errs, validateSnapshotRef(*ds.WalStorage, vp.Child("walStorage"))...)
	}
	for _, k := range slices.Sorted(maps.Keys(ds.TablespaceStorage)) {
		errs = append(errs, validateSnapshotRef(ds.TablespaceStorage[k], vp.Child("tablespaceStorage").Key(k))...)
		if !s.hasTablespace(k) {
			errs = append(errs, field.NotFound(vp.Child("tablespaceStorage").Key(k), k))
		}
	}
	for i, t := range s.Tablespaces {
		if _, ok := ds.TablespaceStorage[t.Name]; !ok {
			errs = append(errs, field.Required(vp.Child("tablespaceStorage").Key(t.Name),
				fmt.Sprintf("spec.tablespaces[%d] %q needs the snapshot of its volume: the data volume's snapshot refers to it", i, t.Name)))
		}
	}
	if r.Backup != nil {
		errs = append(errs, field.Forbidden(p.Child("backup"), "volumeSnapshots name what to recover from: give volumeSnapshots or backup, not both"))
	}
	if r.Source != "" {
		errs = append(errs, field.Forbidden(p.Child("source"),
			"pgward does not support yet replaying WAL from an object store after volume snapshots: the recovery replays the WAL the snapshots hold and promotes"))
	}
	if r.RecoveryTarget != nil {
		errs = append(errs, field.Forbidden(p.Child("recoveryTarget"),
			"a recovery target needs WAL past the snapshots, from an object store (source), which pgward does not support yet with volumeSnapshots"))
	}
	return errs
}
