package v1

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ValidateIdentLine checks one pg_ident.conf line written by a user: exactly
// three fields (map name, system user, PostgreSQL user), no control
// characters, comments, file inclusions or include directives, and no
// mapping onto the streaming_replica role, whose authentication pgward
// owns. The system user may be a regular expression ("/^(.*)@corp$"), and
// the PostgreSQL user may refer to its capture ("\1").
func ValidateIdentLine(line string) error {
	if err := checkConfLine(line); err != nil {
		return err
	}
	// A trailing backslash joins the next line, which pgward wrote.
	if strings.HasSuffix(strings.TrimRight(line, " \t"), `\`) {
		return errors.New("the line ends with a backslash, which would continue it onto the next line")
	}
	fields, err := splitConfFields(line, false)
	if err != nil {
		return err
	}
	switch first := fields[0]; {
	case first == "include" || first == "include_dir" || first == "include_if_exists":
		return fmt.Errorf("%s directives are not allowed: they read other files of the server", first)
	case len(fields) != 3:
		return fmt.Errorf("a pg_ident line has 3 fields (map, system user, PostgreSQL user), this one has %d", len(fields))
	}
	for i, f := range fields {
		if err := checkIdentField(f); err != nil {
			return fmt.Errorf("%s: %w", identFieldNames[i], err)
		}
	}
	pgUser := strings.TrimPrefix(strings.Trim(fields[2], `"`), "+")
	switch {
	case strings.EqualFold(pgUser, ReplicationUser):
		return fmt.Errorf("mapping to %q is not allowed: pgward owns its authentication", ReplicationUser)
	case strings.EqualFold(pgUser, SuperuserRole):
		// A map onto postgres turns another identity (a certificate, a
		// Kerberos principal) into a superuser login. With superuser
		// access on, the superuser's own certificate (CN=postgres) logs
		// in without any map.
		return fmt.Errorf("mapping to the superuser %q is not allowed: it would make another identity a superuser", SuperuserRole)
	}
	return checkIdentSystemUser(strings.Trim(fields[1], `"`))
}

// SuperuserRole is PostgreSQL's superuser, which pgward creates and guards.
const SuperuserRole = "postgres"

// ControllerIdentity is the certificate common name of the controller (the
// operator or the local controller) on the status port.
const ControllerIdentity = "pgward-controller"

// MetricsIdentity is the certificate common name that may scrape the
// instances' metrics exporters; a map onto a role would turn a scraper's
// certificate into a login.
const MetricsIdentity = "pgward-metrics"

// MonitorRole is the role custom queries run as: a member of pg_monitor and
// nothing else, read-only by default, no password, reachable only through
// the instance's socket by the instance's OS user (pgward's peer map).
const MonitorRole = "pgward_monitor"

// reservedIdentities are the names pgward's own processes and certificates
// go by: a user map matching any of them would let whoever holds that
// identity (every instance holds the replication certificate, the OS user
// runs PostgreSQL) log in as another role.
var reservedIdentities = []string{ReplicationUser, ControllerIdentity, MetricsIdentity, MonitorRole, SuperuserRole, "root"}

// checkIdentSystemUser refuses a system user (a name, or a regular
// expression starting with "/") that matches one of pgward's identities.
func checkIdentSystemUser(sys string) error {
	expr, isRegexp := strings.CutPrefix(sys, "/")
	if !isRegexp {
		for _, id := range reservedIdentities {
			if strings.EqualFold(sys, id) {
				return fmt.Errorf("system user %q is not allowed: it is one of pgward's own identities", id)
			}
		}
		return nil
	}
	for _, c := range goOnlyRegexp {
		if strings.Contains(expr, c.syntax) {
			return fmt.Errorf("system user: the regular expression uses %s, which PostgreSQL's regular expressions do not have", c.what)
		}
	}
	re, err := regexp.Compile("(?i)" + expr)
	if err != nil {
		return errors.New("system user: a regular expression pgward cannot check (Go's syntax, a subset of PostgreSQL's): simplify it")
	}
	for _, id := range reservedIdentities {
		if re.MatchString(id) {
			return fmt.Errorf("system user: the regular expression matches %q, one of pgward's own identities", id)
		}
	}
	return nil
}

// goOnlyRegexp is syntax Go's regular expressions accept and PostgreSQL's
// (Spencer's ARE) refuse: pgward checks the expression with Go's engine, so
// it must not let through what the server cannot load.
var goOnlyRegexp = []struct{ syntax, what string }{
	{"(?P<", "a named group (?P<name>...)"},
	{"(?<", "a named group (?<name>...)"},
	{`\p`, `a Unicode class \p{...}`},
	{`\P`, `a Unicode class \P{...}`},
	{`\z`, `\z (use $)`},
	{`\Q`, `\Q...\E quoting`},
	{`\C`, `\C (any byte)`},
	{"(?U", "the flag U (ungreedy)"},
}

var identFieldNames = [3]string{"map", "system user", "PostgreSQL user"}

// checkIdentField checks one pg_ident field: a single name (PostgreSQL would
// read an unquoted comma as a list separator), with no @file inclusion.
func checkIdentField(field string) error {
	names, err := splitConfList(field)
	if err != nil {
		return err
	}
	if len(names) != 1 {
		return errors.New("put a value containing a comma in double quotes")
	}
	if strings.HasPrefix(names[0].text, "@") {
		return errors.New("@file inclusions are not allowed: they read other files of the server")
	}
	return nil
}
