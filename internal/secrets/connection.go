package secrets

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// Keys of a connection secret. They mean what they mean in CloudNativePG's
// basic-auth secrets so that applications written against it keep working.
const (
	KeyUsername = "username"
	KeyPassword = "password"
	KeyDBName   = "dbname"
	KeyHost     = "host"
	KeyPort     = "port"
	KeyPgpass   = "pgpass"
	KeyURI      = "uri"
	KeyJDBCURI  = "jdbc-uri"
)

// AnyPort is the pgpass port field that matches every port.
const AnyPort = "*"

// Credentials are a role's login and where it applies.
type Credentials struct {
	// Username is the role name.
	Username string
	// Password is the role's password in clear text.
	Password string
	// DBName is the database the credentials are meant for.
	DBName string
	// Host is the host clients connect to: a DNS name or an IP address.
	Host string
	// Port is the port of the pgpass line: a number, or AnyPort.
	Port string
}

// String describes c without its password, so that logging a Credentials
// by mistake does not leak it.
func (c Credentials) String() string {
	return fmt.Sprintf("{Username:%s Password:%s DBName:%s Host:%s Port:%s}",
		c.Username, redacted(c.Password), c.DBName, c.Host, c.Port)
}

// GoString is String for the %#v verb.
func (c Credentials) GoString() string { return "secrets.Credentials" + c.String() }

// LogValue makes log/slog print c without its password.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("username", c.Username),
		slog.String("password", redacted(c.Password)),
		slog.String("dbname", c.DBName),
		slog.String("host", c.Host),
		slog.String("port", c.Port),
	)
}

func redacted(password string) string {
	if password == "" {
		return ""
	}
	return "<redacted>"
}

// ConnectionInfo says where clients reach the database. Host and Port are
// written to the secret's host and port keys and used in the URIs.
// PgpassPort, if set, is the port of the pgpass line: AnyPort makes the
// line match any port (useful when the same server is reached through
// several ports or forwards); a number must equal Port. Query holds extra URI parameters such as
// sslmode=verify-full.
type ConnectionInfo struct {
	Host       string
	Port       int
	PgpassPort string
	Query      url.Values
}

// credentials combines info with a login.
func (i ConnectionInfo) credentials(username, password, dbname string) Credentials {
	port := i.PgpassPort
	if port == "" {
		port = strconv.Itoa(i.Port)
	}
	return Credentials{Username: username, Password: password, DBName: dbname, Host: i.Host, Port: port}
}

// reservedQueryKeys are connection parameters the secret already fixes; a
// second value in the query would make clients disagree about which wins.
var reservedQueryKeys = []string{"user", "password", "dbname", "host", "hostaddr", "port", "passfile"}

// ConnectionSecretData returns the keys of a connection secret for c:
// username, password, dbname, host, port, pgpass (one .pgpass line), uri
// (postgresql://user:password@host:port/dbname?query) and jdbc-uri
// (jdbc:postgresql://host:port/dbname?user=...&password=...&query).
//
// port is the port clients connect to, written to the port key and the
// URIs. It may be 0 when c.Port is a number, which is then used; it is
// required when c.Port is AnyPort, which only a pgpass line can express.
// query adds parameters to both URIs; it may not repeat what the secret
// already fixes (user, password, dbname, host, hostaddr, port, passfile).
//
// Every component is escaped, so any printable password works. Usernames
// and database names must be plain identifiers (see ValidateIdentifier).
func ConnectionSecretData(c Credentials, port int, query url.Values) (map[string][]byte, error) {
	if err := validateCredentials(c); err != nil {
		return nil, err
	}
	if c.Port == AnyPort {
		if port == 0 {
			return nil, errors.New("secrets: a concrete port is required when the pgpass port is *")
		}
	} else {
		p, _ := strconv.Atoi(c.Port) // validated above
		if port == 0 {
			port = p
		} else if port != p {
			return nil, fmt.Errorf("secrets: port %d disagrees with the credentials' port %s", port, c.Port)
		}
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("secrets: port %d is out of range", port)
	}
	extra, err := encodeQuery(query)
	if err != nil {
		return nil, err
	}

	hostPort := net.JoinHostPort(c.Host, strconv.Itoa(port)) // brackets IPv6 literals
	uri := "postgresql://" + escape(c.Username) + ":" + escape(c.Password) + "@" +
		hostPort + "/" + escape(c.DBName)
	if extra != "" {
		uri += "?" + extra
	}
	jdbc := "jdbc:postgresql://" + hostPort + "/" + escape(c.DBName) +
		"?user=" + escape(c.Username) + "&password=" + escape(c.Password)
	if extra != "" {
		jdbc += "&" + extra
	}
	pgpass := strings.Join([]string{
		escapePgpass(c.Host),
		c.Port, // a number or the wildcard, neither needs escaping
		escapePgpass(c.DBName),
		escapePgpass(c.Username),
		escapePgpass(c.Password),
	}, ":") + "\n"

	return map[string][]byte{
		KeyUsername: []byte(c.Username),
		KeyPassword: []byte(c.Password),
		KeyDBName:   []byte(c.DBName),
		KeyHost:     []byte(c.Host),
		KeyPort:     []byte(strconv.Itoa(port)),
		KeyPgpass:   []byte(pgpass),
		KeyURI:      []byte(uri),
		KeyJDBCURI:  []byte(jdbc),
	}, nil
}

func validateCredentials(c Credentials) error {
	if err := validateUsername(c.Username); err != nil {
		return err
	}
	if err := ValidateIdentifier("dbname", c.DBName); err != nil {
		return err
	}
	if err := ValidatePassword(c.Password); err != nil {
		return err
	}
	if err := validateHost(c.Host); err != nil {
		return err
	}
	return validatePgpassPort(c.Port)
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

func validatePgpassPort(port string) error {
	if port == AnyPort {
		return nil
	}
	// Canonical decimal only: libpq compares the pgpass field with the port
	// as a string, so "+5432" or "05432" would never match.
	p, err := strconv.Atoi(port)
	if err != nil || strconv.Itoa(p) != port || p < 1 || p > 65535 {
		return fmt.Errorf("secrets: port %q is neither a port number nor %q", port, AnyPort)
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

// encodeQuery renders query in key order with escape, so the output is
// stable and a secret is rewritten only when something really changed.
func encodeQuery(query url.Values) (string, error) {
	keys := make([]string, 0, len(query))
	for k := range query {
		if k == "" {
			return "", errors.New("secrets: empty URI parameter name")
		}
		if slices.Contains(reservedQueryKeys, strings.ToLower(k)) {
			return "", fmt.Errorf("secrets: URI parameter %q is set by the secret itself", k)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		for _, v := range query[k] {
			if strings.ContainsFunc(k+v, unicode.IsControl) {
				return "", fmt.Errorf("secrets: URI parameter %q contains a control character", k)
			}
			parts = append(parts, escape(k)+"="+escape(v))
		}
	}
	return strings.Join(parts, "&"), nil
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
