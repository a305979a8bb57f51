package kube_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/kube"
)

// fakeBackups is an instance manager's backup endpoint: one run at a time,
// the latest run in its status, completed when the test says so.
type fakeBackups struct {
	mu      sync.Mutex
	asked   []string // instances asked to start
	run     *instanceapi.BackupRun
	backups []instanceapi.BackupInfo
}

func (f *fakeBackups) Status(_ context.Context, in kube.Instance, _ uint64) (*instanceapi.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := &instanceapi.Status{Name: in.Name}
	if f.run != nil {
		r := *f.run
		st.Backup = &r
	}
	return st, nil
}

func (f *fakeBackups) StartBackup(_ context.Context, in kube.Instance) (*instanceapi.BackupRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if in.Addr == "" || in.TLS == nil || len(in.TLS.ClientKey) == 0 {
		return nil, errors.New("no address or no client certificate")
	}
	if f.run != nil && f.run.Phase == instanceapi.BackupRunning {
		return nil, errors.New("a backup is already running")
	}
	f.asked = append(f.asked, in.Name)
	f.run = &instanceapi.BackupRun{Phase: instanceapi.BackupRunning, Started: time.Now().UTC()}
	r := *f.run
	return &r, nil
}

func (f *fakeBackups) Backups(context.Context, kube.Instance) (*instanceapi.BackupList, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &instanceapi.BackupList{Backups: f.backups}, nil
}

func (f *fakeBackups) complete(label string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now().UTC()
	f.run.Phase, f.run.Label, f.run.Stopped = instanceapi.BackupCompleted, label, &now
	f.backups = append(f.backups, instanceapi.BackupInfo{Label: label, StartLSN: "0/2000028", StopLSN: "0/2000100"})
}

// readyBackupCluster creates a Cluster with spec.backup and its store's
// secrets, reconciles it once, and gives its first pod an IP and the
// primary role in the status, as a kubelet and the failover loop would.
func readyBackupCluster(t *testing.T, ns string) *v1.Cluster {
	t.Helper()
	ctx := ctxFor(t)
	c := backupCluster(t, ns)
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "store-ca"}, Data: map[string][]byte{"ca.crt": []byte("PEM")}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "store-creds"}, Data: map[string][]byte{"ACCESS_KEY_ID": []byte("a"), "ACCESS_SECRET_KEY": []byte("b")}},
	} {
		if err := admin.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	createCluster(t, c)
	reconcileOnce(t, newReconciler(&kube.MTLSInstances{Timeout: time.Second}, nil), c)
	primary := c.Name + "-1"
	var pod corev1.Pod
	if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: primary}, &pod); err != nil {
		t.Fatal(err)
	}
	pod.Status.PodIP = "10.244.0.7"
	if err := admin.Status().Update(ctx, &pod); err != nil {
		t.Fatal(err)
	}
	if err := admin.Get(ctx, client.ObjectKeyFromObject(c), c); err != nil {
		t.Fatal(err)
	}
	c.Status.CurrentPrimary = primary
	if err := admin.Status().Update(ctx, c); err != nil {
		t.Fatal(err)
	}
	return c
}

func getBackup(t *testing.T, ns, name string) *v1.Backup {
	t.Helper()
	var b v1.Backup
	if err := admin.Get(ctxFor(t), client.ObjectKey{Namespace: ns, Name: name}, &b); err != nil {
		t.Fatal(err)
	}
	return &b
}

// TestBackupFollowsTheRun: a Backup is asked of the primary, stays running
// while the instance reports the run, and completes with its label and
// LSNs; a second Backup waits (pending) while the first runs.
func TestBackupFollowsTheRun(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	c := readyBackupCluster(t, ns)
	fake := &fakeBackups{}
	r := &kube.BackupReconciler{Client: operator, APIReader: operator, Instances: fake}
	do := func(name string) {
		t.Helper()
		if _, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: name}}); err != nil {
			t.Fatalf("reconcile %s: %v", name, err)
		}
	}
	for _, name := range []string{"first", "second"} {
		if err := admin.Create(ctx, &v1.Backup{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       v1.BackupSpec{Cluster: v1.LocalObjectReference{Name: c.Name}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	do("first")
	b := getBackup(t, ns, "first")
	if b.Status.Phase != v1.BackupPhaseRunning || b.Status.InstanceID == nil || b.Status.InstanceID.PodName != c.Name+"-1" || b.Status.StartedAt == nil {
		t.Fatalf("after start: %+v", b.Status)
	}
	if b.Spec.Method != v1.BackupMethodBarmanObjectStore {
		t.Errorf("method defaulted to %q", b.Spec.Method)
	}
	do("second")
	// Not even asked: the operator holds it while "first" is Running, so
	// that "first" sees its own run end (the instance reports only the
	// latest run).
	if s := getBackup(t, ns, "second").Status; s.Phase != v1.BackupPhasePending || !strings.Contains(s.Error, "backup first of cluster") || len(fake.asked) != 1 {
		t.Errorf("second while the first runs: %+v (instances asked: %v)", s, fake.asked)
	}
	do("first")
	if s := getBackup(t, ns, "first").Status; s.Phase != v1.BackupPhaseRunning {
		t.Errorf("still running: %+v", s)
	}
	fake.complete("20261206-120000F")
	do("first")
	b = getBackup(t, ns, "first")
	if s := b.Status; s.Phase != v1.BackupPhaseCompleted || s.BackupID != "20261206-120000F" || s.BeginLSN != "0/2000028" || s.EndLSN != "0/2000100" || s.StoppedAt == nil || s.Error != "" {
		t.Errorf("completed: %+v", s)
	}
	do("second")
	if s := getBackup(t, ns, "second").Status; s.Phase != v1.BackupPhaseRunning {
		t.Errorf("second after the first: %+v", s)
	}
	if len(fake.asked) != 2 || fake.asked[0] != c.Name+"-1" {
		t.Errorf("instances asked: %v", fake.asked)
	}
}

// TestBackupOfAClusterWithoutStore fails at once, naming the reason.
func TestBackupOfAClusterWithoutStore(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	c := sampleCluster(t, ns)
	createCluster(t, c)
	if err := admin.Create(ctx, &v1.Backup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "b"},
		Spec:       v1.BackupSpec{Cluster: v1.LocalObjectReference{Name: c.Name}},
	}); err != nil {
		t.Fatal(err)
	}
	r := &kube.BackupReconciler{Client: operator, APIReader: operator, Instances: &fakeBackups{}}
	if _, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: "b"}}); err != nil {
		t.Fatal(err)
	}
	if s := getBackup(t, ns, "b").Status; s.Phase != v1.BackupPhaseFailed || !strings.Contains(s.Error, "spec.backup") {
		t.Errorf("status %+v", s)
	}
}

// TestScheduledBackup: immediate makes a Backup at once; the next one
// comes at the schedule's next time (every 20 s here), owned as asked;
// suspend stops them.
func TestScheduledBackup(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	c := sampleCluster(t, ns)
	createCluster(t, c)
	now := time.Date(2026, 12, 6, 12, 0, 5, 0, time.UTC)
	r := &kube.ScheduledBackupReconciler{Client: operator, Now: func() time.Time { return now }}
	sb := &v1.ScheduledBackup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "every20s"},
		Spec: v1.ScheduledBackupSpec{
			Schedule: "*/20 * * * * *", Immediate: new(true),
			Cluster: v1.LocalObjectReference{Name: c.Name}, BackupOwnerReference: v1.BackupOwnerSelf,
		},
	}
	if err := admin.Create(ctx, sb); err != nil {
		t.Fatal(err)
	}
	do := func() reconcile.Result {
		t.Helper()
		res, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(sb)})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	list := func() []string {
		t.Helper()
		var l v1.BackupList
		if err := admin.List(ctx, &l, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, b := range l.Items {
			names = append(names, b.Name)
			if !metav1.IsControlledBy(&b, sb) && len(b.OwnerReferences) > 0 {
				t.Errorf("%s owned by %v", b.Name, b.OwnerReferences)
			}
			if len(b.OwnerReferences) == 0 {
				t.Errorf("%s has no owner (backupOwnerReference: self)", b.Name)
			}
		}
		return names
	}
	if res := do(); res.RequeueAfter != 15*time.Second {
		t.Errorf("requeue after %v, want 15s (12:00:20)", res.RequeueAfter)
	}
	if got := list(); len(got) != 1 || got[0] != "every20s-20261206120005" {
		t.Fatalf("after the first reconcile: %v", got)
	}
	now = now.Add(10 * time.Second) // 12:00:15: not due
	do()
	if got := list(); len(got) != 1 {
		t.Fatalf("before the next time: %v", got)
	}
	now = now.Add(6 * time.Second) // 12:00:21
	do()
	if got := list(); len(got) != 2 || got[1] != "every20s-20261206120021" {
		t.Fatalf("after the next time: %v", got)
	}
	if err := admin.Get(ctx, client.ObjectKeyFromObject(sb), sb); err != nil {
		t.Fatal(err)
	}
	if sb.Status.NextScheduleTime == nil || !sb.Status.NextScheduleTime.Time.Equal(time.Date(2026, 12, 6, 12, 0, 40, 0, time.UTC)) {
		t.Errorf("next schedule time %v", sb.Status.NextScheduleTime)
	}
	sb.Spec.Suspend = new(true)
	if err := admin.Update(ctx, sb); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	do()
	if got := list(); len(got) != 2 {
		t.Fatalf("suspended: %v", got)
	}
}

// TestBackupWebhooks: what the admission webhooks refuse, with the field.
func TestBackupWebhooks(t *testing.T) {
	ctx := ctxFor(t)
	ref := v1.LocalObjectReference{Name: "c"}
	for _, tc := range []struct {
		name, schedule, method, want string
	}{
		{"five fields", "0 0 * * *", "", "six, seconds first"},
		{"garbage", "every day", "", "spec.schedule"},
		{"plugin", "0 0 0 * * *", "plugin", "spec.method"},
	} {
		sb := &v1.ScheduledBackup{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Spec: v1.ScheduledBackupSpec{Schedule: tc.schedule, Cluster: ref, Method: tc.method}}
		if _, err := (kube.ScheduledBackupWebhook{}).ValidateCreate(ctx, sb); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
	ok := &v1.ScheduledBackup{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Spec: v1.ScheduledBackupSpec{Schedule: "0 0 0 * * *", Cluster: ref}}
	if _, err := (kube.ScheduledBackupWebhook{}).ValidateCreate(ctx, ok); err != nil {
		t.Errorf("valid schedule refused: %v", err)
	}
	// volumeSnapshot is implemented (volumesnapshot_test.go).
	ok.Spec.Method, ok.Spec.Target = v1.BackupMethodVolumeSnapshot, v1.BackupTargetPrimary
	if _, err := (kube.ScheduledBackupWebhook{}).ValidateCreate(ctx, ok); err != nil {
		t.Errorf("volumeSnapshot schedule refused: %v", err)
	}
	b := &v1.Backup{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: v1.BackupSpec{Cluster: ref, Method: "plugin"}}
	if _, err := (kube.BackupWebhook{}).ValidateCreate(ctx, b); err == nil || !strings.Contains(err.Error(), "spec.method") {
		t.Errorf("plugin method: %v", err)
	}
	b.Spec.Method = v1.BackupMethodBarmanObjectStore
	n := b.DeepCopy()
	n.Spec.Cluster.Name = "other"
	if _, err := (kube.BackupWebhook{}).ValidateUpdate(ctx, b, n); err == nil || !strings.Contains(err.Error(), "cannot change") {
		t.Errorf("spec change: %v", err)
	}
}
