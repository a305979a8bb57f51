package instance

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
)

// databasesRecheck is how often a primary compares the declared databases
// with the server even when nothing declared changed: a database, schema
// or extension altered by hand is put back within it.
const databasesRecheck = 10 * time.Second

// databasesBudget bounds one pass over every declared database. A longer
// statement (ALTER DATABASE SET TABLESPACE copies the files) is cancelled
// and reported, and tried again at the next pass.
const databasesBudget = 10 * time.Second

// dbState is what the server has for a database.
type dbState struct {
	exists                bool
	owner                 string
	encoding              string
	collate, ctype        string
	provider, icuLocale   string
	isTemplate, allowConn bool
	connLimit             int64
	tablespace            string
}

// dbPlan turns a declared database and what the server has into the
// statements that make them agree (none when they do: a steady cluster
// writes nothing), and the differences it cannot repair: what CREATE
// DATABASE fixes for the database's life. Every name is quoted as an
// identifier and every value as a literal, on top of validation.
func dbPlan(want v1.DatabaseSpec, have dbState) (stmts []string, fixed []string) {
	name := ident(want.Name)
	if want.Ensure == "absent" {
		if !have.exists {
			return nil, nil
		}
		if have.isTemplate {
			// PostgreSQL refuses to drop a template database.
			stmts = append(stmts, "ALTER DATABASE "+name+" IS_TEMPLATE false")
		}
		// FORCE ends the database's sessions: the declaration says it
		// must go, and a session left open would keep it forever.
		return append(stmts, "DROP DATABASE "+name+" WITH (FORCE)"), nil
	}
	limit := int64(-1)
	if want.ConnectionLimit != nil {
		limit = *want.ConnectionLimit
	}
	allow := want.AllowConnections == nil || *want.AllowConnections
	tmpl := want.IsTemplate != nil && *want.IsTemplate
	if !have.exists {
		opts := []string{"OWNER " + ident(want.Owner)}
		if want.Template != "" {
			opts = append(opts, "TEMPLATE "+ident(want.Template))
		}
		for _, o := range []struct{ word, v string }{
			{"ENCODING", want.Encoding}, {"LOCALE", want.Locale}, {"LC_COLLATE", want.LocaleCollate},
			{"LC_CTYPE", want.LocaleCType}, {"LOCALE_PROVIDER", want.LocaleProvider}, {"ICU_LOCALE", want.ICULocale},
		} {
			if o.v != "" {
				opts = append(opts, o.word+" "+literal(o.v))
			}
		}
		if want.Tablespace != "" {
			opts = append(opts, "TABLESPACE "+ident(want.Tablespace))
		}
		opts = append(opts, "ALLOW_CONNECTIONS "+strconv.FormatBool(allow), "CONNECTION LIMIT "+strconv.FormatInt(limit, 10),
			"IS_TEMPLATE "+strconv.FormatBool(tmpl))
		return []string{"CREATE DATABASE " + name + " WITH " + strings.Join(opts, " ")}, nil
	}
	if want.Owner != have.owner {
		stmts = append(stmts, "ALTER DATABASE "+name+" OWNER TO "+ident(want.Owner))
	}
	var attrs []string
	if allow != have.allowConn {
		attrs = append(attrs, "ALLOW_CONNECTIONS "+strconv.FormatBool(allow))
	}
	if limit != have.connLimit {
		attrs = append(attrs, "CONNECTION LIMIT "+strconv.FormatInt(limit, 10))
	}
	if tmpl != have.isTemplate {
		attrs = append(attrs, "IS_TEMPLATE "+strconv.FormatBool(tmpl))
	}
	if len(attrs) > 0 {
		stmts = append(stmts, "ALTER DATABASE "+name+" WITH "+strings.Join(attrs, " "))
	}
	if want.Tablespace != "" && want.Tablespace != have.tablespace {
		stmts = append(stmts, "ALTER DATABASE "+name+" SET TABLESPACE "+ident(want.Tablespace))
	}
	collate, ctype := want.LocaleCollate, want.LocaleCType
	if collate == "" {
		collate = want.Locale
	}
	if ctype == "" {
		ctype = want.Locale
	}
	provider := map[string]string{"c": v1.LocaleProviderLibc, "i": v1.LocaleProviderICU}[have.provider]
	for _, f := range []struct{ field, want, have string }{
		{"encoding", v1.CanonicalEncoding(want.Encoding), have.encoding},
		{"localeCollate", collate, have.collate}, {"localeCType", ctype, have.ctype},
		{"localeProvider", want.LocaleProvider, provider}, {"icuLocale", want.ICULocale, have.icuLocale},
	} {
		if f.want != "" && f.want != f.have {
			fixed = append(fixed, fmt.Sprintf("spec.%s: the database has %q, fixed when it was created", f.field, f.have))
		}
	}
	return stmts, fixed
}

// schemaState and extensionState are what a database has.
type schemaState struct{ owner string }

type extensionState struct{ version, schema string }

// schemaPlan is one declared schema's statements; owner defaults to the
// database's. A schema to be absent is dropped only when empty
// (RESTRICT): objects in it are the application's, never dropped as a
// side effect.
func schemaPlan(want v1.DatabaseSchema, dbOwner string, have *schemaState) []string {
	name := ident(want.Name)
	if want.Ensure == "absent" {
		if have == nil {
			return nil
		}
		return []string{"DROP SCHEMA IF EXISTS " + name + " RESTRICT"}
	}
	owner := want.Owner
	if owner == "" {
		owner = dbOwner
	}
	if have == nil {
		return []string{"CREATE SCHEMA IF NOT EXISTS " + name + " AUTHORIZATION " + ident(owner)}
	}
	if have.owner != owner {
		return []string{"ALTER SCHEMA " + name + " OWNER TO " + ident(owner)}
	}
	return nil
}

// extensionPlan is one declared extension's statements. Without a
// version an installed extension keeps its own; dropping is RESTRICT, as
// for schemas.
func extensionPlan(want v1.DatabaseExtension, have *extensionState) []string {
	name := ident(want.Name)
	if want.Ensure == "absent" {
		if have == nil {
			return nil
		}
		return []string{"DROP EXTENSION IF EXISTS " + name + " RESTRICT"}
	}
	if have == nil {
		s := "CREATE EXTENSION IF NOT EXISTS " + name
		if want.Schema != "" {
			s += " SCHEMA " + ident(want.Schema)
		}
		if want.Version != "" {
			s += " VERSION " + literal(want.Version)
		}
		return []string{s}
	}
	var stmts []string
	if want.Version != "" && want.Version != have.version {
		stmts = append(stmts, "ALTER EXTENSION "+name+" UPDATE TO "+literal(want.Version))
	}
	if want.Schema != "" && want.Schema != have.schema {
		stmts = append(stmts, "ALTER EXTENSION "+name+" SET SCHEMA "+ident(want.Schema))
	}
	return stmts
}

// readDatabases reads the declared databases' declarations from the
// runtime's file; none without one.
func (m *Manager) readDatabases() ([]byte, []v1.DatabaseDeclaration, error) {
	if m.cfg.DatabasesFile == "" {
		return nil, nil, nil
	}
	b, err := os.ReadFile(m.cfg.DatabasesFile)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(strings.TrimSpace(string(b))) == 0) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading the declared databases: %w", err)
	}
	var decls []v1.DatabaseDeclaration
	if err := json.Unmarshal(b, &decls); err != nil {
		return nil, nil, fmt.Errorf("parsing the declared databases: %w", err)
	}
	return b, decls, nil
}

// reconcileDatabases makes the primary's databases what the runtime
// declared, when the declarations changed or every databasesRecheck. Each
// declaration is applied on its own: one that fails is reported in its
// result and the others still applied.
func (m *Manager) reconcileDatabases(ctx context.Context, now time.Time) {
	m.mu.Lock()
	running := m.primary && m.pool != nil && m.phase == PhaseRunning
	c := m.cluster
	m.mu.Unlock()
	if !running {
		return
	}
	raw, decls, err := m.readDatabases()
	digest := sha256.Sum256(raw)
	if err == nil && digest == m.dbDigest && now.Sub(m.dbCheckedAt) < databasesRecheck {
		return
	}
	var results []instanceapi.DatabaseResult
	if err != nil {
		m.log.Error("declared databases not readable", "err", err)
		results = []instanceapi.DatabaseResult{{Object: "", Message: err.Error()}}
	} else {
		results = m.applyDatabases(ctx, c, decls)
		m.dbDigest, m.dbCheckedAt = digest, now
	}
	m.mu.Lock()
	changed := !slices.Equal(m.dbResults, results)
	m.dbResults = results
	m.mu.Unlock()
	if changed {
		for _, r := range results {
			if !r.Applied {
				m.log.Error("declared database not reconciled; retrying", "database", r.Object, "err", r.Message)
			}
		}
	}
}

// applyDatabases applies each declaration, in order, and says how each
// went. A declaration the Cluster forbids (its application database
// dropped or given away) is refused here too: the runtimes check it
// before, this keeps the manager safe whoever wrote the file.
func (m *Manager) applyDatabases(ctx context.Context, c *v1.Cluster, decls []v1.DatabaseDeclaration) []instanceapi.DatabaseResult {
	out := make([]instanceapi.DatabaseResult, 0, len(decls))
	applied := 0
	// One budget for the pass, as for the roles: this runs in the
	// manager's loop, which also fences and executes commands.
	cctx, cancel := context.WithTimeout(ctx, databasesBudget)
	defer cancel()
	for _, d := range decls {
		res := instanceapi.DatabaseResult{Object: d.Object, Generation: d.Generation}
		if cctx.Err() != nil {
			res.Message = fmt.Sprintf("not reached in this pass (its %s were spent): retried within %s", databasesBudget, databasesRecheck)
			out = append(out, res)
			continue
		}
		errs := d.Spec.Validate(field.NewPath("spec"))
		if c != nil {
			errs = append(errs, c.CheckDatabase(&d.Spec, field.NewPath("spec"))...)
		}
		if agg := errs.ToAggregate(); agg != nil {
			res.Message = "refused: " + agg.Error()
			out = append(out, res)
			continue
		}
		n, msgs := m.applyDatabase(cctx, d.Spec)
		applied += n
		res.Applied = len(msgs) == 0
		res.Message = strings.Join(msgs, "; ")
		if len(res.Message) > 2048 {
			res.Message = res.Message[:2048]
		}
		out = append(out, res)
	}
	if applied > 0 {
		m.log.Info("declared databases reconciled", "statements", applied)
	}
	return out
}

// applyDatabase reconciles one database, then its schemas and extensions;
// it returns how many statements ran and every problem.
func (m *Manager) applyDatabase(cctx context.Context, want v1.DatabaseSpec) (int, []string) {
	conn, err := m.quietConn(cctx, "reconcile declared databases")
	if err != nil {
		return 0, []string{err.Error()}
	}
	defer func() { _ = conn.Close(context.Background()) }()
	have, err := readDatabase(cctx, conn, want.Name)
	if err != nil {
		return 0, []string{err.Error()}
	}
	if !have.exists && want.Ensure != "absent" && want.Template != "" {
		// A superuser may copy any database; only a template is meant to
		// be copied.
		t, err := readDatabase(cctx, conn, want.Template)
		switch {
		case err != nil:
			return 0, []string{err.Error()}
		case !t.exists || !t.isTemplate:
			return 0, []string{fmt.Sprintf("spec.template: %q is not a template database of the cluster (template0, template1 or one with isTemplate)", want.Template)}
		}
	}
	stmts, fixed := dbPlan(want, have)
	n := 0
	for _, s := range stmts {
		if _, err := conn.Exec(cctx, s); err != nil {
			return n, append(fixed, fmt.Sprintf("%s: %v", s, err))
		}
		n++
	}
	if want.Ensure == "absent" || (len(want.Schemas) == 0 && len(want.Extensions) == 0) {
		return n, fixed
	}
	cc, err := localConnConfig(m.cfg.SocketDir, m.cfg.Port, want.Name)
	if err != nil {
		return n, append(fixed, err.Error())
	}
	inside, err := pgx.ConnectConfig(cctx, cc)
	if err != nil {
		return n, append(fixed, fmt.Sprintf("connecting to database %q: %v", want.Name, err))
	}
	defer func() { _ = inside.Close(context.Background()) }()
	k, problems := applyInside(cctx, inside, want)
	return n + k, append(fixed, problems...)
}

// applyInside reconciles the schemas (those present first, so that an
// extension can go into one) and the extensions, then drops what is to be
// absent; each object's failure is reported and the others still run.
func applyInside(ctx context.Context, conn *pgx.Conn, want v1.DatabaseSpec) (int, []string) {
	var problems []string
	n := 0
	run := func(what string, stmts []string) {
		for _, s := range stmts {
			if _, err := conn.Exec(ctx, s); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", what, err))
				return
			}
			n++
		}
	}
	schemas, err := readSchemas(ctx, conn)
	if err != nil {
		return 0, []string{err.Error()}
	}
	exts, err := readExtensions(ctx, conn)
	if err != nil {
		return 0, []string{err.Error()}
	}
	for _, s := range want.Schemas {
		if s.Ensure != "absent" {
			run("schema "+s.Name, schemaPlan(s, want.Owner, schemas[s.Name]))
		}
	}
	for _, e := range want.Extensions {
		run("extension "+e.Name, extensionPlan(e, exts[e.Name]))
	}
	for _, s := range want.Schemas {
		if s.Ensure == "absent" {
			run("schema "+s.Name, schemaPlan(s, want.Owner, schemas[s.Name]))
		}
	}
	return n, problems
}

func readDatabase(ctx context.Context, conn *pgx.Conn, name string) (dbState, error) {
	var s dbState
	var limit int32
	err := conn.QueryRow(ctx, `SELECT pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding), d.datcollate, d.datctype,
		d.datlocprovider::text, coalesce(d.daticulocale, ''), d.datistemplate, d.datallowconn, d.datconnlimit, t.spcname
		FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace WHERE d.datname = $1`, name).
		Scan(&s.owner, &s.encoding, &s.collate, &s.ctype, &s.provider, &s.icuLocale, &s.isTemplate, &s.allowConn, &limit, &s.tablespace)
	if errors.Is(err, pgx.ErrNoRows) {
		return dbState{}, nil
	}
	if err != nil {
		return dbState{}, fmt.Errorf("reading database %q: %w", name, err)
	}
	s.exists, s.connLimit = true, int64(limit)
	return s, nil
}

func readSchemas(ctx context.Context, conn *pgx.Conn) (map[string]*schemaState, error) {
	rows, err := conn.Query(ctx, `SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace`)
	if err != nil {
		return nil, fmt.Errorf("reading schemas: %w", err)
	}
	defer rows.Close()
	out := map[string]*schemaState{}
	for rows.Next() {
		var name string
		var s schemaState
		if err := rows.Scan(&name, &s.owner); err != nil {
			return nil, fmt.Errorf("reading schemas: %w", err)
		}
		out[name] = &s
	}
	return out, rows.Err()
}

func readExtensions(ctx context.Context, conn *pgx.Conn) (map[string]*extensionState, error) {
	rows, err := conn.Query(ctx, `SELECT e.extname, e.extversion, n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace`)
	if err != nil {
		return nil, fmt.Errorf("reading extensions: %w", err)
	}
	defer rows.Close()
	out := map[string]*extensionState{}
	for rows.Next() {
		var name string
		var s extensionState
		if err := rows.Scan(&name, &s.version, &s.schema); err != nil {
			return nil, fmt.Errorf("reading extensions: %w", err)
		}
		out[name] = &s
	}
	return out, rows.Err()
}
