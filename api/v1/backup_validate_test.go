package v1

import (
	"strings"
	"testing"
)

func backupCluster(mutate func(c *Cluster)) *Cluster {
	c := &Cluster{Spec: ClusterSpec{Instances: 1}}
	c.APIVersion, c.Kind, c.Name = APIVersion, Kind, "demo"
	sel := func(k string) *SecretKeySelector { return &SecretKeySelector{Name: "store", Key: k} }
	c.Spec.Backup = &BackupConfiguration{RetentionPolicy: "30d", BarmanObjectStore: &BarmanObjectStoreConfiguration{
		DestinationPath: "s3://bucket/path", EndpointURL: "https://store.example:9000", EndpointCA: sel("ca.crt"),
		S3Credentials: &S3Credentials{AccessKeyID: sel("id"), SecretAccessKey: sel("secret")},
	}}
	mutate(c)
	SetDefaults(c)
	return c
}

func withRecovery(c *Cluster, target *RecoveryTarget) {
	sel := func(k string) *SecretKeySelector { return &SecretKeySelector{Name: "store", Key: k} }
	c.Spec.Bootstrap = &BootstrapConfiguration{Recovery: &BootstrapRecovery{Source: "old", RecoveryTarget: target}}
	c.Spec.ExternalClusters = []ExternalCluster{{Name: "old", BarmanObjectStore: &BarmanObjectStoreConfiguration{
		DestinationPath: "s3://bucket/path", EndpointURL: "https://store.example:9000", EndpointCA: sel("ca.crt"),
		S3Credentials: &S3Credentials{AccessKeyID: sel("id"), SecretAccessKey: sel("secret")},
		EncryptionKey: &SecretKeySelector{Name: "old-key", Key: "key"},
	}}}
}

func TestValidateBackup(t *testing.T) {
	yes := true
	for _, c := range []struct {
		name   string
		mutate func(c *Cluster)
		want   string // "" valid; else a substring of the error
	}{
		{"valid", func(*Cluster) {}, ""},
		{"generated key named", func(c *Cluster) {
			c.Spec.Backup.BarmanObjectStore.EncryptionKey = &SecretKeySelector{Name: "demo-backup-key", Key: "key"}
		}, ""},
		{"no store", func(c *Cluster) { c.Spec.Backup.BarmanObjectStore = nil }, "barmanObjectStore: Required"},
		{"not s3", func(c *Cluster) { c.Spec.Backup.BarmanObjectStore.DestinationPath = "gs://b/p" }, "must start with s3://"},
		{"bad bucket", func(c *Cluster) { c.Spec.Backup.BarmanObjectStore.DestinationPath = "s3://B_ad/p" }, "not a valid S3 bucket"},
		{"dot-dot path", func(c *Cluster) { c.Spec.Backup.BarmanObjectStore.DestinationPath = "s3://bucket/a/../b" }, ". or .."},
		{"newline in path", func(c *Cluster) { c.Spec.Backup.BarmanObjectStore.DestinationPath = "s3://bucket/a\nrepo1-path=/x" }, "segments"},
		{"http", func(c *Cluster) { c.Spec.Backup.BarmanObjectStore.EndpointURL = "http://store.example" }, "must be https://"},
		{"ip", func(c *Cluster) { c.Spec.Backup.BarmanObjectStore.EndpointURL = "https://10.0.0.1:9000" }, "IP address"},
		{"credentials in url", func(c *Cluster) { c.Spec.Backup.BarmanObjectStore.EndpointURL = "https://a:b@store.example" }, "without credentials"},
		{"no credentials", func(c *Cluster) { c.Spec.Backup.BarmanObjectStore.S3Credentials = nil }, "s3Credentials: Required"},
		{"retention", func(c *Cluster) { c.Spec.Backup.RetentionPolicy = "30 days" }, "retentionPolicy"},
		{"snappy", func(c *Cluster) {
			c.Spec.Backup.BarmanObjectStore.Wal = &WalBackupConfiguration{Compression: "snappy"}
		}, "Unsupported value: \"snappy\""},
		{"parallel", func(c *Cluster) {
			c.Spec.Backup.BarmanObjectStore.Wal = &WalBackupConfiguration{MaxParallel: 33}
		}, "must be 1 to 32"},
		{"key beside the credentials", func(c *Cluster) {
			c.Spec.Backup.BarmanObjectStore.EncryptionKey = &SecretKeySelector{Name: "store", Key: "key"}
		}, "one secret cannot hold both"},
		{"a generated secret", func(c *Cluster) {
			c.Spec.Backup.BarmanObjectStore.S3Credentials.AccessKeyID.Name = "demo-app"
		}, "pgward generates"},
		{"bad key", func(c *Cluster) { c.Spec.Backup.BarmanObjectStore.EndpointCA.Key = "a/b" }, "must be a secret key"},
		{"recovery", func(c *Cluster) {
			withRecovery(c, &RecoveryTarget{TargetTime: "2026-12-06 10:00:00.5+01"})
			c.Spec.Backup.BarmanObjectStore.ServerName = "new"
		}, ""},
		{"recovery into the source's stanza", func(c *Cluster) {
			withRecovery(c, nil)
			c.Spec.Backup.BarmanObjectStore.ServerName = "old"
		}, "is where the recovery source"},
		{"recovery and initdb", func(c *Cluster) {
			withRecovery(c, nil)
			c.Spec.Bootstrap.InitDB = &BootstrapInitDB{}
		}, "exclude each other"},
		{"unknown source", func(c *Cluster) { withRecovery(c, nil); c.Spec.Bootstrap.Recovery.Source = "nope" }, "Not found"},
		{"source without key", func(c *Cluster) {
			withRecovery(c, nil)
			c.Spec.ExternalClusters[0].BarmanObjectStore.EncryptionKey = nil
		}, "encryptionKey: Required"},
		{"source compression", func(c *Cluster) {
			withRecovery(c, nil)
			c.Spec.ExternalClusters[0].BarmanObjectStore.Data = &DataBackupConfiguration{Compression: "gzip"}
		}, "only read"},
		{"two targets", func(c *Cluster) {
			withRecovery(c, &RecoveryTarget{TargetLSN: "0/1", TargetImmediate: &yes})
		}, "at most one"},
		{"time without zone", func(c *Cluster) {
			withRecovery(c, &RecoveryTarget{TargetTime: "2026-12-06 10:00:00"})
		}, "time zone"},
		{"bad lsn", func(c *Cluster) { withRecovery(c, &RecoveryTarget{TargetLSN: "0/xyz"}) }, "WAL location"},
		{"bad xid", func(c *Cluster) { withRecovery(c, &RecoveryTarget{TargetXID: "-1"}) }, "transaction id"},
		{"newline in name", func(c *Cluster) { withRecovery(c, &RecoveryTarget{TargetName: "a\nb"}) }, "control"},
		{"bad backup id", func(c *Cluster) { withRecovery(c, &RecoveryTarget{BackupID: "latest"}) }, "backup label"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl := backupCluster(c.mutate)
			err := cl.Validate().ToAggregate()
			switch {
			case c.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("got %v, want %q", err, c.want)
			}
		})
	}
}

func TestValidateBackupUpdate(t *testing.T) {
	old := backupCluster(func(*Cluster) {})
	for _, c := range []struct {
		name   string
		mutate func(c *Cluster)
		want   string
	}{
		{"retention and compression may change", func(c *Cluster) {
			c.Spec.Backup.RetentionPolicy = "4w"
			c.Spec.Backup.BarmanObjectStore.Wal = &WalBackupConfiguration{Compression: "zstd"}
		}, ""},
		{"destination", func(c *Cluster) { c.Spec.Backup.BarmanObjectStore.DestinationPath = "s3://bucket/other" }, "destinationPath: Forbidden"},
		{"key", func(c *Cluster) {
			c.Spec.Backup.BarmanObjectStore.EncryptionKey = &SecretKeySelector{Name: "other", Key: "k"}
		}, "encryptionKey: Forbidden"},
		{"removed", func(c *Cluster) { c.Spec.Backup = nil }, "spec.backup: Forbidden"},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := backupCluster(c.mutate)
			err := ValidateUpdate(old, n).ToAggregate()
			switch {
			case c.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("got %v, want %q", err, c.want)
			}
		})
	}
}

func TestValidateManagedRoles(t *testing.T) {
	yes := true
	for _, c := range []struct {
		name string
		role RoleConfiguration
		su   bool
		want string
	}{
		{"valid", RoleConfiguration{Name: "dante", Login: true, InRoles: []string{"pg_monitor"}, PasswordSecret: &LocalObjectReference{Name: "d"}}, false, ""},
		{"superuser", RoleConfiguration{Name: "x", Superuser: true}, true, "only superuser"},
		{"replication", RoleConfiguration{Name: "x", Replication: true}, true, "by certificate"},
		{"createrole without superuser access", RoleConfiguration{Name: "x", CreateRole: true}, false, "pg_execute_server_program"},
		{"createrole with superuser access", RoleConfiguration{Name: "x", CreateRole: true}, true, ""},
		{"server files", RoleConfiguration{Name: "x", InRoles: []string{"pg_read_server_files"}}, false, "server's files"},
		{"server files with superuser access", RoleConfiguration{Name: "x", InRoles: []string{"pg_read_server_files"}}, true, ""},
		{"member of postgres", RoleConfiguration{Name: "x", InRoles: []string{"postgres"}}, true, "pgward's roles"},
		{"member of itself", RoleConfiguration{Name: "x", InRoles: []string{"x"}}, false, "itself"},
		{"pgward's role", RoleConfiguration{Name: "streaming_replica"}, false, "cannot be managed"},
		{"a pg_ role", RoleConfiguration{Name: "pg_monitor"}, false, "cannot be managed"},
		{"the app owner, attributes", RoleConfiguration{Name: "app", Login: true, CreateDB: true}, false, ""},
		{"the app owner without login", RoleConfiguration{Name: "app"}, false, "must exist and log in"},
		{"the app owner's password", RoleConfiguration{Name: "app", Login: true, PasswordSecret: &LocalObjectReference{Name: "x"}}, false, "bootstrap secret"},
		{"secret and no password", RoleConfiguration{Name: "x", PasswordSecret: &LocalObjectReference{Name: "s"}, DisablePassword: true}, false, "exclude each other"},
		{"limit", RoleConfiguration{Name: "x", ConnectionLimit: new(int64(-2))}, false, "-1"},
		{"comment newline", RoleConfiguration{Name: "x", Comment: "a\nb"}, false, "control"},
		{"ensure", RoleConfiguration{Name: "x", Ensure: "maybe"}, false, "Unsupported value"},
		{"the password secret is another's", RoleConfiguration{Name: "x", PasswordSecret: &LocalObjectReference{Name: "demo-superuser"}}, false, "pgward generates"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl := &Cluster{Spec: ClusterSpec{Instances: 1, Managed: &ManagedConfiguration{Roles: []RoleConfiguration{c.role}}}}
			cl.APIVersion, cl.Kind, cl.Name = APIVersion, Kind, "demo"
			if c.su {
				cl.Spec.EnableSuperuserAccess = &yes
			}
			SetDefaults(cl)
			err := cl.Validate().ToAggregate()
			switch {
			case c.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("got %v, want %q", err, c.want)
			}
		})
	}
}

func TestValidateExternalConnection(t *testing.T) {
	sel := func(n, k string) *SecretKeySelector { return &SecretKeySelector{Name: n, Key: k} }
	good := ExternalCluster{Name: "src", ConnectionParameters: map[string]string{"host": "db", "user": "streaming_replica", "dbname": "postgres", "sslmode": "verify-full"},
		SSLCert: sel("repl", "tls.crt"), SSLKey: sel("repl", "tls.key"), SSLRootCert: sel("ca", "ca.crt")}
	for _, c := range []struct {
		name   string
		mutate func(e *ExternalCluster)
		want   string
	}{
		{"valid", func(*ExternalCluster) {}, ""},
		{"password key in the parameters", func(e *ExternalCluster) { e.ConnectionParameters["password"] = "x" }, "Unsupported value"},
		{"sslmode require", func(e *ExternalCluster) { e.ConnectionParameters["sslmode"] = "require" }, "verify-full or verify-ca"},
		{"no sslmode: verify-full, since the CA is named", func(e *ExternalCluster) { delete(e.ConnectionParameters, "sslmode") }, ""},
		{"no sslmode and no CA", func(e *ExternalCluster) { delete(e.ConnectionParameters, "sslmode"); e.SSLRootCert = nil }, "verify-full or verify-ca"},
		{"no root cert", func(e *ExternalCluster) { e.SSLRootCert = nil }, "sslRootCert: Required"},
		{"cert without key", func(e *ExternalCluster) { e.SSLKey = nil }, "sslKey: Required"},
		{"newline", func(e *ExternalCluster) { e.ConnectionParameters["host"] = "a\nb" }, "control characters"},
		{"no user", func(e *ExternalCluster) { delete(e.ConnectionParameters, "user") }, "user"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := good
			e.ConnectionParameters = map[string]string{}
			for k, v := range good.ConnectionParameters {
				e.ConnectionParameters[k] = v
			}
			c.mutate(&e)
			cl := &Cluster{Spec: ClusterSpec{Instances: 1, ExternalClusters: []ExternalCluster{e},
				Bootstrap: &BootstrapConfiguration{PgBaseBackup: &BootstrapPgBaseBackup{Source: "src"}}}}
			cl.APIVersion, cl.Kind, cl.Name = APIVersion, Kind, "demo"
			SetDefaults(cl)
			err := cl.Validate().ToAggregate()
			switch {
			case c.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("got %v, want %q", err, c.want)
			}
		})
	}
}
