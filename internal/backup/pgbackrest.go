package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// Tool runs pgBackRest against one configuration file and stanza.
type Tool struct {
	// Bin is pgBackRest's absolute path.
	Bin    string
	Config string
	Stanza string
	// Cred runs pgBackRest as another user (a root `pgward local up`
	// checking the store as the user PostgreSQL will run as).
	Cred *syscall.Credential
}

// FindBin locates pgBackRest.
func FindBin() (string, error) {
	p, err := exec.LookPath("pgbackrest")
	if err != nil {
		return "", errors.New("pgbackrest is not installed (apt-get install pgbackrest): spec.backup and bootstrap.recovery need it")
	}
	return p, nil
}

// run runs one pgBackRest command with a clean environment: inherited
// PGBACKREST_* or AWS_* variables would silently change what it does.
func (t Tool) run(ctx context.Context, args ...string) ([]byte, error) {
	full := append([]string{"--config=" + t.Config, "--stanza=" + t.Stanza}, args...)
	cmd := exec.CommandContext(ctx, t.Bin, full...) // #nosec G204 -- pgBackRest with options pgward builds; secrets stay in the config file
	env := []string{"LC_ALL=C", "LANG=C", "PATH=/usr/bin:/bin"}
	if tz := os.Getenv("TZ"); tz != "" {
		env = append(env, "TZ="+tz)
	}
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: t.Cred}
	cmd.Dir = "/"
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		return out.Bytes(), Explain(args[len(args)-1], out.String()+errOut.String(), err)
	}
	return out.Bytes(), nil
}

// StanzaCreate makes (or checks) the stanza in the store for the data
// directory at pgdata, reading its pg_control: PostgreSQL need not run.
func (t Tool) StanzaCreate(ctx context.Context, pgdata string) error {
	_, err := t.run(ctx, "--pg1-path="+pgdata, "--no-online", "stanza-create")
	return err
}

// Backup takes a full base backup of the running primary, then expires
// what the retention policy no longer keeps.
func (t Tool) Backup(ctx context.Context) error {
	_, err := t.run(ctx, "--type=full", "backup")
	return err
}

// Ping lists the repository's top: it fails the way an upload would
// (unreachable, refused certificate, wrong keys, missing bucket) without
// writing anything.
func (t Tool) Ping(ctx context.Context) error {
	_, err := t.run(ctx, "--io-timeout=5", "repo-ls")
	return err
}

// Restore writes the backup labelled set into pgdata (which must be
// empty or absent) without recovery settings: the instance manager writes
// those into its own configuration.
func (t Tool) Restore(ctx context.Context, set, pgdata string) error {
	_, err := t.run(ctx, "--pg1-path="+pgdata, "--set="+set, "--type=none", "restore")
	return err
}

// Info lists the stanza's backups, oldest first.
func (t Tool) Info(ctx context.Context) ([]Info, error) {
	out, err := t.run(ctx, "--output=json", "info")
	if err != nil {
		return nil, err
	}
	return ParseInfo(out)
}

// Info describes one base backup.
type Info struct {
	Label     string    `json:"label"`
	Type      string    `json:"type"`
	Start     time.Time `json:"start"`
	Stop      time.Time `json:"stop"`
	StartLSN  string    `json:"startLSN"`
	StopLSN   string    `json:"stopLSN"`
	StartWAL  string    `json:"startWAL"`
	StopWAL   string    `json:"stopWAL"`
	Size      int64     `json:"size"`
	RepoSize  int64     `json:"repoSize"`
	Timeline  int       `json:"timeline"`
	Encrypted bool      `json:"encrypted"`
}

// ParseInfo reads `pgbackrest info --output=json` for one stanza.
func ParseInfo(out []byte) ([]Info, error) {
	var stanzas []struct {
		Name   string `json:"name"`
		Cipher string `json:"cipher"`
		Status struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"status"`
		// Each repository's own status says why a stanza is in error.
		Repo []struct {
			Status struct {
				Message string `json:"message"`
			} `json:"status"`
		} `json:"repo"`
		Backup []struct {
			Label   string `json:"label"`
			Type    string `json:"type"`
			Archive struct {
				Start string `json:"start"`
				Stop  string `json:"stop"`
			} `json:"archive"`
			Info struct {
				Size       int64 `json:"size"`
				Repository struct {
					Delta int64 `json:"delta"`
				} `json:"repository"`
			} `json:"info"`
			LSN struct {
				Start string `json:"start"`
				Stop  string `json:"stop"`
			} `json:"lsn"`
			Timestamp struct {
				Start int64 `json:"start"`
				Stop  int64 `json:"stop"`
			} `json:"timestamp"`
		} `json:"backup"`
	}
	if err := json.Unmarshal(out, &stanzas); err != nil {
		// pgBackRest 2.45 prints what it decrypted, garbage included,
		// when the passphrase is wrong.
		return nil, fmt.Errorf("pgbackrest info: the backups' index is unreadable: check encryptionKey (it must be the key the backups were written with): %w", err)
	}
	if len(stanzas) != 1 {
		return nil, fmt.Errorf("pgbackrest info: expected one stanza, got %d", len(stanzas))
	}
	st := stanzas[0]
	// Code 1 is "missing stanza path": no backup was ever written there.
	if st.Status.Code != 0 && st.Status.Code != 2 && len(st.Backup) == 0 {
		msg := st.Status.Message
		for _, r := range st.Repo {
			if r.Status.Message != "" {
				msg = strings.ToValidUTF8(r.Status.Message, "?")
			}
		}
		if h := hint("", msg); h != "" {
			return nil, fmt.Errorf("pgbackrest info: %s (%s)", h, st.Status.Message)
		}
		return nil, fmt.Errorf("no backups of %q in the store: %s", st.Name, st.Status.Message)
	}
	out2 := make([]Info, 0, len(st.Backup))
	for _, b := range st.Backup {
		tl := 0
		if len(b.Archive.Start) >= 8 {
			var v int
			if _, err := fmt.Sscanf(b.Archive.Start[:8], "%08X", &v); err == nil {
				tl = v
			}
		}
		out2 = append(out2, Info{
			Label: b.Label, Type: b.Type,
			Start: time.Unix(b.Timestamp.Start, 0).UTC(), Stop: time.Unix(b.Timestamp.Stop, 0).UTC(),
			StartLSN: b.LSN.Start, StopLSN: b.LSN.Stop, StartWAL: b.Archive.Start, StopWAL: b.Archive.Stop,
			Size: b.Info.Size, RepoSize: b.Info.Repository.Delta, Timeline: tl,
			Encrypted: st.Cipher != "none",
		})
	}
	return out2, nil
}

// pgBackRest prints errors as "ERROR: [NNN]: message".
var errorLine = regexp.MustCompile(`(?m)ERROR: \[(\d+)\]: (.*)$`)

// Explain turns pgBackRest's output into an error that says what is wrong
// in the manifest's terms: a user sees which field to fix.
func Explain(command, output string, err error) error {
	m := errorLine.FindStringSubmatch(output)
	if m == nil {
		out := strings.TrimSpace(output)
		if len(out) > 400 {
			out = out[len(out)-400:]
		}
		return fmt.Errorf("pgbackrest %s: %w: %s", command, err, out)
	}
	code, msg := m[1], strings.TrimSpace(m[2])
	if h := hint(code, output[strings.Index(output, m[0]):]); h != "" {
		return fmt.Errorf("pgbackrest %s: %s (pgBackRest error %s: %s)", command, h, code, msg)
	}
	return fmt.Errorf("pgbackrest %s: error %s: %s", command, code, msg)
}

// hint says, in the manifest's terms, what a pgBackRest error means.
func hint(code, msg string) string {
	switch {
	case strings.Contains(msg, "unable to find hostname") || strings.Contains(msg, "certificate verify failed") ||
		strings.Contains(msg, "unable to verify certificate"):
		return "the store's TLS certificate is not trusted for that host: check endpointURL and endpointCA"
	case code == "049" || strings.Contains(msg, "unable to get address") || strings.Contains(msg, "Connection refused") ||
		strings.Contains(msg, "timeout"):
		return "the object store does not answer: check endpointURL, and that the store is up"
	case strings.Contains(msg, "InvalidAccessKeyId") || strings.Contains(msg, "SignatureDoesNotMatch") ||
		strings.Contains(msg, "403 (Forbidden)") || strings.Contains(msg, "AccessDenied"):
		return "the store refused the credentials: check s3Credentials"
	case strings.Contains(msg, "NoSuchBucket"):
		return "the bucket does not exist: check destinationPath"
	case code == "095" || strings.Contains(msg, "cipher") || strings.Contains(msg, "decrypt") ||
		strings.Contains(msg, "FormatError"): // an index decrypted with the wrong key reads as garbage
		return "the backups cannot be decrypted with this key: check encryptionKey (it must be the key they were written with)"
	case strings.Contains(msg, "does not match the database") || strings.Contains(msg, "system-id"):
		return "the store already holds another cluster's backups there: use another serverName or destinationPath"
	case strings.Contains(msg, "missing stanza path") || strings.Contains(msg, "does not exist"):
		return "no backups were found at that destinationPath and serverName"
	}
	return ""
}
