package instance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/secrets"
)

// replicationRole is the user replicas stream as; it has no password and
// logs in only with a client certificate (see pg_hba).
const replicationRole = "streaming_replica"

// rewindFunctions are what a non-superuser pg_rewind needs to read the source.
var rewindFunctions = []string{
	"pg_catalog.pg_ls_dir(text, boolean, boolean)",
	"pg_catalog.pg_stat_file(text, boolean)",
	"pg_catalog.pg_read_binary_file(text)",
	"pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
}

// credentials is what reconcileRoles needs from the secrets.
type credentials struct {
	appUser, appPassword string
	// superPassword is empty when superuser access is off.
	superPassword string
}

// quietSession keeps the statements that carry password verifiers out of
// the server log whatever logging the manifest turned on, through every path
// a statement's text takes to the log: statement logging and its duration
// and sampling variants (log_min_duration_sample, log_transaction_sample_rate
// log a statement whatever log_statement says), the text of a failing
// statement, bind parameters, the DEBUG2 "parse" message of the extended
// protocol, and the debug_print_* parse trees (printed at LOG level). And it
// lets them commit without waiting for synchronous standbys that may not be
// there yet (a primary starting alone must not hang on its own role
// reconciliation). Every one of these is settable in a superuser session.
const quietSession = "SET log_statement = 'none'; SET log_min_duration_statement = -1; " +
	"SET log_min_duration_sample = -1; SET log_statement_sample_rate = 0; SET log_transaction_sample_rate = 0; " +
	"SET log_duration = off; SET log_min_error_statement = 'panic'; SET log_min_messages = 'warning'; " +
	"SET log_parameter_max_length = 0; SET log_parameter_max_length_on_error = 0; " +
	"SET debug_print_parse = off; SET debug_print_rewritten = off; SET debug_print_plan = off; " +
	// Preloaded modules keep statement texts too: pg_stat_statements (a
	// utility statement's text as written) and auto_explain. Set for a
	// module that is not loaded, these are harmless placeholders.
	"SET pg_stat_statements.track = 'none'; SET pg_stat_statements.track_utility = off; " +
	"SET auto_explain.log_min_duration = -1; " +
	"SET synchronous_commit = local"

// reconcileRoles makes the roles and the application database match the
// spec. Every statement is idempotent, so it runs on every primary start.
// Passwords are sent only as SCRAM verifiers computed here: the plaintext
// never reaches the server, its logs or pg_stat_activity.
func reconcileRoles(ctx context.Context, conn *pgx.Conn, c *v1.Cluster, cred credentials, rnd io.Reader) error {
	if _, err := conn.Exec(ctx, quietSession); err != nil {
		return fmt.Errorf("preparing session: %w", err)
	}
	var versionNum int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&versionNum); err != nil {
		return fmt.Errorf("reading server version: %w", err)
	}
	stmts := []string{
		ensureRole(replicationRole, "LOGIN REPLICATION"),
		"ALTER ROLE " + ident(replicationRole) + " WITH LOGIN REPLICATION NOSUPERUSER PASSWORD NULL",
	}
	if versionNum >= 150000 {
		// CHECKPOINT on a fresh primary before a pg_rewind (see docs).
		stmts = append(stmts, "GRANT pg_checkpoint TO "+ident(replicationRole))
	}
	for _, fn := range rewindFunctions {
		stmts = append(stmts, "GRANT EXECUTE ON FUNCTION "+fn+" TO "+ident(replicationRole))
	}

	stmts = append(stmts, monitorRoleStatements()...)

	init := c.Spec.Bootstrap.Application()
	appVerifier, err := secrets.SCRAMSHA256Verifier(cred.appPassword, rnd)
	if err != nil {
		return fmt.Errorf("computing the app owner's verifier: %w", err)
	}
	stmts = append(stmts,
		ensureRole(init.Owner, "LOGIN"),
		"ALTER ROLE "+ident(init.Owner)+" WITH LOGIN NOSUPERUSER NOREPLICATION PASSWORD "+literal(appVerifier),
	)
	if cred.superPassword != "" {
		v, err := secrets.SCRAMSHA256Verifier(cred.superPassword, rnd)
		if err != nil {
			return fmt.Errorf("computing the superuser's verifier: %w", err)
		}
		stmts = append(stmts, "ALTER ROLE postgres WITH PASSWORD "+literal(v))
	} else {
		// Without superuser access postgres is reachable only through the
		// instance's own socket, by the instance's OS user (peer auth).
		stmts = append(stmts, "ALTER ROLE postgres WITH PASSWORD NULL")
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("reconciling roles: %s: %w", redact(s), err)
		}
	}
	return ensureDatabase(ctx, conn, init)
}

// ensureDatabase creates the application database once. CREATE DATABASE
// cannot run inside a DO block, hence the separate existence check.
func ensureDatabase(ctx context.Context, conn *pgx.Conn, init *v1.BootstrapInitDB) error {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", init.Database).Scan(&exists); err != nil {
		return fmt.Errorf("looking up database %q: %w", init.Database, err)
	}
	if exists {
		return nil
	}
	// template0 takes any encoding and locale; template1 has initdb's,
	// which are the same, and what postInitTemplateSQL put there.
	template := "template0"
	if len(init.PostInitTemplateSQL) > 0 || init.PostInitTemplateSQLRefs != nil {
		template = "template1"
	}
	stmt := fmt.Sprintf("CREATE DATABASE %s OWNER %s TEMPLATE %s ENCODING %s LC_COLLATE %s LC_CTYPE %s",
		ident(init.Database), ident(init.Owner), template, literal(init.Encoding), literal(init.LocaleCollate), literal(init.LocaleCType))
	if init.LocaleProvider == v1.LocaleProviderICU {
		stmt += " LOCALE_PROVIDER icu ICU_LOCALE " + literal(init.ICULocale)
	}
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("creating database %q: %w", init.Database, err)
	}
	return nil
}

// runPostInit runs the user's post-initdb statements once, right after initdb.
func runPostInit(ctx context.Context, conn *pgx.Conn, stmts []string, where string) error {
	for i, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s[%d]: %w", where, i, err)
		}
	}
	return nil
}

func ensureRole(name, opts string) string {
	return fmt.Sprintf(`DO $pgward$ BEGIN
IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s) THEN CREATE ROLE %s %s; END IF;
END $pgward$`, literal(name), ident(name), opts)
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

// literal quotes a string constant. Standard-conforming strings are on in
// every supported version, so doubling single quotes is sufficient; values
// with NUL are rejected by validation before they get here.
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// redact hides password verifiers from error messages: everything from
// the first PASSWORD followed by a string constant (any case, any spacing)
// to the end of the statement.
func redact(stmt string) string {
	if loc := passwordLiteralRE.FindStringIndex(stmt); loc != nil {
		return stmt[:loc[0]] + "PASSWORD <redacted>"
	}
	return stmt
}

var passwordLiteralRE = regexp.MustCompile(`(?is)\bpassword\s*(e)?'`)

var errNoBootstrap = errors.New("spec.bootstrap.initdb is missing (defaults not applied?)")

// monitorRoleStatements make the role custom queries run as (see
// customqueries.go): it can log in only through the instance's socket as
// the instance's OS user (pgward's peer map; no password), reads what
// pg_monitor reads, and nothing else. Its sessions start read-only with a
// statement timeout and a cap on temporary files; the exporter adds a READ
// ONLY transaction it rolls back. temp_file_limit is a superuser setting,
// so the role cannot lift it.
func monitorRoleStatements() []string {
	r := ident(v1.MonitorRole)
	return []string{
		ensureRole(v1.MonitorRole, "LOGIN"),
		"ALTER ROLE " + r + " WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 4 PASSWORD NULL",
		"GRANT pg_monitor TO " + r,
		"ALTER ROLE " + r + " SET default_transaction_read_only = on",
		"ALTER ROLE " + r + " SET statement_timeout = '5s'",
		"ALTER ROLE " + r + " SET idle_in_transaction_session_timeout = '10s'",
		"ALTER ROLE " + r + " SET temp_file_limit = '64MB'",
		// Query texts may come from a Secret: keep them out of the server
		// log whatever the manifest's logging (superuser settings, which
		// the role cannot change back).
		"ALTER ROLE " + r + " SET log_statement = 'none'",
		"ALTER ROLE " + r + " SET log_min_duration_statement = -1",
		"ALTER ROLE " + r + " SET log_min_error_statement = 'panic'",
	}
}
