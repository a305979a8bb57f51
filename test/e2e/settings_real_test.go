package e2e

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/pgward/pgward/api/v1"
)

// settingsQuery lists pg_settings as api/v1/postgres15_settings.tsv holds it.
const settingsQuery = `SELECT concat_ws(E'\t', name, vartype, coalesce(unit, ''), coalesce(min_val, ''), coalesce(max_val, ''),
	coalesce(array_to_string(enumvals, ','), ''), context) FROM pg_settings ORDER BY name`

// TestSettingsTableMatchesServer checks the parameter table pgward
// validates manifests with against the installed PostgreSQL. After a
// server upgrade, PGWARD_UPDATE_SETTINGS=1 rewrites the table.
func TestSettingsTableMatchesServer(t *testing.T) {
	_, sql := scratchPostgres(t)
	out, err := sql(settingsQuery)
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	path := filepath.Join(repoRoot, "api", "v1", "postgres15_settings.tsv")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	header, _, _ := strings.Cut(string(b), "\n")
	want := header + "\n" + strings.TrimSpace(out) + "\n"
	if os.Getenv("PGWARD_UPDATE_SETTINGS") != "" {
		if err := os.WriteFile(path, []byte(want), 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	table, server := settingsRows(string(b)), settingsRows(out)
	for name, row := range server {
		if name == "server_version_num" {
			continue
		}
		if table[name] != row {
			t.Errorf("%s: the server has %q, %s has %q; rerun with PGWARD_UPDATE_SETTINGS=1 and review the diff", name, row, path, table[name])
		}
	}
	for name := range table {
		if _, ok := server[name]; !ok && laterMinor[name] == "" {
			t.Errorf("%s is in %s but not in the server's pg_settings", name, path)
		}
	}
}

// laterMinor are parameters that PostgreSQL 15 gained in a minor release
// after the oldest one pgward is tested on: the table keeps them (pgward
// accepts them), and an older server refuses them when `up` asks it
// (postgres -C) before anything is written.
var laterMinor = map[string]string{
	"composite_type_mismatch": "15.20",
	"output_plugin_libraries": "15.20",
}

// settingsRows maps each row of the settings table (or the query's
// output) by parameter name.
func settingsRows(text string) map[string]string {
	rows := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, "\t")
		rows[name] = line
	}
	return rows
}

// serverRejects asks the real server which lines of a configuration file
// it refuses: `postgres -C` reads and checks the whole file, every
// parameter's value with the server's own parser and check hooks, and
// logs one line per bad value. It returns the names it refused.
func serverRejects(t *testing.T, dir, conf string) map[string]string {
	t.Helper()
	osUser := runAsUser(t)
	file := filepath.Join(dir, "candidate.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil { // #nosec G306 -- read by the run-as user
		t.Fatal(err)
	}
	args := []string{filepath.Join(filepath.Dir(psqlPath()), "postgres"), "-D", filepath.Join(dir, "empty"), "--config-file=" + file, "-C", "port"}
	cmd := exec.CommandContext(context.Background(), args[0], args[1:]...)
	if os.Geteuid() == 0 {
		cmd = exec.CommandContext(context.Background(), "runuser", append([]string{"-u", osUser, "--"}, args...)...)
	}
	out, err := cmd.CombinedOutput()
	rejected := map[string]string{}
	nameRE := regexp.MustCompile(`parameter "([^"]+)"`)
	for line := range strings.SplitSeq(string(out), "\n") {
		if !strings.Contains(line, "LOG:") || strings.Contains(line, "skipping missing configuration file") {
			continue
		}
		for _, m := range nameRE.FindAllStringSubmatch(line, -1) {
			rejected[strings.ToLower(m[1])] = line
		}
	}
	if os.Getenv("PGWARD_DEBUG_SETTINGS") != "" {
		t.Logf("%s", out)
	}
	if err == nil && len(rejected) > 0 {
		t.Fatalf("postgres -C succeeded but logged refusals:\n%s", out)
	}
	if err != nil && len(rejected) == 0 {
		t.Fatalf("postgres -C failed without naming a parameter: %v\n%s", err, out)
	}
	return rejected
}

// candidateValues are the values tried for one parameter: the edges of
// its range and beyond, every unit and some that are not, every spelling
// of its enum or Boolean values, and junk.
func candidateValues(vartype, unit, minVal, maxVal, enumvals string) []string {
	switch vartype {
	case "bool":
		return []string{"on", "off", "tr", "o", "of", "maybe", "1", "0", "YES", "n", "2", ""}
	case "enum":
		vals := strings.Split(enumvals, ",")
		out := append([]string{}, vals...)
		return append(out, strings.ToUpper(vals[0]), "bogus", "true", "no", "", vals[0]+" ")
	case "integer", "real":
		lo, _ := strconv.ParseFloat(minVal, 64)
		hi, _ := strconv.ParseFloat(maxVal, 64)
		f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
		out := []string{f(lo), f(hi), "abc", "1.5", " 16 ", "+5", "-0", "1e2", "0x10", "010", "08", "10kB", "1XB", "5mb"}
		if lo > math.MinInt32 {
			out = append(out, f(lo-1))
		}
		if hi < math.MaxInt32 {
			out = append(out, f(hi+1))
		}
		switch unit {
		case "B", "kB", "8kB", "MB":
			out = append(out, "1B", "1kB", "64kB", "1MB", "1.5MB", "1GB", "1TB", "1 GB", "1s")
		case "ms", "s", "min":
			out = append(out, "1us", "1ms", "1s", "1.5s", "1min", "1h", "1d", "1 d", "1MB")
		}
		return out
	}
	return nil
}

// TestParameterValidationAgainstPostgreSQL tries every settable parameter
// of the real server with the values above and checks that pgward's
// validation agrees with the server's verdict on each: it may be stricter
// only where listed below, never more lenient.
func TestParameterValidationAgainstPostgreSQL(t *testing.T) {
	osUser := runAsUser(t)
	dir := newStateDir(t, "settings-real")
	if err := os.MkdirAll(filepath.Join(dir, "empty"), 0o755); err != nil { // #nosec G301 -- read by the run-as user
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if out, err := exec.CommandContext(context.Background(), "chown", "-R", osUser, dir).CombinedOutput(); err != nil {
			t.Fatalf("chown: %v\n%s", err, out)
		}
	}
	b, err := os.ReadFile(filepath.Join(repoRoot, "api", "v1", "postgres15_settings.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	// The parameters this server knows, without starting it.
	describeCmd := exec.CommandContext(context.Background(), filepath.Join(filepath.Dir(psqlPath()), "postgres"), "--describe-config") // #nosec G204 -- the installed server
	asRunAsUser(t, describeCmd)
	describe, err := describeCmd.Output()
	if err != nil {
		t.Fatalf("postgres --describe-config: %v", err)
	}
	known := map[string]bool{}
	for _, line := range strings.Split(string(describe), "\n") {
		name, _, _ := strings.Cut(line, "\t")
		known[name] = true
	}
	type param struct {
		name   string
		values []string
	}
	var params []param
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Split(line, "\t")
		// Read-only (internal) parameters make the server stop at the name
		// check; pgward refuses them (TestValidateParameter).
		if len(f) != 7 || v1.IsFixedParameter(f[0]) || f[0] != strings.ToLower(f[0]) || f[6] == "internal" {
			continue
		}
		// One the installed minor release does not know would make the
		// server skip every check of the file (see laterMinor).
		if !known[f[0]] && laterMinor[f[0]] != "" {
			continue
		}
		if vals := candidateValues(f[1], f[2], f[3], f[4], f[5]); vals != nil {
			params = append(params, param{f[0], vals})
		}
	}
	// The candidate file configures the very server that checks it: a valid
	// log_min_messages = panic would silence the refusals of every line
	// after it. It goes last, so it can only hide its own verdict, which
	// the server then gives as "accepted" (and a valid value is).
	slices.SortStableFunc(params, func(a, b param) int {
		return cmp.Compare(boolInt(a.name == "log_min_messages"), boolInt(b.name == "log_min_messages"))
	})
	// Where pgward is stricter than the server, on purpose.
	stricter := map[string]string{
		// The server reads a trailing space as part of an enum value and
		// refuses it; both refuse. Kept for documentation only.
	}
	// What only the machine that runs PostgreSQL can tell.
	serverOnly := map[string]string{
		"max_stack_depth": "bounded by the stack size limit (ulimit -s) of the server's machine",
	}
	checked, disagreements := 0, 0
	for round := 0; ; round++ {
		var conf strings.Builder
		var tried []param
		for _, p := range params {
			if round < len(p.values) {
				fmt.Fprintf(&conf, "%s = '%s'\n", p.name, p.values[round])
				tried = append(tried, param{p.name, []string{p.values[round]}})
			}
		}
		if len(tried) == 0 {
			break
		}
		rejected := serverRejects(t, dir, conf.String())
		round := map[string]string{}
		for _, p := range tried {
			round[p.name] = p.values[0]
		}
		cross := v1.CrossParameterConflicts(round)
		for _, p := range tried {
			value := p.values[0]
			serverLine, serverRefuses := rejected[p.name]
			pgwardErr := v1.ValidateParameter(p.name, value)
			if msg, ok := cross[p.name]; ok && pgwardErr == nil {
				pgwardErr = errors.New(msg)
			}
			checked++
			switch {
			case serverRefuses && pgwardErr == nil && serverOnly[p.name] != "":
				// Checked at run time by asking the server (pgcheck).
			case serverRefuses && pgwardErr == nil:
				disagreements++
				t.Errorf("%s = %q: PostgreSQL refuses it (%s), pgward accepts it", p.name, value, serverLine)
			case !serverRefuses && pgwardErr != nil && stricter[p.name+"="+value] == "":
				disagreements++
				t.Errorf("%s = %q: PostgreSQL accepts it, pgward refuses it: %v", p.name, value, pgwardErr)
			}
		}
	}
	t.Logf("%d parameter values checked against PostgreSQL, %d disagreements", checked, disagreements)
	if checked < 2000 {
		t.Errorf("only %d values checked", checked)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
