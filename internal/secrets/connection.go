package secrets

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/pgward/pgward/internal/safetext"
)

// Keys of a connection secret. They mean what they mean in CloudNativePG's
// basic-auth secrets so that applications written against it keep working;
// the ro- keys are pgward's own.
const (
	KeyUsername  = "username"
	KeyPassword  = "password"
	KeyDBName    = "dbname"
	KeyHost      = "host"
	KeyPort      = "port"
	KeyPgpass    = "pgpass"
	KeyURI       = "uri"
	KeyJDBCURI   = "jdbc-uri"
	KeyROURI     = "ro-uri"
	KeyROJDBCURI = "ro-jdbc-uri"
)

// AnyPort is the pgpass port field that matches every port.
const AnyPort = "*"

// Credentials are a role's login.
type Credentials struct {
	// Username is the role name.
	Username string
	// Password is the role's password in clear text.
	Password string
	// DBName is the database the credentials are meant for.
	DBName string
}

// String describes c without its password, so that logging a Credentials
// by mistake does not leak it.
func (c Credentials) String() string {
	return fmt.Sprintf("{Username:%s Password:%s DBName:%s}", c.Username, redacted(c.Password), c.DBName)
}

// GoString is String for the %#v verb.
func (c Credentials) GoString() string { return "secrets.Credentials" + c.String() }

// LogValue makes log/slog print c without its password.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("username", c.Username),
		slog.String("password", redacted(c.Password)),
		slog.String("dbname", c.DBName),
	)
}

func redacted(password string) string {
	if password == "" {
		return ""
	}
	return "<redacted>"
}

// Endpoint is one address clients connect to: a DNS name or an IP
// address, and a port.
type Endpoint struct {
	Host string
	Port int
}

// ConnectionInfo says where clients reach the database.
//
// Endpoints are the addresses of uri and jdbc-uri, in the order clients
// try them; the clients keep the first server that accepts writes (libpq
// target_session_attrs=read-write, PgJDBC targetServerType=primary), so a
// list of every instance follows the primary across failovers, and a
// single Service that moves with the primary is checked the same way. The
// first endpoint is also the host and port keys, for tools that take one
// address.
//
// ReadOnly, if set, are the addresses of ro-uri and ro-jdbc-uri, where
// clients prefer a standby and fall back to the primary (libpq
// target_session_attrs=prefer-standby, PgJDBC
// targetServerType=preferSecondary). List the primary's address too, or
// a cluster without a standby serves no reads.
//
// PgpassAnyPort makes the pgpass lines match any port: useful when
// several instances share a host name, as on loopback. Query holds extra
// URI parameters both libpq and PgJDBC understand, such as
// sslmode=verify-full.
type ConnectionInfo struct {
	Endpoints     []Endpoint
	ReadOnly      []Endpoint
	PgpassAnyPort bool
	Query         url.Values
}

// reservedQueryKeys are connection parameters the secret already fixes; a
// second value in the query would make clients disagree about which wins.
var reservedQueryKeys = []string{"user", "password", "dbname", "host", "hostaddr", "port", "passfile",
	"target_session_attrs", "targetservertype"}

// Session attributes of the URIs: what libpq and PgJDBC call "the
// primary" and "a standby if there is one".
const (
	libpqPrimary  = "read-write"
	libpqStandby  = "prefer-standby"
	pgjdbcPrimary = "primary"
	pgjdbcStandby = "preferSecondary"
	libpqAttrKey  = "target_session_attrs"
	pgjdbcAttrKey = "targetServerType"
)

// ConnectionSecretData returns the keys of a connection secret for c
// reachable as info says: username, password, dbname, host and port (the
// first endpoint), pgpass (a line per host), uri
// (postgresql://user:password@host1:port1,host2:port2/dbname?query) and
// jdbc-uri (jdbc:postgresql://host1:port1,host2:port2/dbname?user=...&password=...&query),
// and with info.ReadOnly ro-uri and ro-jdbc-uri alike.
//
// info.Query may not repeat what the secret already fixes (user, password,
// dbname, host, hostaddr, port, passfile, the session attributes).
//
// Every component is escaped, so any printable password works. Usernames
// and database names must be plain identifiers (see ValidateIdentifier).
func ConnectionSecretData(c Credentials, info ConnectionInfo) (map[string][]byte, error) {
	if err := validateCredentials(c); err != nil {
		return nil, err
	}
	if len(info.Endpoints) == 0 {
		return nil, errors.New("secrets: no endpoint to connect to")
	}
	for _, e := range slices.Concat(info.Endpoints, info.ReadOnly) {
		if err := validateHost(e.Host); err != nil {
			return nil, err
		}
		if e.Port < 1 || e.Port > 65535 {
			return nil, fmt.Errorf("secrets: port %d is out of range", e.Port)
		}
	}
	if err := validateQuery(info.Query); err != nil {
		return nil, err
	}

	data := map[string][]byte{
		KeyUsername: []byte(c.Username),
		KeyPassword: []byte(c.Password),
		KeyDBName:   []byte(c.DBName),
		KeyHost:     []byte(info.Endpoints[0].Host),
		KeyPort:     []byte(strconv.Itoa(info.Endpoints[0].Port)),
		KeyPgpass:   []byte(pgpassLines(c, info)),
		KeyURI:      []byte(libpqURI(c, info.Endpoints, info.Query, libpqPrimary)),
		KeyJDBCURI:  []byte(jdbcURI(c, info.Endpoints, info.Query, pgjdbcPrimary)),
	}
	if len(info.ReadOnly) > 0 {
		data[KeyROURI] = []byte(libpqURI(c, info.ReadOnly, info.Query, libpqStandby))
		data[KeyROJDBCURI] = []byte(jdbcURI(c, info.ReadOnly, info.Query, pgjdbcStandby))
	}
	return data, nil
}

// libpqURI is postgresql://user:password@h1:p1,h2:p2/db?query, the
// multi-host form libpq (10+), pgx and psycopg read. attr is
// target_session_attrs.
func libpqURI(c Credentials, eps []Endpoint, query url.Values, attr string) string {
	return "postgresql://" + escape(c.Username) + ":" + escape(c.Password) + "@" +
		hostList(eps) + "/" + escape(c.DBName) + "?" + withAttr(query, libpqAttrKey, attr)
}

// jdbcURI is PgJDBC's jdbc:postgresql://h1:p1,h2:p2/db?user=...; attr is
// targetServerType.
func jdbcURI(c Credentials, eps []Endpoint, query url.Values, attr string) string {
	return "jdbc:postgresql://" + hostList(eps) + "/" + escape(c.DBName) +
		"?user=" + escape(c.Username) + "&password=" + escape(c.Password) +
		"&" + withAttr(query, pgjdbcAttrKey, attr)
}

func hostList(eps []Endpoint) string {
	hosts := make([]string, len(eps))
	for i, e := range eps {
		hosts[i] = net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) // brackets IPv6 literals
	}
	return strings.Join(hosts, ",")
}

// withAttr encodes query plus one session attribute.
func withAttr(query url.Values, key, value string) string {
	q := maps.Clone(query)
	if q == nil {
		q = url.Values{}
	}
	q.Set(key, value)
	return encodeQuery(q)
}

// pgpassLines returns one pgpass line per distinct host and port (or host
// alone, with PgpassAnyPort) of every endpoint, in the order they first
// appear, so the file serves whichever instance a client reaches.
func pgpassLines(c Credentials, info ConnectionInfo) string {
	var lines []string
	for _, e := range slices.Concat(info.Endpoints, info.ReadOnly) {
		port := strconv.Itoa(e.Port)
		if info.PgpassAnyPort {
			port = AnyPort
		}
		line := strings.Join([]string{
			escapePgpass(e.Host),
			port, // a number or the wildcard, neither needs escaping
			escapePgpass(c.DBName),
			escapePgpass(c.Username),
			escapePgpass(c.Password),
		}, ":") + "\n"
		if !slices.Contains(lines, line) {
			lines = append(lines, line)
		}
	}
	return strings.Join(lines, "")
}

func validateCredentials(c Credentials) error {
	if err := validateUsername(c.Username); err != nil {
		return err
	}
	if err := ValidateIdentifier("dbname", c.DBName); err != nil {
		return err
	}
	return ValidatePassword(c.Password)
}

// validateHost accepts IP literals and host names. Unix socket directories
// are refused: pgpass matches them as "localhost" and JDBC cannot use them,
// so the secret's keys would not agree with each other.
func validateHost(host string) error {
	if net.ParseIP(host) != nil {
		return nil
	}
	if host == "" || len(host) > 253 {
		return fmt.Errorf("secrets: invalid host %q", host)
	}
	for label := range strings.SplitSeq(host, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("secrets: invalid host %q", host)
		}
		for _, r := range label {
			// '_' is not legal in DNS host names but occurs in real ones
			// (and in Kubernetes-less setups' /etc/hosts), and is harmless.
			if !isHostChar(r) {
				return fmt.Errorf("secrets: invalid host %q", host)
			}
		}
	}
	return nil
}

// escape percent-encodes everything but RFC 3986's unreserved characters.
// net/url leaves sub-delimiters such as '+', '&' and '=' bare where RFC 3986
// allows them, but clients disagree on what those mean (Java's URLDecoder
// turns '+' into a space, libpq does not); encoding them removes the doubt.
func escape(s string) string {
	const hex = "0123456789ABCDEF"
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9',
			b == '-', b == '.', b == '_', b == '~':
			sb.WriteByte(b)
		default:
			sb.WriteByte('%')
			sb.WriteByte(hex[b>>4])
			sb.WriteByte(hex[b&0x0f])
		}
	}
	return sb.String()
}

// validateQuery refuses parameter names that are empty or that the secret
// sets itself, and control characters, which no client reads back alike.
func validateQuery(query url.Values) error {
	for k, vs := range query {
		if k == "" {
			return errors.New("secrets: empty URI parameter name")
		}
		if slices.Contains(reservedQueryKeys, strings.ToLower(k)) {
			return fmt.Errorf("secrets: URI parameter %q is set by the secret itself", k)
		}
		for _, v := range vs {
			if strings.ContainsFunc(k+v, safetext.Forbidden) {
				return fmt.Errorf("secrets: URI parameter %q contains a control character", k)
			}
		}
	}
	return nil
}

// encodeQuery renders query in key order with escape, so the output is
// stable and a secret is rewritten only when something really changed.
func encodeQuery(query url.Values) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(query)) {
		for _, v := range query[k] {
			parts = append(parts, escape(k)+"="+escape(v))
		}
	}
	return strings.Join(parts, "&")
}

// escapePgpass escapes a pgpass field as libpq reads it: a backslash makes
// the next character literal, so ':' and '\' are preceded by one.
func escapePgpass(s string) string {
	return pgpassEscaper.Replace(s)
}

var pgpassEscaper = strings.NewReplacer(`\`, `\\`, `:`, `\:`)

func isHostChar(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '-', r == '_':
		return true
	}
	return false
}
