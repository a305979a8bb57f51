package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kinds of the backup resources (Kubernetes only: the local runtime has
// `pgward local backup` instead).
const (
	BackupKind          = "Backup"
	ScheduledBackupKind = "ScheduledBackup"
)

// BackupMethodBarmanObjectStore is the one method pgward implements: a
// pgBackRest base backup to the cluster's spec.backup.barmanObjectStore.
// CloudNativePG's other methods (volumeSnapshot, plugin) are refused.
const BackupMethodBarmanObjectStore = "barmanObjectStore"

// Backup phases, CloudNativePG's words.
const (
	BackupPhasePending   = "pending"
	BackupPhaseRunning   = "running"
	BackupPhaseCompleted = "completed"
	BackupPhaseFailed    = "failed"
)

// Backup is one base backup of a Cluster, taken by its primary's instance
// manager into the Cluster's object store. The field names are
// CloudNativePG's.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Cluster",type=string,JSONPath=`.spec.cluster.name`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Backup",type=string,JSONPath=`.status.backupId`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Backup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BackupSpec   `json:"spec"`
	Status BackupStatus `json:"status,omitempty"`
}

// BackupList is a list of Backups.
//
// +kubebuilder:object:root=true
type BackupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Backup `json:"items"`
}

// BackupSpec says which Cluster to back up, and how.
type BackupSpec struct {
	// Cluster is the Cluster of the Backup's namespace to back up.
	Cluster LocalObjectReference `json:"cluster"`
	// Method is barmanObjectStore (the default): a base backup to the
	// Cluster's spec.backup.barmanObjectStore.
	// +optional
	// +kubebuilder:default=barmanObjectStore
	Method string `json:"method,omitempty"`
	// Target is the instance a volumeSnapshot backup is taken on:
	// prefer-standby (the default: a streaming standby if there is one,
	// else the primary) or primary.
	// +optional
	// +kubebuilder:validation:Enum=primary;prefer-standby
	Target string `json:"target,omitempty"`
	// Online, for a volumeSnapshot backup, is refused when true: pgward
	// takes cold snapshots (the instance is stopped cleanly first).
	// +optional
	Online *bool `json:"online,omitempty"`
}

// BackupStatus is what the operator observed of the backup.
type BackupStatus struct {
	// Phase is pending, running, completed or failed.
	// +optional
	Phase string `json:"phase,omitempty"`
	// InstanceID is the instance (pod) taking the backup.
	// +optional
	InstanceID *InstanceID `json:"instanceID,omitempty"`
	// BackupID is the backup's label in the object store (what
	// bootstrap.recovery.recoveryTarget.backupID names).
	// +optional
	BackupID string `json:"backupId,omitempty"`
	// BeginLSN and EndLSN delimit the WAL the backup needs.
	// +optional
	BeginLSN string `json:"beginLSN,omitempty"`
	// +optional
	EndLSN string `json:"endLSN,omitempty"`
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// +optional
	StoppedAt *metav1.Time `json:"stoppedAt,omitempty"`
	// Error says why the backup failed.
	// +optional
	Error string `json:"error,omitempty"`
	// Method is the method the backup was taken with.
	// +optional
	Method string `json:"method,omitempty"`
	// Online is whether the backup was taken with PostgreSQL running
	// (always false for pgward's volume snapshots).
	// +optional
	Online *bool `json:"online,omitempty"`
	// BackupSnapshotStatus lists the VolumeSnapshots of a volumeSnapshot
	// backup.
	// +optional
	BackupSnapshotStatus *BackupSnapshotStatus `json:"snapshotBackupStatus,omitempty"`
}

// InstanceID names the instance a backup runs on.
type InstanceID struct {
	PodName string `json:"podName,omitempty"`
}

// ScheduledBackup creates Backups of a Cluster on a schedule.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Cluster",type=string,JSONPath=`.spec.cluster.name`
// +kubebuilder:printcolumn:name="Schedule",type=string,JSONPath=`.spec.schedule`
// +kubebuilder:printcolumn:name="Last",type=date,JSONPath=`.status.lastScheduleTime`
type ScheduledBackup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ScheduledBackupSpec   `json:"spec"`
	Status ScheduledBackupStatus `json:"status,omitempty"`
}

// ScheduledBackupList is a list of ScheduledBackups.
//
// +kubebuilder:object:root=true
type ScheduledBackupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ScheduledBackup `json:"items"`
}

// Owners a ScheduledBackup can give the Backups it creates.
const (
	BackupOwnerNone    = "none"
	BackupOwnerSelf    = "self"
	BackupOwnerCluster = "cluster"
)

// ScheduledBackupSpec is CloudNativePG's.
type ScheduledBackupSpec struct {
	// Suspend stops creating Backups.
	// +optional
	Suspend *bool `json:"suspend,omitempty"`
	// Immediate creates a Backup as soon as the ScheduledBackup exists,
	// then follows the schedule.
	// +optional
	Immediate *bool `json:"immediate,omitempty"`
	// Schedule is a cron expression with six fields, seconds first:
	// "0 0 0 * * *" is every midnight. Times are UTC.
	// +kubebuilder:validation:MinLength=1
	Schedule string `json:"schedule"`
	// Cluster is the Cluster of the ScheduledBackup's namespace to back up.
	Cluster LocalObjectReference `json:"cluster"`
	// BackupOwnerReference is what owns the Backups created: none (they
	// stay), self (deleted with the ScheduledBackup) or cluster (deleted
	// with the Cluster).
	// +optional
	// +kubebuilder:default=none
	// +kubebuilder:validation:Enum=none;self;cluster
	BackupOwnerReference string `json:"backupOwnerReference,omitempty"`
	// Method is the created Backups' method (default barmanObjectStore).
	// +optional
	// +kubebuilder:default=barmanObjectStore
	Method string `json:"method,omitempty"`
	// Target is the created Backups' target (volumeSnapshot only).
	// +optional
	// +kubebuilder:validation:Enum=primary;prefer-standby
	Target string `json:"target,omitempty"`
	// Online is the created Backups' online (true is refused).
	// +optional
	Online *bool `json:"online,omitempty"`
}

// ScheduledBackupStatus records the schedule's progress.
type ScheduledBackupStatus struct {
	// LastCheckTime is when the schedule was last looked at.
	// +optional
	LastCheckTime *metav1.Time `json:"lastCheckTime,omitempty"`
	// LastScheduleTime is the schedule time of the last Backup created.
	// +optional
	LastScheduleTime *metav1.Time `json:"lastScheduleTime,omitempty"`
	// NextScheduleTime is when the next Backup is due.
	// +optional
	NextScheduleTime *metav1.Time `json:"nextScheduleTime,omitempty"`
}
