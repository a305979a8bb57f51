package instance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"

	v1 "github.com/pgward/pgward/api/v1"
)

// resolvedSQL reads the SQL the runtime resolved from bootstrap.initdb's
// Secret and ConfigMap references (config bootstrapSQLFile). A cluster
// with references and no file is refused: running the inline SQL alone
// would accept the references and ignore them.
func (m *Manager) resolvedSQL() (*v1.ResolvedSQL, error) {
	out := &v1.ResolvedSQL{}
	if !m.cluster.Spec.HasSQLRefs() {
		return out, nil
	}
	if m.cfg.BootstrapSQLFile == "" {
		return nil, errors.New("spec.bootstrap.initdb: SQL references are set but the runtime handed over no bootstrapSQLFile")
	}
	b, err := os.ReadFile(m.cfg.BootstrapSQLFile)
	if err != nil {
		return nil, fmt.Errorf("spec.bootstrap.initdb SQL references: %w", err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("spec.bootstrap.initdb SQL references: %s: %w", m.cfg.BootstrapSQLFile, err)
	}
	return out, nil
}

// importDir holds the dumps of an import, outside PGDATA, removed after.
const importDir = "import"

// importDatabases runs bootstrap.initdb.import on the freshly initialised
// primary (socket only, started once for the bootstrap): pg_dump in
// directory format from the external cluster over the verified TLS
// connection the clone uses (the password in a 0600 pgpass file removed
// after, never on a command line), then pg_restore over the local socket.
// Everything runs as the instance's OS user.
func (m *Manager) importDatabases(ctx context.Context, conn, appConn *pgx.Conn) error {
	init := m.cluster.Spec.Bootstrap.InitDB
	im := init.Import
	field := "spec.bootstrap.initdb.import"
	src := m.cluster.Spec.ImportSourceCluster()
	if src == nil {
		return fmt.Errorf("%s.source.externalCluster %q is not an external cluster", field, im.Source.ExternalCluster)
	}
	conninfo, cleanup, err := m.externalConnInfo(src, clonePassFile) // removed by cleanup, like a clone's
	if err != nil {
		return fmt.Errorf("spec.externalClusters[%s]: %w", src.Name, err)
	}
	defer cleanup()
	dir := filepath.Join(m.cfg.ConfDir, importDir)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	m.setPhase(PhaseImport)
	dbs := im.Databases
	if im.Type == v1.ImportMonolith {
		roles, err := m.sourceNames(ctx, conninfo, im.Roles, rolesQuery, field+".roles")
		if err != nil {
			return err
		}
		if err := m.importRoles(ctx, conn, conninfo, roles, init.Owner); err != nil {
			return fmt.Errorf("%s.roles: %w", field, err)
		}
		if dbs, err = m.sourceNames(ctx, conninfo, im.Databases, databasesQuery, field+".databases"); err != nil {
			return err
		}
	}
	for _, db := range dbs {
		target := init.Database
		if im.Type == v1.ImportMonolith {
			if db == init.Database {
				return fmt.Errorf("%s.databases: the source's database %q is the application database pgward creates (bootstrap.initdb.database)", field, db)
			}
			target = db
			if err := createImportDatabase(ctx, conn, init, db); err != nil {
				return fmt.Errorf("%s.databases: %w", field, err)
			}
		}
		if err := m.dumpAndRestore(ctx, conninfo, db, target, filepath.Join(dir, db)); err != nil {
			return fmt.Errorf("%s: database %q: %w", field, db, err)
		}
	}
	return runPostInit(ctx, appConn, im.PostImportApplicationSQL, field+".postImportApplicationSQL")
}

// dumpAndRestore copies one database: pg_dump -Fd from the source, then
// pg_restore into target. A microservice import gives every object to the
// application owner (--no-owner --no-privileges --role); a monolith
// import keeps owners and privileges (its roles were imported first).
func (m *Manager) dumpAndRestore(ctx context.Context, conninfo, db, target, out string) error {
	init := m.cluster.Spec.Bootstrap.InitDB
	im := init.Import
	dump := []string{"--format=directory", "--file=" + out, "--no-password"}
	if im.SchemaOnly {
		dump = append(dump, "--schema-only")
	}
	dump = append(dump, im.PgDumpExtraOptions...)
	// The later dbname wins in a libpq conninfo; db is a validated
	// identifier or a name the source listed that passed the same check.
	dump = append(dump, "--dbname="+conninfo+" dbname="+quoteConnValue(db))
	if err := runTool(ctx, m.cfg.PGBinDir, "pg_dump", nil, dump...); err != nil {
		return err
	}
	restore := []string{"--host=" + m.cfg.SocketDir, "--port=" + strconv.Itoa(m.cfg.Port), "--username=postgres",
		"--no-password", "--dbname=" + target}
	if im.SchemaOnly {
		restore = append(restore, "--section=pre-data", "--section=post-data")
	}
	if im.Type == v1.ImportMicroservice {
		restore = append(restore, "--no-owner", "--no-privileges", "--role="+init.Owner)
	}
	restore = append(restore, im.PgRestoreExtraOptions...)
	restore = append(restore, out)
	return runTool(ctx, m.cfg.PGBinDir, "pg_restore", nil, restore...)
}

const (
	// rolesQuery lists the source's ordinary roles for roles: ["*"]:
	// never a superuser, a replication role or PostgreSQL's own.
	rolesQuery = `SELECT rolname FROM pg_roles WHERE rolname !~ '^pg_' AND NOT rolsuper AND NOT rolreplication ORDER BY 1`
	// databasesQuery lists the source's databases for databases: ["*"].
	databasesQuery = `SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate AND datname <> 'postgres' ORDER BY 1`
)

var importNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// sourceNames returns the names listed, or for "*" those the source has
// (query), each checked as the manifest's names are.
func (m *Manager) sourceNames(ctx context.Context, conninfo string, listed []string, query, field string) ([]string, error) {
	if len(listed) != 1 || listed[0] != "*" {
		return listed, nil
	}
	out, err := m.sourceQuery(ctx, conninfo, query)
	if err != nil {
		return nil, fmt.Errorf("%s: listing the source's names: %w", field, err)
	}
	var names []string
	for _, n := range strings.Fields(out) {
		if field == "spec.bootstrap.initdb.import.roles" && v1.IsReservedImportRole(n, m.cluster.Spec.Bootstrap.InitDB.Owner) {
			continue
		}
		if !importNameRE.MatchString(n) {
			return nil, fmt.Errorf("%s: the source's %q is not a lower-case identifier: list the names to import instead of \"*\"", field, n)
		}
		names = append(names, n)
	}
	return names, nil
}

// sourceQuery runs one query on the source with psql (the conninfo's
// TLS and pgpass handling are libpq's), unaligned, one row per line.
func (m *Manager) sourceQuery(ctx context.Context, conninfo, query string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(m.cfg.PGBinDir, "psql"), "-X", "-A", "-t", "-q", // #nosec G204 -- pgward's own paths, validated values
		"-v", "ON_ERROR_STOP=1", "-F", "\t", "--no-password", "-c", query, "--dbname="+conninfo)
	cmd.Env = pgEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("psql: %w: %s", err, strings.TrimSpace(lastLines(stderr.String(), 5)))
	}
	return stdout.String(), nil
}

// importRoles creates the roles with the source's LOGIN, CREATEDB,
// INHERIT, CONNECTION LIMIT and VALID UNTIL, and the memberships among
// them. Passwords are not copied (a SCRAM verifier would only be readable
// by a superuser of the source, and copying secrets silently is not what
// an import should do): set them with managed roles or ALTER ROLE. Never
// SUPERUSER, REPLICATION, BYPASSRLS or CREATEROLE: an import must not make
// a role more powerful than pgward lets a manifest make one.
func (m *Manager) importRoles(ctx context.Context, conn *pgx.Conn, conninfo string, roles []string, owner string) error {
	if len(roles) == 0 {
		return nil
	}
	quoted := make([]string, len(roles))
	for i, r := range roles {
		quoted[i] = literal(r)
	}
	list := strings.Join(quoted, ",")
	out, err := m.sourceQuery(ctx, conninfo, `SELECT rolname, rolcanlogin, rolcreatedb, rolinherit, rolconnlimit, coalesce(rolvaliduntil::text, '')
FROM pg_roles WHERE rolname IN (`+list+`) ORDER BY 1`)
	if err != nil {
		return err
	}
	found := map[string]bool{}
	for line := range strings.SplitSeq(strings.Trim(out, "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 6 || !slices.Contains(roles, f[0]) {
			continue
		}
		name := f[0]
		found[name] = true
		opts := []string{attr(f[1], "LOGIN"), attr(f[2], "CREATEDB"), attr(f[3], "INHERIT"),
			"NOSUPERUSER", "NOREPLICATION", "NOBYPASSRLS", "NOCREATEROLE"}
		if n, err := strconv.Atoi(f[4]); err == nil {
			opts = append(opts, "CONNECTION LIMIT "+strconv.Itoa(n))
		}
		if f[5] != "" {
			opts = append(opts, "VALID UNTIL "+literal(f[5]))
		}
		for _, s := range []string{ensureRole(name, "NOLOGIN"), "ALTER ROLE " + ident(name) + " WITH " + strings.Join(opts, " ")} {
			if _, err := conn.Exec(ctx, s); err != nil {
				return fmt.Errorf("role %q: %w", name, err)
			}
		}
	}
	var missing []string
	for _, r := range roles {
		if !found[r] {
			missing = append(missing, r)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the source has no role %s", strings.Join(missing, ", "))
	}
	out, err = m.sourceQuery(ctx, conninfo, `SELECT r.rolname, u.rolname FROM pg_auth_members a
JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles u ON u.oid = a.member
WHERE r.rolname IN (`+list+`) AND u.rolname IN (`+list+`) ORDER BY 1, 2`)
	if err != nil {
		return err
	}
	for line := range strings.SplitSeq(strings.Trim(out, "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 2 || !found[f[0]] || !found[f[1]] || f[0] == owner || f[1] == owner {
			continue
		}
		if _, err := conn.Exec(ctx, "GRANT "+ident(f[0])+" TO "+ident(f[1])); err != nil {
			return fmt.Errorf("membership of %q in %q: %w", f[1], f[0], err)
		}
	}
	return nil
}

func attr(v, name string) string {
	if v == "t" {
		return name
	}
	return "NO" + name
}

// createImportDatabase makes an empty database for a monolith import,
// with the cluster's encoding and locales (template0 takes any).
func createImportDatabase(ctx context.Context, conn *pgx.Conn, init *v1.BootstrapInitDB, name string) error {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return fmt.Errorf("database %q exists already (made by postInitSQL?): an import fills a new one", name)
	}
	stmt := fmt.Sprintf("CREATE DATABASE %s TEMPLATE template0 ENCODING %s LC_COLLATE %s LC_CTYPE %s",
		ident(name), literal(init.Encoding), literal(init.LocaleCollate), literal(init.LocaleCType))
	if init.LocaleProvider == v1.LocaleProviderICU {
		stmt += " LOCALE_PROVIDER icu ICU_LOCALE " + literal(init.ICULocale)
	}
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("creating database %q: %w", name, err)
	}
	return nil
}
