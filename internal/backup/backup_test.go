package backup

import (
	"errors"
	"strings"
	"testing"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
)

func TestRepoForAndRenderConfig(t *testing.T) {
	s := &v1.BarmanObjectStoreConfiguration{
		DestinationPath: "s3://bucket-1/some/path",
		EndpointURL:     "https://store.example:9000",
		EndpointCA:      &v1.SecretKeySelector{Name: "store", Key: "ca.crt"},
		ServerName:      "demo",
		Wal:             &v1.WalBackupConfiguration{Compression: "zstd", MaxParallel: 4},
		Data:            &v1.DataBackupConfiguration{Compression: "bzip2", Jobs: 3, ImmediateCheckpoint: true},
	}
	r, err := RepoFor(s, "2w", func(sel v1.SecretKeySelector) string { return "/secrets/" + sel.Name + "/" + sel.Key })
	if err != nil {
		t.Fatal(err)
	}
	want := Repo{Stanza: "demo", Bucket: "bucket-1", Path: "/some/path", Host: "store.example", Port: 9000,
		CAFile: "/secrets/store/ca.crt", WalCompress: "zst", DataCompress: "bz2", WalProcesses: 4, DataProcesses: 3,
		StartFast: true, RetentionDays: 14}
	if r != want {
		t.Fatalf("RepoFor = %+v\nwant %+v", r, want)
	}
	conf, err := RenderConfig(r, Secrets{AccessKey: "AK", SecretKey: "S/K+", CipherPass: "pass"}, Local{PGData: "/d", SocketDir: "/s", Port: 5432, StateDir: "/st"})
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"repo1-s3-endpoint=store.example", "repo1-storage-port=9000", "repo1-s3-region=us-east-1",
		"repo1-cipher-type=aes-256-cbc", "repo1-cipher-pass=pass", "repo1-storage-ca-file=/secrets/store/ca.crt",
		"repo1-retention-full-type=time", "repo1-retention-full=14", "[global:archive-push]", "process-max=4", "compress-type=zst",
		"[global:backup]", "compress-type=bz2", "start-fast=y", "[demo]", "pg1-path=/d", "repo1-path=/some/path"} {
		if !strings.Contains(string(conf), line+"\n") {
			t.Errorf("config lacks %q:\n%s", line, conf)
		}
	}
	// A secret that would add an option (or be trimmed) is refused, and
	// never echoed.
	for _, bad := range []string{"a\nrepo1-path=/x", " lead", "trail ", "", "a\x00b", "a\u2028repo1-path=/x", "a\u202eb", "a\xffb"} {
		_, err := RenderConfig(r, Secrets{AccessKey: "AK", SecretKey: bad, CipherPass: "p"}, Local{PGData: "/d", SocketDir: "/s", Port: 1, StateDir: "/st"})
		if err == nil || (bad != "" && strings.Contains(err.Error(), bad)) {
			t.Errorf("secret %q: %v", bad, err)
		}
	}
}

func TestCommandsQuoteForTheShell(t *testing.T) {
	got := ArchiveCommand("/usr/bin/pgbackrest", "/a dir/it's.conf", "demo")
	want := `'/usr/bin/pgbackrest' --config='/a dir/it'\''s.conf' --stanza='demo' archive-push %p`
	if got != want {
		t.Errorf("ArchiveCommand = %s\nwant %s", got, want)
	}
	if got := RestoreCommand("/b", "/c", "s"); got != `'/b' --config='/c' --stanza='s' archive-get %f "%p"` {
		t.Errorf("RestoreCommand = %s", got)
	}
}

func TestChooseSet(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	backups := []Info{
		{Label: "20261206-100000F", Stop: t0, StopLSN: "0/3000100"},
		{Label: "20261206-110000F", Stop: t0.Add(time.Hour), StopLSN: "0/9000100"},
	}
	for _, c := range []struct {
		name   string
		target *v1.RecoveryTarget
		want   string
		err    string
	}{
		{"latest", nil, "20261206-110000F", ""},
		{"time between", &v1.RecoveryTarget{TargetTime: "2026-12-06T10:30:00Z"}, "20261206-100000F", ""},
		{"time after both", &v1.RecoveryTarget{TargetTime: "2026-12-06 12:00:00+00"}, "20261206-110000F", ""},
		{"time within the stop second", &v1.RecoveryTarget{TargetTime: "2026-12-06T11:00:00.5Z"}, "20261206-100000F", ""},
		{"time before all", &v1.RecoveryTarget{TargetTime: "2026-12-06T09:00:00Z"}, "", "before the first backup"},
		{"lsn", &v1.RecoveryTarget{TargetLSN: "0/5000000"}, "20261206-100000F", ""},
		{"lsn before all", &v1.RecoveryTarget{TargetLSN: "0/1000000"}, "", "targetLSN 0/1000000 is before the first backup"},
		{"named", &v1.RecoveryTarget{BackupID: "20261206-100000F"}, "20261206-100000F", ""},
		{"named missing", &v1.RecoveryTarget{BackupID: "20261206-120000F"}, "", "no backup"},
		{"xid uses the newest", &v1.RecoveryTarget{TargetXID: "123"}, "20261206-110000F", ""},
	} {
		got, err := ChooseSet(backups, c.target)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || got.Label != c.want {
			t.Errorf("%s: %s %v, want %s", c.name, got.Label, err, c.want)
		}
	}
	if _, err := ChooseSet(nil, nil); err == nil {
		t.Error("no backups: no error")
	}
}

func TestRecoverySettings(t *testing.T) {
	yes := true
	got := RecoverySettings(&v1.RecoveryTarget{TargetTime: "2026-12-06T10:30:00.25+02:00", Exclusive: &yes})
	want := [][2]string{{"recovery_target_action", "promote"}, {"recovery_target_timeline", "latest"},
		{"recovery_target_time", "2026-12-06 08:30:00.25+00"}, {"recovery_target_inclusive", "off"}}
	if len(got) != len(want) {
		t.Fatalf("%v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%v, want %v", got[i], want[i])
		}
	}
}

func TestExplainNamesTheField(t *testing.T) {
	for out, want := range map[string]string{
		"ERROR: [049]: unable to get address for 'nowhere': [-2] Name or service not known":                     "endpointURL",
		"ERROR: [095]: unable to find hostname '127.0.0.1' in certificate common name":                          "endpointCA",
		"ERROR: [039]: HTTP request failed with 403 (Forbidden):\n*** Response Content ***: InvalidAccessKeyId": "s3Credentials",
		"ERROR: [039]: HTTP request failed with 404 (Not Found): NoSuchBucket":                                  "destinationPath",
		"ERROR: [029]: unable to decrypt: cipher final":                                                         "encryptionKey",
	} {
		err := Explain("x", out, errors.New("exit status 1"))
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %s", out, err, want)
		}
	}
}

// TestParseInfoWrongKey: what pgBackRest 2.45 prints for a repository read
// with the wrong passphrase (the decrypted garbage shortened) names the key.
func TestParseInfoWrongKey(t *testing.T) {
	out := `[{"archive":[],"backup":[],"cipher":"aes-256-cbc","db":[],"name":"s","repo":[{"cipher":"aes-256-cbc","key":1,"status":{"code":99,"message":"[FormatError] unable to load info file '/k/backup/s/backup.info' or '/k/backup/s/backup.info.copy':\nFormatError: key/value found outside of section at line 1: \u0001x\nHINT: backup.info cannot be opened and is required to perform a backup."}}],"status":{"code":99,"lock":{"backup":{"held":false}},"message":"other"}}]`
	_, err := ParseInfo([]byte(out))
	if err == nil || !strings.Contains(err.Error(), "encryptionKey") {
		t.Errorf("wrong key: %v", err)
	}
	// Garbage that is not even JSON says the same.
	if _, err := ParseInfo([]byte("[{\"status\":{\"message\":\"\x01\x02")); err == nil || !strings.Contains(err.Error(), "encryptionKey") {
		t.Errorf("unparsable: %v", err)
	}
}
