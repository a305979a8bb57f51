package instance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/pgconf"
)

// Refusal is one line of a configuration PostgreSQL refused, in its words,
// with the manifest field it comes from.
type Refusal struct {
	// Field is the manifest's field ("spec.postgresql.parameters[timezone]"),
	// or "" when the line is pgward's own.
	Field string
	// Message is the server's message ("invalid value for parameter
	// "TimeZone": "Mars/Olympus"").
	Message string
}

func (r Refusal) String() string {
	if r.Field == "" {
		return r.Message
	}
	return r.Field + ": " + r.Message
}

// RefusedError is a configuration PostgreSQL refused.
type RefusedError []Refusal

func (e RefusedError) Error() string {
	parts := make([]string, len(e))
	for i, r := range e {
		parts[i] = r.String()
	}
	return "PostgreSQL refuses the configuration: " + strings.Join(parts, "; ")
}

var (
	logLineRE   = regexp.MustCompile(`(?m)^.*?\b(?:LOG|FATAL|ERROR):\s+(?:[0-9A-Z]{5}:\s+)?(.*)$`)
	paramNameRE = regexp.MustCompile(`parameter "([^"]+)"`)
)

// checkTimeout bounds one `postgres -C` run (it takes ~30 ms).
const checkTimeout = 20 * time.Second

// CheckConfig asks PostgreSQL itself whether it accepts a postgresql.conf:
// `postgres -C` reads the file with the server's own parser and runs every
// parameter's check hook (a time zone that exists, a locale that is
// installed, a stack depth the machine allows), then exits without
// starting anything. It runs as the unprivileged user PostgreSQL runs as
// (the server refuses root): the caller's, or cred's when root calls.
// scratch is a private directory, readable by that user, the candidate is
// written to.
func CheckConfig(ctx context.Context, binDir, scratch string, c *v1.Cluster, conf []byte, cred *syscall.Credential) error {
	if os.Geteuid() == 0 && cred == nil {
		return errors.New("checking a configuration: PostgreSQL does not run as root")
	}
	empty := filepath.Join(scratch, "empty")
	if err := os.MkdirAll(empty, 0o700); err != nil {
		return fmt.Errorf("checking a configuration: %w", err)
	}
	file := filepath.Join(scratch, "candidate.conf")
	if err := WriteFileAtomic(file, conf, 0o600); err != nil {
		return fmt.Errorf("checking a configuration: %w", err)
	}
	if cred != nil {
		for _, p := range []string{scratch, empty, file} {
			if err := os.Lchown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				return fmt.Errorf("checking a configuration: %w", err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "postgres"), "-D", empty, "--config-file="+file, "-C", "port") // #nosec G204 -- pgward's own paths
	cmd.Env = pgEnv()
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err == nil {
		return nil
	}
	var refusals RefusedError
	for _, m := range logLineRE.FindAllStringSubmatch(out.String(), -1) {
		msg := strings.TrimSpace(m[1])
		if strings.HasPrefix(msg, "skipping missing configuration file") || strings.Contains(msg, "contains errors") {
			continue
		}
		refusals = append(refusals, Refusal{Field: fieldOf(c, msg), Message: msg})
	}
	if len(refusals) == 0 {
		return fmt.Errorf("checking a configuration: postgres -C: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return refusals
}

// fieldOf names the manifest field a server message is about: the first
// parameter it names that the manifest sets (PostgreSQL spells some names
// in mixed case, TimeZone).
func fieldOf(c *v1.Cluster, msg string) string {
	for _, m := range paramNameRE.FindAllStringSubmatch(msg, -1) {
		for name := range c.Spec.PostgresConfiguration.Parameters {
			if strings.EqualFold(name, m[1]) {
				return fmt.Sprintf("spec.postgresql.parameters[%s]", name)
			}
		}
		if f, ok := localeProbes[strings.ToLower(m[1])]; ok {
			return f
		}
	}
	return ""
}

// localeProbes check initdb's locales with the server's own check: a
// locale parameter set to the manifest's locale is valid only if the
// machine has that locale installed, as initdb needs.
var localeProbes = map[string]string{
	"lc_monetary": "spec.bootstrap.initdb.localeCollate",
	"lc_numeric":  "spec.bootstrap.initdb.localeCType",
}

// PreflightCluster checks what only the machine that runs PostgreSQL can
// tell, before anything is written: postgresql.conf as rendered for c, the
// locales initdb will need, and huge pages when they are required.
// Errors name the manifest's fields.
func PreflightCluster(ctx context.Context, binDir string, c *v1.Cluster, cred *syscall.Credential) error {
	scratch, err := os.MkdirTemp("", "pgward-check-")
	if err != nil {
		return fmt.Errorf("checking the configuration: %w", err)
	}
	defer func() { _ = os.RemoveAll(scratch) }()
	in := pgconf.Instance{
		Name: c.Name + "-1", ClusterName: c.Name, Port: 5432, ListenAddresses: "127.0.0.1", SocketDir: scratch,
		HBAFile: filepath.Join(scratch, "pg_hba.conf"), IdentFile: filepath.Join(scratch, "pg_ident.conf"),
		ServerCertFile: filepath.Join(scratch, "tls.crt"), ServerKeyFile: filepath.Join(scratch, "tls.key"),
		ClientCAFile: filepath.Join(scratch, "ca.crt"), OSUser: "postgres",
	}
	conf, err := pgconf.RenderPostgresConf(c, in)
	if err != nil {
		return err
	}
	var refused RefusedError
	if err := CheckConfig(ctx, binDir, scratch, c, conf, cred); err != nil {
		if !errors.As(err, &refused) {
			return err
		}
	}
	if init := c.Spec.Bootstrap; init != nil && init.InitDB != nil {
		var probe bytes.Buffer
		for _, p := range []struct{ param, value string }{{"lc_monetary", init.InitDB.LocaleCollate}, {"lc_numeric", init.InitDB.LocaleCType}} {
			if p.value != "" {
				fmt.Fprintf(&probe, "%s = '%s'\n", p.param, p.value) // validated: letters, digits and _.@-
			}
		}
		if probe.Len() > 0 {
			var locales RefusedError
			if err := CheckConfig(ctx, binDir, scratch, c, probe.Bytes(), cred); err != nil {
				if !errors.As(err, &locales) {
					return err
				}
				for _, r := range locales {
					refused = append(refused, Refusal{Field: r.Field, Message: "locale not installed on this machine (" + r.Message + ")"})
				}
			}
		}
	}
	if r, ok := hugePagesMissing(c); ok {
		refused = append(refused, r)
	}
	if len(refused) > 0 {
		return refused
	}
	return nil
}

// hugePagesMissing refuses huge_pages = on on a machine with none: the
// server would fail at every start, after the check above passed.
func hugePagesMissing(c *v1.Cluster) (Refusal, bool) {
	for name, v := range c.Spec.PostgresConfiguration.Parameters {
		if name != "huge_pages" || !slices.Contains([]string{"on", "true", "yes", "1"}, strings.ToLower(v)) {
			continue
		}
		b, err := os.ReadFile("/proc/meminfo")
		if err != nil {
			return Refusal{}, false
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "HugePages_Total:" && f[1] == "0" {
				return Refusal{Field: "spec.postgresql.parameters[huge_pages]",
					Message: "this machine has no huge pages (HugePages_Total: 0 in /proc/meminfo): use try or off"}, true
			}
		}
	}
	return Refusal{}, false
}
