// Package backup keeps a cluster's WAL and base backups in an
// S3-compatible object store, encrypted on the client, through pgBackRest
// (chosen by measurement: docs/backup.md). It turns the Cluster's
// barmanObjectStore block into pgBackRest's configuration, runs pgBackRest
// with a clean environment, reads its answers, and decides which backup a
// recovery starts from. It owns no process: the instance manager calls it.
package backup

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/safetext"
)

// Repo is one object store location, resolved from a Cluster: everything
// pgBackRest needs except the secrets.
type Repo struct {
	// Stanza names the cluster's backups (the serverName).
	Stanza string
	Bucket string
	// Path is where in the bucket the stanzas live ("/" or "/a/b").
	Path string
	Host string
	Port int
	// CAFile verifies the store's certificate ("" trusts the system's).
	CAFile string
	// WalCompress and DataCompress are pgBackRest compress-type values.
	WalCompress, DataCompress   string
	WalProcesses, DataProcesses int
	StartFast                   bool
	// RetentionDays expires full backups older than this, never the
	// newest (0 keeps everything).
	RetentionDays int
}

// Secrets are what pgBackRest must know and nobody else: the store's key
// pair and the passphrase every object is encrypted with.
type Secrets struct {
	Region     string
	AccessKey  string
	SecretKey  string
	CipherPass string
}

// SecretFiles reads a secret key as a file path (the runtime's layout).
type SecretFiles func(sel v1.SecretKeySelector) string

// RepoFor resolves an object store block; files locates secret keys that
// are read by path (the CA).
func RepoFor(s *v1.BarmanObjectStoreConfiguration, retention string, files SecretFiles) (Repo, error) {
	loc, err := v1.ParseDestinationPath(s.DestinationPath)
	if err != nil {
		return Repo{}, fmt.Errorf("destinationPath: %w", err)
	}
	ep, err := v1.ParseEndpointURL(s.EndpointURL)
	if err != nil {
		return Repo{}, fmt.Errorf("endpointURL: %w", err)
	}
	days, err := v1.RetentionDays(retention)
	if err != nil {
		return Repo{}, fmt.Errorf("retentionPolicy: %w", err)
	}
	r := Repo{
		Stanza: s.ServerName, Bucket: loc.Bucket, Path: loc.Path, Host: ep.Host, Port: ep.Port,
		WalCompress: "none", DataCompress: "none", WalProcesses: 1, DataProcesses: 2,
		RetentionDays: days,
	}
	if s.EndpointCA != nil {
		r.CAFile = files(*s.EndpointCA)
	}
	if w := s.Wal; w != nil {
		r.WalCompress = compressType(w.Compression)
		if w.MaxParallel > 0 {
			r.WalProcesses = w.MaxParallel
		}
	}
	if d := s.Data; d != nil {
		r.DataCompress = compressType(d.Compression)
		if d.Jobs > 0 {
			r.DataProcesses = d.Jobs
		}
		r.StartFast = d.ImmediateCheckpoint
	}
	if r.Stanza == "" {
		return Repo{}, errors.New("serverName is empty (SetDefaults names it after the cluster)")
	}
	return r, nil
}

// compressType maps Cloud Native PostgreSQL's names onto pgBackRest's.
func compressType(c string) string {
	switch c {
	case "gzip":
		return "gz"
	case "bzip2":
		return "bz2"
	case "lz4":
		return "lz4"
	case "zstd":
		return "zst"
	}
	return "none"
}

// Local is where pgBackRest finds the instance it serves and keeps its
// own state (never inside PGDATA: a clone would copy it).
type Local struct {
	PGData    string
	SocketDir string
	Port      int
	// StateDir holds pgBackRest's lock and spool directories.
	StateDir string
}

// RenderConfig writes pgBackRest's configuration file. It holds the
// secrets, so the caller writes it 0600 where only the PostgreSQL OS user
// reads it; they never reach a command line or an environment.
func RenderConfig(r Repo, s Secrets, l Local) ([]byte, error) {
	region := s.Region
	if region == "" {
		region = v1.DefaultBackupRegion
	}
	global := [][2]string{
		{"repo1-type", "s3"},
		{"repo1-s3-endpoint", r.Host},
		{"repo1-storage-port", strconv.Itoa(r.Port)},
		// Path style works with every S3-compatible store; virtual-host
		// style would need a certificate for <bucket>.<host>.
		{"repo1-s3-uri-style", "path"},
		{"repo1-s3-bucket", r.Bucket},
		{"repo1-s3-region", region},
		{"repo1-s3-key", s.AccessKey},
		{"repo1-s3-key-secret", s.SecretKey},
		{"repo1-path", r.Path},
		{"repo1-cipher-type", "aes-256-cbc"},
		{"repo1-cipher-pass", s.CipherPass},
		{"repo1-storage-verify-tls", "y"},
		{"lock-path", filepath.Join(l.StateDir, "lock")},
		{"spool-path", filepath.Join(l.StateDir, "spool")},
		{"log-path", filepath.Join(l.StateDir, "log")},
		// pgBackRest's messages go to the instance manager (stderr), which
		// keeps them in its log and status; no log files to rotate.
		{"log-level-file", "off"},
		// pgBackRest's own default umask makes its spool files 0640: with
		// a neutral umask off it keeps PostgreSQL's 0077 (files 0600).
		{"neutral-umask", "n"},
		{"log-level-console", "warn"},
		{"log-level-stderr", "off"},
		// A store that does not answer fails a command in 20 s instead of
		// pgBackRest's 60, so an outage shows in status quickly.
		{"io-timeout", "20"},
		{"db-timeout", "1800"},
	}
	if r.CAFile != "" {
		global = append(global, [2]string{"repo1-storage-ca-file", r.CAFile})
	}
	if r.RetentionDays > 0 {
		global = append(global, [2]string{"repo1-retention-full-type", "time"}, [2]string{"repo1-retention-full", strconv.Itoa(r.RetentionDays)})
	} else {
		// pgBackRest requires a retention; without a policy, keep all.
		global = append(global, [2]string{"repo1-retention-full-type", "count"}, [2]string{"repo1-retention-full", "9999999"})
	}
	sections := []struct {
		name string
		kv   [][2]string
	}{
		{"global", global},
		{"global:archive-push", [][2]string{
			// Asynchronous pushing uploads several segments at once while
			// archive_command still returns only once its segment is safe.
			{"archive-async", "y"},
			// A store that does not answer fails archive_command (and shows
			// in the status) after 30 s instead of pgBackRest's 60.
			{"archive-timeout", "30"},
			{"process-max", strconv.Itoa(r.WalProcesses)},
			{"compress-type", r.WalCompress},
		}},
		// A recovery fetches ahead in parallel (wal.maxParallel).
		{"global:archive-get", [][2]string{{"archive-async", "y"}, {"process-max", strconv.Itoa(max(2, r.WalProcesses))}}},
		{"global:backup", [][2]string{
			// Small files go up together: one encrypted object per file
			// cost ~3.5 s for a new cluster's 1,262 files (benchmarks.md).
			{"repo1-bundle", "y"},
			{"process-max", strconv.Itoa(r.DataProcesses)},
			{"compress-type", r.DataCompress},
			{"start-fast", yn(r.StartFast)},
		}},
		{"global:restore", [][2]string{{"process-max", strconv.Itoa(r.DataProcesses)}}},
		{r.Stanza, [][2]string{
			{"pg1-path", l.PGData},
			{"pg1-socket-path", l.SocketDir},
			{"pg1-port", strconv.Itoa(l.Port)},
			{"pg1-user", "postgres"},
		}},
	}
	var b bytes.Buffer
	b.WriteString("# Written by pgward's instance manager; holds secrets (0600).\n")
	for _, sec := range sections {
		fmt.Fprintf(&b, "\n[%s]\n", sec.name)
		for _, kv := range sec.kv {
			if err := iniValue(kv[1]); err != nil {
				// Never echo the value: it may be a secret.
				return nil, fmt.Errorf("pgBackRest option %s: %w", kv[0], err)
			}
			fmt.Fprintf(&b, "%s=%s\n", kv[0], kv[1])
		}
	}
	return b.Bytes(), nil
}

func yn(b bool) string {
	if b {
		return "y"
	}
	return "n"
}

// iniValue refuses what pgBackRest's configuration parser would read
// differently from what was meant: an empty value, a line break (a new
// option), or spaces at either end (trimmed).
func iniValue(v string) error {
	switch {
	case v == "":
		return errors.New("is empty")
	case strings.TrimSpace(v) != v:
		return errors.New("starts or ends with white space")
	case strings.ContainsFunc(v, safetext.Forbidden):
		return errors.New("contains a control or invisible character, or is not UTF-8")
	}
	return nil
}

// ShellQuote quotes s for /bin/sh, which runs archive_command and
// restore_command.
func ShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ArchiveCommand is archive_command for a configuration file at conf.
func ArchiveCommand(bin, conf, stanza string) string {
	return fmt.Sprintf("%s --config=%s --stanza=%s archive-push %%p", ShellQuote(bin), ShellQuote(conf), ShellQuote(stanza))
}

// RestoreCommand is restore_command fetching from the stanza at conf.
func RestoreCommand(bin, conf, stanza string) string {
	return fmt.Sprintf("%s --config=%s --stanza=%s archive-get %%f \"%%p\"", ShellQuote(bin), ShellQuote(conf), ShellQuote(stanza))
}
