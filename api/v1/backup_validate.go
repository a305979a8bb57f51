package v1

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pgward/pgward/internal/safetext"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Backup defaults.
const (
	// DefaultBackupRegion is the S3 region pgward signs requests for when
	// s3Credentials.region is absent; S3-compatible stores accept it.
	DefaultBackupRegion = "us-east-1"
	// BackupKeySuffix names the generated encryption key secret,
	// <cluster>-backup-key, whose key BackupKeyKey holds the passphrase.
	BackupKeySuffix = "-backup-key"
	BackupKeyKey    = "key"
)

func setBackupDefaults(c *Cluster) {
	if b := c.Spec.Backup; b != nil && b.BarmanObjectStore != nil {
		setObjectStoreDefaults(b.BarmanObjectStore, c.Name)
		if b.BarmanObjectStore.EncryptionKey == nil {
			b.BarmanObjectStore.EncryptionKey = &SecretKeySelector{Name: c.Name + BackupKeySuffix, Key: BackupKeyKey}
		}
	}
	for i := range c.Spec.ExternalClusters {
		if s := c.Spec.ExternalClusters[i].BarmanObjectStore; s != nil {
			setObjectStoreDefaults(s, c.Spec.ExternalClusters[i].Name)
		}
	}
}

func setObjectStoreDefaults(s *BarmanObjectStoreConfiguration, serverName string) {
	if s.ServerName == "" {
		s.ServerName = serverName
	}
}

// bucketName is what S3 accepts as a bucket name (virtual-host safe).
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// objectPath is the path under the bucket: plain segments only, so it
// reaches pgBackRest's configuration file verbatim and means one place.
var objectPath = regexp.MustCompile(`^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$`)

// ObjectStoreLocation is a destinationPath taken apart.
type ObjectStoreLocation struct {
	Bucket string
	// Path is "/" or "/a/b": where in the bucket the cluster's backups go
	// (each under its own serverName).
	Path string
}

// ParseDestinationPath splits s3://bucket[/path].
func ParseDestinationPath(s string) (ObjectStoreLocation, error) {
	rest, ok := strings.CutPrefix(s, "s3://")
	if !ok {
		return ObjectStoreLocation{}, fmt.Errorf("must start with s3:// (pgward stores backups in S3-compatible object stores only)")
	}
	bucket, p, _ := strings.Cut(rest, "/")
	if !bucketName.MatchString(bucket) || strings.Contains(bucket, "..") {
		return ObjectStoreLocation{}, fmt.Errorf("bucket %q is not a valid S3 bucket name (3-63 lower-case letters, digits, dots and hyphens)", truncate(bucket))
	}
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return ObjectStoreLocation{Bucket: bucket, Path: "/"}, nil
	}
	if !objectPath.MatchString(p) || len(p) > 512 {
		return ObjectStoreLocation{}, fmt.Errorf("path %q must be /-separated segments of letters, digits, '.', '_' and '-'", truncate(p))
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return ObjectStoreLocation{}, fmt.Errorf("path %q must not hold . or .. segments", truncate(p))
		}
	}
	return ObjectStoreLocation{Bucket: bucket, Path: "/" + p}, nil
}

// Endpoint is an endpointURL taken apart.
type Endpoint struct {
	Host string
	Port int
}

// ParseEndpointURL checks an https:// URL with a DNS name. pgBackRest 2.45
// matches only DNS names in the store's certificate, so an IP address
// would fail every upload after a 60-second wait: refused up front.
func ParseEndpointURL(s string) (Endpoint, error) {
	if s == "" {
		return Endpoint{Host: "s3.amazonaws.com", Port: 443}, nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return Endpoint{}, fmt.Errorf("must be a URL such as https://s3.example.com:9000")
	}
	if u.Scheme != "https" {
		return Endpoint{}, fmt.Errorf("must be https://: backups and credentials never travel in clear text")
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return Endpoint{}, fmt.Errorf("must be https://host[:port] without credentials, path or query")
	}
	host := u.Hostname()
	if net.ParseIP(host) != nil {
		return Endpoint{}, fmt.Errorf("host %s is an IP address: use a DNS name that the store's certificate carries (pgBackRest verifies DNS names only)", host)
	}
	if !dnsName.MatchString(host) {
		return Endpoint{}, fmt.Errorf("host %q is not a DNS name", truncate(host))
	}
	port := 443
	if ps := u.Port(); ps != "" {
		port, err = strconv.Atoi(ps)
		if err != nil || port < 1 || port > 65535 {
			return Endpoint{}, fmt.Errorf("port %q is out of range", ps)
		}
	}
	return Endpoint{Host: host, Port: port}, nil
}

var dnsName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

// RetentionDays converts a retentionPolicy such as "4w" into days.
func RetentionDays(policy string) (int, error) {
	if policy == "" {
		return 0, nil
	}
	m := retentionPolicy.FindStringSubmatch(policy)
	if m == nil {
		return 0, fmt.Errorf("must be a number and a unit d, w or m, such as 30d")
	}
	n, _ := strconv.Atoi(m[1])
	return n * map[string]int{"d": 1, "w": 7, "m": 30}[m[2]], nil
}

var retentionPolicy = regexp.MustCompile(`^([1-9][0-9]{0,3})([dwm])$`)

func (s *ClusterSpec) validateBackup(path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if b := s.Backup; b != nil {
		p := path.Child("backup")
		if b.VolumeSnapshot != nil {
			errs = append(errs, s.validateVolumeSnapshotConfig(p.Child("volumeSnapshot"))...)
		}
		if b.BarmanObjectStore == nil && b.VolumeSnapshot == nil {
			errs = append(errs, field.Required(p.Child("barmanObjectStore"), "where the backups go (or volumeSnapshot)"))
		} else if b.BarmanObjectStore != nil {
			errs = append(errs, validateObjectStore(b.BarmanObjectStore, p.Child("barmanObjectStore"))...)
		}
		if _, err := RetentionDays(b.RetentionPolicy); err != nil {
			errs = append(errs, field.Invalid(p.Child("retentionPolicy"), b.RetentionPolicy, err.Error()))
		}
	}
	names := map[string]bool{}
	for i, ec := range s.ExternalClusters {
		p := path.Child("externalClusters").Index(i)
		errs = append(errs, validateIdentifierLike(p.Child("name"), ec.Name)...)
		if names[ec.Name] {
			errs = append(errs, field.Duplicate(p.Child("name"), ec.Name))
		}
		names[ec.Name] = true
		errs = append(errs, validateConnection(ec, p)...)
		if ec.BarmanObjectStore == nil {
			if len(ec.ConnectionParameters) == 0 {
				errs = append(errs, field.Required(p, "a barmanObjectStore or connectionParameters"))
			}
			continue
		}
		errs = append(errs, validateObjectStore(ec.BarmanObjectStore, p.Child("barmanObjectStore"))...)
		errs = append(errs, validateSourceStore(ec.BarmanObjectStore, p.Child("barmanObjectStore"))...)
		if ec.BarmanObjectStore.EncryptionKey == nil {
			errs = append(errs, field.Required(p.Child("barmanObjectStore", "encryptionKey"),
				"the key the source's backups were encrypted with (its <cluster>-backup-key secret)"))
		}
	}
	if s.Bootstrap != nil && s.Bootstrap.Recovery != nil {
		errs = append(errs, s.validateRecovery(path.Child("bootstrap", "recovery"))...)
	}
	if s.Bootstrap != nil && s.Bootstrap.PgBaseBackup != nil {
		errs = append(errs, s.validatePgBaseBackup(path.Child("bootstrap", "pg_basebackup"))...)
	}
	return errs
}

func validateIdentifierLike(p *field.Path, name string) field.ErrorList {
	if !regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`).MatchString(name) {
		return field.ErrorList{field.Invalid(p, truncate(name), "must be lower-case letters, digits and '-', at most 63")}
	}
	return nil
}

func validateObjectStore(s *BarmanObjectStoreConfiguration, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.DestinationPath == "" {
		errs = append(errs, field.Required(p.Child("destinationPath"), "s3://bucket/path"))
	} else if _, err := ParseDestinationPath(s.DestinationPath); err != nil {
		errs = append(errs, field.Invalid(p.Child("destinationPath"), truncate(s.DestinationPath), err.Error()))
	}
	if _, err := ParseEndpointURL(s.EndpointURL); err != nil {
		errs = append(errs, field.Invalid(p.Child("endpointURL"), truncate(s.EndpointURL), err.Error()))
	}
	if s.ServerName != "" && !regexp.MustCompile(`^[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?$`).MatchString(s.ServerName) {
		errs = append(errs, field.Invalid(p.Child("serverName"), truncate(s.ServerName), "must be lower-case letters, digits, '-', '_' and '.'"))
	}
	if s.S3Credentials == nil || s.S3Credentials.AccessKeyID == nil || s.S3Credentials.SecretAccessKey == nil {
		errs = append(errs, field.Required(p.Child("s3Credentials"), "accessKeyId and secretAccessKey (secret references)"))
	}
	for _, ref := range objectStoreSecretKeys(s, p) {
		errs = append(errs, validateSecretName(ref.path.Child("name"), ref.sel.Name)...)
		if !secretKeyName.MatchString(ref.sel.Key) {
			errs = append(errs, field.Invalid(ref.path.Child("key"), truncate(ref.sel.Key), "must be a secret key: letters, digits, '-', '_' and '.'"))
		}
	}
	if s.Wal != nil {
		errs = append(errs, validateCompression(p.Child("wal", "compression"), s.Wal.Compression)...)
		if s.Wal.MaxParallel < 0 || s.Wal.MaxParallel > 32 {
			errs = append(errs, field.Invalid(p.Child("wal", "maxParallel"), s.Wal.MaxParallel, "must be 1 to 32"))
		}
	}
	if s.Data != nil {
		errs = append(errs, validateCompression(p.Child("data", "compression"), s.Data.Compression)...)
		if s.Data.Jobs < 0 || s.Data.Jobs > 32 {
			errs = append(errs, field.Invalid(p.Child("data", "jobs"), s.Data.Jobs, "must be 1 to 32"))
		}
	}
	return errs
}

// validateSourceStore refuses what a store only read from would ignore:
// compression is read from the backups themselves, and no backup is taken.
func validateSourceStore(s *BarmanObjectStoreConfiguration, p *field.Path) field.ErrorList {
	const why = "a recovery source is only read: compression comes from its backups; leave it out"
	var errs field.ErrorList
	if s.Wal != nil && s.Wal.Compression != "" {
		errs = append(errs, field.Forbidden(p.Child("wal", "compression"), why))
	}
	if s.Data != nil && s.Data.Compression != "" {
		errs = append(errs, field.Forbidden(p.Child("data", "compression"), why))
	}
	if s.Data != nil && s.Data.ImmediateCheckpoint {
		errs = append(errs, field.Forbidden(p.Child("data", "immediateCheckpoint"), "a recovery source is only read: no backup is taken from it"))
	}
	return errs
}

var secretKeyName = regexp.MustCompile(`^[-._a-zA-Z0-9]{1,253}$`)

func validateCompression(p *field.Path, v string) field.ErrorList {
	switch v {
	case "", "gzip", "bzip2", "lz4", "zstd":
		return nil
	case "snappy":
		return field.ErrorList{field.NotSupported(p, v, []string{"gzip", "bzip2", "lz4", "zstd"})}
	}
	return field.ErrorList{field.NotSupported(p, truncate(v), []string{"gzip", "bzip2", "lz4", "zstd"})}
}

// secretKeyRef is one secret key an object store configuration names.
type secretKeyRef struct {
	path *field.Path
	sel  *SecretKeySelector
	what string
}

func objectStoreSecretKeys(s *BarmanObjectStoreConfiguration, p *field.Path) []secretKeyRef {
	var refs []secretKeyRef
	add := func(path *field.Path, sel *SecretKeySelector, what string) {
		if sel != nil {
			refs = append(refs, secretKeyRef{path, sel, what})
		}
	}
	add(p.Child("endpointCA"), s.EndpointCA, "object store")
	add(p.Child("encryptionKey"), s.EncryptionKey, "backup encryption key")
	if c := s.S3Credentials; c != nil {
		add(p.Child("s3Credentials", "accessKeyId"), c.AccessKeyID, "object store")
		add(p.Child("s3Credentials", "secretAccessKey"), c.SecretAccessKey, "object store")
		add(p.Child("s3Credentials", "region"), c.Region, "object store")
	}
	return refs
}

// BackupSecretKeys lists every secret key the backup and recovery
// configuration names, with the field naming it, for the runtimes to
// check that they exist.
func (c *Cluster) BackupSecretKeys() []SecretKeyUse {
	var out []SecretKeyUse
	spec := field.NewPath("spec")
	if b := c.Spec.Backup; b != nil && b.BarmanObjectStore != nil {
		for _, r := range objectStoreSecretKeys(b.BarmanObjectStore, spec.Child("backup", "barmanObjectStore")) {
			out = append(out, SecretKeyUse{Field: r.path.String(), Name: r.sel.Name, Key: r.sel.Key, What: r.what})
		}
	}
	for i, ec := range c.Spec.ExternalClusters {
		p := spec.Child("externalClusters").Index(i)
		for _, r := range []struct {
			name string
			sel  *SecretKeySelector
		}{{"sslCert", ec.SSLCert}, {"sslKey", ec.SSLKey}, {"sslRootCert", ec.SSLRootCert}, {"password", ec.Password}} {
			if r.sel != nil {
				out = append(out, SecretKeyUse{Field: p.Child(r.name).String(), Name: r.sel.Name, Key: r.sel.Key, What: "external cluster " + ec.Name})
			}
		}
		if ec.BarmanObjectStore != nil {
			for _, r := range objectStoreSecretKeys(ec.BarmanObjectStore, spec.Child("externalClusters").Index(i).Child("barmanObjectStore")) {
				out = append(out, SecretKeyUse{Field: r.path.String(), Name: r.sel.Name, Key: r.sel.Key, What: r.what})
			}
		}
	}
	return out
}

// SecretKeyUse is one secret key a manifest names and the field naming it.
type SecretKeyUse struct {
	Field, Name, Key, What string
}

// connectionKeys are the libpq keywords an external cluster's
// connectionParameters may hold. Credentials and files come from the
// secret fields (a value here would be a plaintext password in the
// manifest, or a path on whatever machine runs the instance), and TLS is
// always verified.
var connectionKeys = map[string]bool{
	"host": true, "hostaddr": true, "port": true, "user": true, "dbname": true, "sslmode": true,
	"application_name": true, "connect_timeout": true, "ssl_min_protocol_version": true, "sslsni": true,
}

func validateConnection(ec ExternalCluster, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	cp := p.Child("connectionParameters")
	if len(ec.ConnectionParameters) == 0 {
		for name, sel := range map[string]*SecretKeySelector{"sslCert": ec.SSLCert, "sslKey": ec.SSLKey, "sslRootCert": ec.SSLRootCert, "password": ec.Password} {
			if sel != nil {
				errs = append(errs, field.Forbidden(p.Child(name), "has no use without connectionParameters"))
			}
		}
		return errs
	}
	for _, k := range sortedKeys(toAny(ec.ConnectionParameters)) {
		v := ec.ConnectionParameters[k]
		switch {
		case !connectionKeys[k]:
			errs = append(errs, field.NotSupported(cp.Key(k), "", []string{"host", "hostaddr", "port", "user", "dbname", "sslmode", "application_name", "connect_timeout", "ssl_min_protocol_version", "sslsni"}))
		case safetext.Check(v) != nil || v == "" || len(v) > 253:
			errs = append(errs, field.Invalid(cp.Key(k), "", "must be a non-empty value without control characters"))
		}
	}
	switch ec.ConnectionParameters["sslmode"] {
	case "verify-full", "verify-ca":
		if ec.SSLRootCert == nil {
			errs = append(errs, field.Required(p.Child("sslRootCert"), "the CA that signed the server's certificate, to verify it"))
		}
	default:
		errs = append(errs, field.Invalid(cp.Key("sslmode"), ec.ConnectionParameters["sslmode"],
			"must be verify-full or verify-ca: pgward connects to another cluster over TLS it verifies, never in clear text or to an unverified server"))
	}
	if (ec.SSLCert == nil) != (ec.SSLKey == nil) {
		errs = append(errs, field.Required(p.Child("sslKey"), "sslCert and sslKey go together"))
	}
	if ec.ConnectionParameters["user"] == "" {
		errs = append(errs, field.Required(cp.Key("user"), "the role to connect as"))
	}
	return errs
}

func toAny(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (s *ClusterSpec) validatePgBaseBackup(p *field.Path) field.ErrorList {
	b := s.Bootstrap.PgBaseBackup
	var errs field.ErrorList
	if s.Bootstrap.InitDB != nil || s.Bootstrap.Recovery != nil {
		errs = append(errs, field.Forbidden(p, "one bootstrap method only: initdb, recovery or pg_basebackup"))
	}
	src := s.externalCluster(b.Source)
	switch {
	case b.Source == "":
		errs = append(errs, field.Required(p.Child("source"), "the name of an entry of spec.externalClusters"))
	case src == nil:
		errs = append(errs, field.NotFound(p.Child("source"), b.Source))
	case len(src.ConnectionParameters) == 0:
		errs = append(errs, field.Invalid(p.Child("source"), b.Source, "has no connectionParameters to clone it through"))
	}
	errs = append(errs, validateIdentifier(p.Child("database"), b.Database)...)
	errs = append(errs, validateIdentifier(p.Child("owner"), b.Owner)...)
	if b.Secret != nil {
		errs = append(errs, validateSecretName(p.Child("secret", "name"), b.Secret.Name)...)
	}
	return errs
}

func (s *ClusterSpec) externalCluster(name string) *ExternalCluster {
	for i := range s.ExternalClusters {
		if s.ExternalClusters[i].Name == name {
			return &s.ExternalClusters[i]
		}
	}
	return nil
}

// BaseBackupSource returns the external cluster bootstrap.pg_basebackup
// names.
func (s *ClusterSpec) BaseBackupSource() *ExternalCluster {
	if s.Bootstrap == nil || s.Bootstrap.PgBaseBackup == nil {
		return nil
	}
	return s.externalCluster(s.Bootstrap.PgBaseBackup.Source)
}

// RecoverySource returns the external cluster bootstrap.recovery names.
func (s *ClusterSpec) RecoverySource() *ExternalCluster {
	if s.Bootstrap == nil || s.Bootstrap.Recovery == nil {
		return nil
	}
	for i := range s.ExternalClusters {
		if s.ExternalClusters[i].Name == s.Bootstrap.Recovery.Source {
			return &s.ExternalClusters[i]
		}
	}
	return nil
}

func (s *ClusterSpec) validateRecovery(p *field.Path) field.ErrorList {
	r := s.Bootstrap.Recovery
	var errs field.ErrorList
	if s.Bootstrap.InitDB != nil {
		errs = append(errs, field.Forbidden(p, "bootstrap.initdb and bootstrap.recovery exclude each other: choose one"))
	}
	src := s.RecoverySource()
	switch {
	case r.VolumeSnapshots != nil:
		errs = append(errs, s.validateVolumeSnapshots(p)...)
	case r.Backup != nil && r.Source != "":
		errs = append(errs, field.Forbidden(p.Child("backup"), "source names the recovery source already: give source or backup, not both"))
	case r.Backup != nil:
		errs = append(errs, validateSecretName(p.Child("backup", "name"), r.Backup.Name)...)
		if t := r.RecoveryTarget; t != nil && t.BackupID != "" {
			errs = append(errs, field.Forbidden(p.Child("recoveryTarget", "backupID"), "the Backup object named by backup says which backup: leave backupID out"))
		}
	case r.Source == "":
		errs = append(errs, field.Required(p.Child("source"), "the name of an entry of spec.externalClusters"))
	case src == nil:
		errs = append(errs, field.NotFound(p.Child("source"), r.Source))
	case src.BarmanObjectStore != nil && s.Backup != nil && s.Backup.BarmanObjectStore != nil:
		own, from := s.Backup.BarmanObjectStore, src.BarmanObjectStore
		if sameStore(own, from) {
			errs = append(errs, field.Invalid(field.NewPath("spec", "backup", "barmanObjectStore", "serverName"), own.ServerName,
				fmt.Sprintf("is where the recovery source %q keeps its backups: a recovered cluster archives to its own place (set another serverName or destinationPath)", src.Name)))
		}
	}
	errs = append(errs, validateIdentifier(p.Child("database"), r.Database)...)
	errs = append(errs, validateIdentifier(p.Child("owner"), r.Owner)...)
	if r.Secret != nil {
		errs = append(errs, validateSecretName(p.Child("secret", "name"), r.Secret.Name)...)
	}
	if t := r.RecoveryTarget; t != nil {
		errs = append(errs, validateRecoveryTarget(t, p.Child("recoveryTarget"))...)
	}
	return errs
}

func sameStore(a, b *BarmanObjectStoreConfiguration) bool {
	la, errA := ParseDestinationPath(a.DestinationPath)
	lb, errB := ParseDestinationPath(b.DestinationPath)
	ea, _ := ParseEndpointURL(a.EndpointURL)
	eb, _ := ParseEndpointURL(b.EndpointURL)
	return errA == nil && errB == nil && strings.EqualFold(ea.Host, eb.Host) && ea.Port == eb.Port &&
		la == lb && a.ServerName == b.ServerName
}

var (
	lsnPattern = regexp.MustCompile(`^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$`)
	xidPattern = regexp.MustCompile(`^[0-9]{1,20}$`)
)

// targetTimeLayouts are the formats targetTime accepts; each carries a
// time zone, since a recovery target without one would depend on the
// server's setting.
var targetTimeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05Z07",
}

// ParseTargetTime reads a recoveryTarget.targetTime.
func ParseTargetTime(s string) (time.Time, error) {
	for _, l := range targetTimeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("must be a timestamp with a time zone, such as 2026-12-06T10:00:00Z or 2026-12-06 10:00:00.123+00")
}

func validateRecoveryTarget(t *RecoveryTarget, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	set := 0
	if t.TargetTime != "" {
		set++
		if _, err := ParseTargetTime(t.TargetTime); err != nil {
			errs = append(errs, field.Invalid(p.Child("targetTime"), truncate(t.TargetTime), err.Error()))
		}
	}
	if t.TargetLSN != "" {
		set++
		if !lsnPattern.MatchString(t.TargetLSN) {
			errs = append(errs, field.Invalid(p.Child("targetLSN"), truncate(t.TargetLSN), "must be a WAL location such as 0/3000060"))
		}
	}
	if t.TargetXID != "" {
		set++
		if !xidPattern.MatchString(t.TargetXID) {
			errs = append(errs, field.Invalid(p.Child("targetXID"), truncate(t.TargetXID), "must be a transaction id (digits)"))
		}
	}
	if t.TargetName != "" {
		set++
		if err := safetext.Check(t.TargetName); err != nil {
			errs = append(errs, field.Invalid(p.Child("targetName"), "", err.Error()))
		} else if len(t.TargetName) > 63 {
			errs = append(errs, field.TooLong(p.Child("targetName"), "", 63))
		}
	}
	if t.TargetImmediate != nil && *t.TargetImmediate {
		set++
	}
	if set > 1 {
		errs = append(errs, field.Forbidden(p, "set at most one of targetTime, targetLSN, targetXID, targetName and targetImmediate"))
	}
	if t.BackupID != "" && !regexp.MustCompile(`^[0-9]{8}-[0-9]{6}F(_[0-9]{8}-[0-9]{6}[DI])?$`).MatchString(t.BackupID) {
		errs = append(errs, field.Invalid(p.Child("backupID"), truncate(t.BackupID), "must be a backup label as `pgward local backups` lists, such as 20261206-101500F"))
	}
	return errs
}

// truncate keeps error messages short when a value is long; values here are
// locations and names, never secrets.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:61] + "..."
	}
	return s
}

// validateBackupUpdate refuses changing where a running cluster archives:
// its place in the store is created with the cluster, and its WAL and
// backups are encrypted with one key for good. Compression, parallelism,
// retention and the credentials may change.
func validateBackupUpdate(oldB, newB *BackupConfiguration, p *field.Path) field.ErrorList {
	const why = "cannot change on a running cluster: its place in the object store and its encryption key are fixed when it is created (create a new cluster, e.g. by recovery, to move)"
	switch {
	case (oldB == nil || oldB.BarmanObjectStore == nil) != (newB == nil || newB.BarmanObjectStore == nil):
		return field.ErrorList{field.Forbidden(p, why)}
	case oldB == nil || oldB.BarmanObjectStore == nil:
		return nil
	}
	o, n := oldB.BarmanObjectStore, newB.BarmanObjectStore
	var errs field.ErrorList
	s := p.Child("barmanObjectStore")
	if o.DestinationPath != n.DestinationPath {
		errs = append(errs, field.Forbidden(s.Child("destinationPath"), why))
	}
	if o.EndpointURL != n.EndpointURL {
		errs = append(errs, field.Forbidden(s.Child("endpointURL"), why))
	}
	if o.ServerName != n.ServerName {
		errs = append(errs, field.Forbidden(s.Child("serverName"), why))
	}
	if (o.EncryptionKey == nil) != (n.EncryptionKey == nil) || (o.EncryptionKey != nil && *o.EncryptionKey != *n.EncryptionKey) {
		errs = append(errs, field.Forbidden(s.Child("encryptionKey"), why))
	}
	return errs
}
