package v1

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// HBARule is one pg_hba.conf rule. Database and User hold comma-separated
// lists exactly as they are rendered (quoted names keep their quotes);
// Address and Mask are empty for local rules, and Mask is only set when
// Address is a bare IP address. Options are name=value tokens.
type HBARule struct {
	Type     string
	Database string
	User     string
	Address  string
	Mask     string
	Method   string
	Options  []string
}

// Connection types of pg_hba.conf.
const (
	hbaLocal        = "local"
	hbaHost         = "host"
	hbaHostSSL      = "hostssl"
	hbaHostNoSSL    = "hostnossl"
	hbaHostGSSEnc   = "hostgssenc"
	hbaHostNoGSSEnc = "hostnogssenc"
)

// ReplicationUser is the role that replicas and pg_rewind connect as.
// pgward writes every pg_hba rule that mentions it.
const ReplicationUser = "streaming_replica"

// maxNameLength is PostgreSQL's NAMEDATALEN-1: longer role and database
// names are silently truncated, so a longer name in a rule could never be
// the name it appears to be.
const maxNameLength = 63

var hbaTypes = []string{hbaLocal, hbaHost, hbaHostSSL, hbaHostNoSSL, hbaHostGSSEnc, hbaHostNoGSSEnc}

var hbaMethods = []string{
	"trust", "reject", "scram-sha-256", "md5", "password", "gss", "sspi",
	"ident", "peer", "pam", "ldap", "radius", "cert",
}

// hbaOptionNames are the authentication options PostgreSQL 13-17 know. An
// unknown one would make PostgreSQL refuse the whole file on reload.
var hbaOptionNames = []string{
	"clientcert", "clientname", "compat_realm", "include_realm", "krb_realm",
	"ldapbasedn", "ldapbinddn", "ldapbindpasswd", "ldapport", "ldapprefix",
	"ldapscheme", "ldapsearchattribute", "ldapsearchfilter", "ldapserver",
	"ldapsuffix", "ldaptls", "ldapurl", "map", "pam_use_hostname", "pamservice",
	"radiusidentifiers", "radiusports", "radiussecrets", "radiusservers", "upn_username",
}

// hostnameRE matches a host name or a ".suffix" that matches every host
// name ending with it.
var hostnameRE = regexp.MustCompile(
	`^\.?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

// ParseHBARule parses one pg_hba.conf line written by a user, refusing
// anything that is not a plain, single, well-formed rule or that would
// weaken the security pgward sets up:
//
//   - file inclusions (@file in a list, include directives) because they
//     read arbitrary files of the server;
//   - comments, line continuations (a backslash) and control characters,
//     so the rendered file holds exactly this one rule;
//   - rules naming the streaming_replica role or the replication
//     pseudo-database, because pgward alone grants replication, by
//     certificate;
//   - trust over the network (it lets anyone who can reach the port log in
//     as any role; it stays allowed on local sockets, which only processes
//     in the pod reach) and password over connections that may be
//     unencrypted (it sends the password in clear text);
//   - methods PostgreSQL itself would refuse for the connection type, which
//     would make the whole file fail to load.
func ParseHBARule(line string) (HBARule, error) {
	if err := checkConfLine(line); err != nil {
		return HBARule{}, err
	}
	// PostgreSQL joins a line ending in a backslash with the next one, which
	// here is a rule pgward wrote. Refusing backslashes altogether is simpler
	// than proving no rendering ever ends with one.
	if i := strings.IndexByte(line, '\\'); i >= 0 {
		return HBARule{}, fmt.Errorf("a backslash (byte %d) is not allowed", i)
	}
	fields, err := splitConfFields(line, true)
	if err != nil {
		return HBARule{}, err
	}
	return parseHBAFields(fields)
}

// ParseHBARules parses pg_hba lines, numbering them from 1 in errors
// ("pg_hba line 2: ..."), and reports every bad line.
func ParseHBARules(lines []string) ([]HBARule, error) {
	rules := make([]HBARule, 0, len(lines))
	var errs []error
	for i, line := range lines {
		rule, err := ParseHBARule(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("pg_hba line %d: %w", i+1, err))
			continue
		}
		rules = append(rules, rule)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return rules, nil
}

// parseHBAFields interprets the fields of a line in order: type, database,
// user, address (and mask) unless local, method, options.
func parseHBAFields(fields []string) (HBARule, error) {
	var (
		rule HBARule
		err  error
	)
	if rule.Type, err = parseHBAType(fields[0]); err != nil {
		return HBARule{}, err
	}
	rest := fields[1:]
	need := 3 // database, user, method
	if rule.Type != hbaLocal {
		need = 4 // and address
	}
	if len(rest) < need {
		return HBARule{}, fmt.Errorf("too few fields: a %s rule needs %s", rule.Type, hbaShape(rule.Type))
	}
	if rule.Database, err = parseHBADatabases(rest[0]); err != nil {
		return HBARule{}, err
	}
	if rule.User, err = parseHBAUsers(rest[1]); err != nil {
		return HBARule{}, err
	}
	rest = rest[2:]
	if rule.Type != hbaLocal {
		if rule.Address, rule.Mask, rest, err = parseHBAAddress(rest); err != nil {
			return HBARule{}, err
		}
	}
	if len(rest) == 0 {
		return HBARule{}, fmt.Errorf("too few fields: a %s rule needs %s", rule.Type, hbaShape(rule.Type))
	}
	if rule.Method, err = parseHBAMethod(rule.Type, rest[0]); err != nil {
		return HBARule{}, err
	}
	for _, opt := range rest[1:] {
		if err := checkHBAOption(opt); err != nil {
			return HBARule{}, err
		}
		rule.Options = append(rule.Options, opt)
	}
	if err := checkHBAOptions(rule); err != nil {
		return HBARule{}, err
	}
	return rule, nil
}

// hbaOptionMethods says, for the options that belong to particular
// methods, which ones (PostgreSQL refuses the whole file otherwise).
var hbaOptionMethods = map[string][]string{
	"map":                 {"ident", "peer", "gss", "cert"},
	"pamservice":          {"pam"},
	"pam_use_hostname":    {"pam"},
	"ldapurl":             {"ldap"},
	"ldaptls":             {"ldap"},
	"ldapscheme":          {"ldap"},
	"ldapserver":          {"ldap"},
	"ldapport":            {"ldap"},
	"ldapbinddn":          {"ldap"},
	"ldapbindpasswd":      {"ldap"},
	"ldapsearchattribute": {"ldap"},
	"ldapsearchfilter":    {"ldap"},
	"ldapbasedn":          {"ldap"},
	"ldapprefix":          {"ldap"},
	"ldapsuffix":          {"ldap"},
	"krb_realm":           {"gss"},
	"include_realm":       {"gss"},
	"compat_realm":        {"sspi"},
	"upn_username":        {"sspi"},
	"radiusservers":       {"radius"},
	"radiussecrets":       {"radius"},
	"radiusports":         {"radius"},
	"radiusidentifiers":   {"radius"},
}

// checkHBAOptions applies PostgreSQL's own rules about options (which
// method each belongs to, the values it takes, what a method requires), so
// that a rule PostgreSQL would refuse, making it refuse the whole file at the
// next reload or start, is refused here, naming the reason.
func checkHBAOptions(r HBARule) error {
	opts := map[string]string{}
	for _, o := range r.Options {
		name, value, _ := strings.Cut(o, "=")
		if _, dup := opts[name]; dup {
			return fmt.Errorf("option %q is given twice", name)
		}
		opts[name] = strings.Trim(value, `"`)
	}
	for name, value := range opts {
		if methods, ok := hbaOptionMethods[name]; ok && !slices.Contains(methods, r.Method) {
			return fmt.Errorf("option %q only applies to method %s, not %q", name, strings.Join(methods, " or "), r.Method)
		}
		switch name {
		case "clientcert":
			if r.Type != hbaHostSSL {
				return errors.New(`option "clientcert" only applies to hostssl rules`)
			}
			if value != "verify-ca" && value != "verify-full" {
				return fmt.Errorf(`option "clientcert" takes verify-ca or verify-full, not %q`, value)
			}
			if r.Method == "cert" && value != "verify-full" {
				return errors.New(`method "cert" always verifies the full certificate: clientcert may only be verify-full`)
			}
		case "clientname":
			if r.Type != hbaHostSSL {
				return errors.New(`option "clientname" only applies to hostssl rules`)
			}
			if value != "CN" && value != "DN" {
				return fmt.Errorf(`option "clientname" takes CN or DN, not %q`, value)
			}
		case "ldapscheme":
			if value != "ldap" && value != "ldaps" {
				return fmt.Errorf(`option "ldapscheme" takes ldap or ldaps, not %q`, value)
			}
		case "ldapport":
			if p, err := strconv.Atoi(value); err != nil || p < 1 || p > 65535 {
				return fmt.Errorf(`option "ldapport" must be a port number (1-65535), not %q`, value)
			}
		case "radiusports":
			for _, v := range strings.Split(value, ",") {
				if p, err := strconv.Atoi(strings.TrimSpace(v)); err != nil || p < 1 || p > 65535 {
					return fmt.Errorf(`option "radiusports" must list port numbers (1-65535), not %q`, value)
				}
			}
		case "include_realm", "compat_realm", "upn_username", "ldaptls", "pam_use_hostname":
			if value != "0" && value != "1" {
				return fmt.Errorf(`option %q takes 0 or 1, not %q`, name, value)
			}
		}
	}
	switch r.Method {
	case "ldap":
		return checkLDAPOptions(opts)
	case "radius":
		return checkRADIUSOptions(opts)
	}
	return nil
}

// checkLDAPOptions checks that an ldap rule has one complete mode: simple
// bind (ldapprefix/ldapsuffix) or search+bind (ldapbasedn), and a server.
func checkLDAPOptions(opts map[string]string) error {
	if err := checkLDAPShape(opts); err != nil {
		return err
	}
	// The client's password goes to the LDAP server: never in clear text.
	scheme := opts["ldapscheme"]
	if raw, ok := opts["ldapurl"]; ok && strings.HasPrefix(strings.Trim(raw, `"`), "ldaps://") {
		scheme = "ldaps"
	}
	if scheme != "ldaps" && opts["ldaptls"] != "1" {
		return errors.New(`method "ldap" without ldapscheme=ldaps (or an ldaps:// ldapurl) or ldaptls=1 sends every client's password to the LDAP server in clear text`)
	}
	if scheme == "ldaps" && opts["ldaptls"] == "1" {
		return errors.New(`method "ldap": ldaptls=1 (StartTLS) is for ldapscheme=ldap; ldaps is TLS already`)
	}
	return nil
}

// checkLDAPShape checks the completeness of an ldap rule's options.
func checkLDAPShape(opts map[string]string) error {
	has := func(names ...string) bool {
		for _, n := range names {
			if _, ok := opts[n]; ok {
				return true
			}
		}
		return false
	}
	if raw, ok := opts["ldapurl"]; ok {
		if has("ldapserver", "ldapport", "ldapbasedn", "ldapsearchattribute", "ldapsearchfilter", "ldapscheme") {
			return errors.New(`option "ldapurl" holds the server, port, scheme, base DN and search: do not give them separately too`)
		}
		return checkLDAPURL(strings.Trim(raw, `"`))
	}
	switch {
	case !has("ldapserver"):
		return errors.New(`method "ldap" needs option "ldapserver" (or "ldapurl")`)
	case has("ldapprefix", "ldapsuffix") && has("ldapbasedn", "ldapbinddn", "ldapbindpasswd", "ldapsearchattribute", "ldapsearchfilter"):
		return errors.New(`method "ldap": ldapprefix/ldapsuffix (simple bind) cannot be combined with ldapbasedn, ldapbinddn, ldapbindpasswd, ldapsearchattribute or ldapsearchfilter (search+bind)`)
	case !has("ldapprefix", "ldapsuffix", "ldapbasedn"):
		return errors.New(`method "ldap" needs "ldapbasedn" (search+bind) or "ldapprefix"/"ldapsuffix" (simple bind)`)
	case has("ldapsearchattribute") && has("ldapsearchfilter"):
		return errors.New(`method "ldap": use ldapsearchattribute or ldapsearchfilter, not both`)
	}
	return nil
}

// checkRADIUSOptions checks that a radius rule has its servers and secrets,
// and as many ports and identifiers as servers (or one, or none).
// checkLDAPURL refuses what PostgreSQL's LDAP library cannot parse when
// it loads pg_hba.conf: an RFC 4516 URL, ldap:// or ldaps://, a port
// number, and a scope of base, one or sub (ldap://host:port/basedn?attribute?scope?filter).
func checkLDAPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "" {
		return errors.New(`option "ldapurl" must be an ldap:// or ldaps:// URL with a host`)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return errors.New(`option "ldapurl": the port must be a number from 1 to 65535`)
		}
	}
	parts := strings.Split(u.RawQuery, "?")
	if len(parts) > 3 {
		return errors.New(`option "ldapurl": too many "?" parts (attribute?scope?filter)`)
	}
	if len(parts) >= 2 && !slices.Contains([]string{"", "base", "one", "sub"}, parts[1]) {
		return errors.New(`option "ldapurl": the scope must be base, one or sub`)
	}
	return nil
}

func checkRADIUSOptions(opts map[string]string) error {
	count := func(name string) int {
		v, ok := opts[name]
		if !ok {
			return 0
		}
		return len(strings.Split(v, ","))
	}
	servers := count("radiusservers")
	switch {
	case servers == 0:
		return errors.New(`method "radius" needs option "radiusservers"`)
	case count("radiussecrets") == 0:
		return errors.New(`method "radius" needs option "radiussecrets"`)
	}
	for _, n := range []string{"radiussecrets", "radiusports", "radiusidentifiers"} {
		if c := count(n); c > 1 && c != servers {
			return fmt.Errorf(`option %q lists %d values for %d servers (give one, or one per server)`, n, c, servers)
		}
	}
	return nil
}

// hbaShape describes the fields a rule of connection type t has.
func hbaShape(t string) string {
	if t == hbaLocal {
		return "database, user and method"
	}
	return "database, user, address and method"
}

func parseHBAType(field string) (string, error) {
	switch {
	case slices.Contains(hbaTypes, field):
		return field, nil
	case field == "include" || field == "include_dir" || field == "include_if_exists":
		return "", fmt.Errorf("%s directives are not allowed: they read other files of the server", field)
	}
	return "", fmt.Errorf("unknown connection type %q (want one of %s)", field, strings.Join(hbaTypes, ", "))
}

// parseHBADatabases checks the database list and returns it unchanged.
func parseHBADatabases(field string) (string, error) {
	names, err := splitConfList(field)
	if err != nil {
		return "", fmt.Errorf("database: %w", err)
	}
	for _, n := range names {
		if strings.EqualFold(n.text, "replication") {
			return "", errors.New(`database "replication" is not allowed: only pgward grants replication connections`)
		}
		if err := checkHBAName(n); err != nil {
			return "", fmt.Errorf("database: %w", err)
		}
	}
	return field, nil
}

// parseHBAUsers checks the user list and returns it unchanged. A leading
// "+" names the members of a role.
func parseHBAUsers(field string) (string, error) {
	names, err := splitConfList(field)
	if err != nil {
		return "", fmt.Errorf("user: %w", err)
	}
	for _, n := range names {
		if !n.quoted && strings.HasPrefix(n.text, "+") {
			n.text = n.text[1:]
			if n.text == "" {
				return "", errors.New(`user: "+" must be followed by a role name`)
			}
		}
		if strings.EqualFold(n.text, ReplicationUser) {
			return "", fmt.Errorf("user %q is not allowed: pgward writes the rules for its replication role", ReplicationUser)
		}
		if err := checkHBAName(n); err != nil {
			return "", fmt.Errorf("user: %w", err)
		}
	}
	return field, nil
}

// CheckCIDR checks a network written as a CIDR in its canonical form
// (10.0.0.0/8, not 10.1.2.3/8, which PostgreSQL would accept and read as
// the whole /8: a user who wrote it probably meant something narrower).
func CheckCIDR(s string) error {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return errors.New("must be a CIDR such as 10.0.0.0/8 or fd00::/8")
	}
	if m := p.Masked(); m != p {
		return fmt.Errorf("has host bits set: the network is %s", m)
	}
	return nil
}

// NamesUser reports whether the rule's user list names role itself (not
// through "all" or a group).
func (r HBARule) NamesUser(role string) bool {
	names, err := splitConfList(r.User)
	if err != nil {
		return false
	}
	for _, n := range names {
		if strings.EqualFold(n.text, role) {
			return true
		}
	}
	return false
}

// checkHBAName checks one database or role name.
func checkHBAName(n confName) error {
	switch {
	case strings.HasPrefix(n.text, "@"):
		// Unquoted, PostgreSQL reads the names from that file; quoted it
		// is a name, but one too easily mistaken for an inclusion.
		return fmt.Errorf("%q: @file inclusions are not allowed: they read other files of the server", n.text)
	case !n.quoted && strings.HasPrefix(n.text, "/"):
		return fmt.Errorf("%q: regular expressions are not supported (quote the name if it starts with /)", n.text)
	case len(n.text) > maxNameLength:
		return fmt.Errorf("%q is longer than %d bytes", n.text, maxNameLength)
	}
	return nil
}

// parseHBAAddress reads the address of a host rule, and the separate mask
// when the address is a bare IP address, and returns the remaining fields.
// IP addresses are rendered in canonical form and host names in lower case.
func parseHBAAddress(fields []string) (addr, mask string, rest []string, err error) {
	field := fields[0]
	rest = fields[1:]
	switch {
	case strings.Contains(field, `"`) || strings.Contains(field, ","):
		return "", "", nil, fmt.Errorf("address %q: must be a single unquoted value", field)
	case field == "all" || field == "samehost" || field == "samenet":
		return field, "", rest, nil
	case strings.HasPrefix(field, podSelectorPrefix):
		// Resolved by the operator to the selected pods' addresses
		// (ExpandPodSelectors) before any instance reads the rule.
		if _, ok := PodSelectorOf(field); !ok {
			return "", "", nil, fmt.Errorf("address %q: a pod selector reference is ${podselector:NAME}, NAME a DNS label", field)
		}
		return field, "", rest, nil
	case strings.Contains(field, "/"):
		prefix, err := netip.ParsePrefix(field)
		if err != nil {
			return "", "", nil, fmt.Errorf("address %q is not a valid CIDR address", field)
		}
		return prefix.String(), "", rest, nil
	}
	if ip, err := netip.ParseAddr(field); err == nil {
		if ip.Zone() != "" {
			return "", "", nil, fmt.Errorf("address %q: IPv6 zones are not supported", field)
		}
		if len(rest) == 0 {
			return "", "", nil, fmt.Errorf("address %q has no /prefix length and no mask follows", field)
		}
		mask, err := parseHBAMask(ip, rest[0])
		if err != nil {
			return "", "", nil, err
		}
		return ip.String(), mask, rest[1:], nil
	}
	if err := checkHBAHostname(field); err != nil {
		return "", "", nil, err
	}
	// Host names match case-insensitively; lower case is the canonical form.
	return strings.ToLower(field), "", rest, nil
}

// checkHBAHostname checks the syntax of a host name or .suffix. A name whose
// last label is numeric is a mistyped IP address, not a host name.
func checkHBAHostname(field string) error {
	name := strings.ToLower(field)
	labels := strings.Split(strings.TrimPrefix(name, "."), ".")
	last := labels[len(labels)-1]
	if last != "" && strings.Trim(last, "0123456789") == "" {
		return fmt.Errorf("address %q is not a valid IP address", field)
	}
	if len(name) > 253 || !hostnameRE.MatchString(name) {
		return fmt.Errorf("address %q is neither an IP address, a CIDR address nor a host name", field)
	}
	return nil
}

// parseHBAMask checks a netmask written after a bare IP address: same
// family as the address, ones then zeros.
func parseHBAMask(ip netip.Addr, field string) (string, error) {
	mask, err := netip.ParseAddr(field)
	if err != nil || mask.Zone() != "" {
		return "", fmt.Errorf("address %q needs a /prefix length (%s/%d) or a mask field, and %q is not a mask",
			ip.String(), ip.String(), ip.BitLen(), field)
	}
	if mask.Is4() != ip.Is4() {
		return "", fmt.Errorf("mask %q is not of the same IP family as address %q", field, ip.String())
	}
	b := mask.AsSlice()
	seenZero := false
	for _, octet := range b {
		for bit := 7; bit >= 0; bit-- {
			one := octet&(1<<bit) != 0
			if one && seenZero {
				return "", fmt.Errorf("mask %q is not contiguous", field)
			}
			seenZero = seenZero || !one
		}
	}
	return mask.String(), nil
}

// parseHBAMethod checks the method and whether it fits the connection type.
func parseHBAMethod(connType, field string) (string, error) {
	if !slices.Contains(hbaMethods, field) {
		return "", fmt.Errorf("unknown method %q (want one of %s)", field, strings.Join(hbaMethods, ", "))
	}
	network := connType != hbaLocal
	maybeCleartext := connType == hbaHost || connType == hbaHostNoSSL || connType == hbaHostNoGSSEnc
	switch {
	case field == "trust" && network:
		return "", fmt.Errorf(`method "trust" is not allowed on %s rules: it lets anyone who reaches the server log in without a password (use it only on local)`, connType)
	case field == "ident" && network:
		// The client's own identd answers who the client is: anyone who
		// runs one (a few lines of code on port 113) is whoever they say.
		return "", fmt.Errorf(`method "ident" is not allowed on %s rules: over the network the client's own ident server decides who it is (use cert, scram-sha-256 or gss; ident/peer only on local)`, connType)
	case (field == "password" || field == "pam" || field == "ldap" || field == "radius") && maybeCleartext:
		// These methods receive the password itself from the client.
		return "", fmt.Errorf(`method %q is not allowed on %s rules: the client sends its password in clear text (use it on hostssl, or use scram-sha-256)`, field, connType)
	case field == "sspi":
		return "", errors.New(`method "sspi" is only available on Windows`)
	case field == "peer" && network:
		return "", errors.New(`method "peer" is only supported on local rules`)
	case field == "gss" && !network:
		return "", errors.New(`method "gss" is not supported on local rules`)
	case field == "cert" && connType != hbaHostSSL:
		return "", errors.New(`method "cert" is only supported on hostssl rules`)
	}
	return field, nil
}

// checkHBAOption checks one name=value option. The value may be quoted,
// and then may contain spaces and commas.
func checkHBAOption(opt string) error {
	name, value, ok := strings.Cut(opt, "=")
	if !ok {
		return fmt.Errorf("unexpected field %q after the method: options are written name=value", opt)
	}
	if !slices.Contains(hbaOptionNames, name) {
		return fmt.Errorf("unknown option %q", name)
	}
	quoted := len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"'
	inner := value
	if quoted {
		inner = value[1 : len(value)-1]
	}
	switch {
	case value == "":
		return fmt.Errorf("option %q has no value", name)
	case strings.Contains(inner, `"`):
		return fmt.Errorf("option %q: double quotes must enclose the whole value", name)
	case !quoted && strings.Contains(value, ","):
		// PostgreSQL splits an unquoted field at commas: the rest would
		// be read as another option.
		return fmt.Errorf(`option %q: a value with a comma must be in double quotes (%s="%s")`, name, name, value)
	}
	return nil
}

// String renders the rule as one pg_hba.conf line, fields separated by a
// single space. ParseHBARule(r.String()) returns r for every parsed rule.
func (r HBARule) String() string {
	fields := []string{r.Type, r.Database, r.User}
	if r.Address != "" {
		fields = append(fields, r.Address)
	}
	if r.Mask != "" {
		fields = append(fields, r.Mask)
	}
	fields = append(fields, r.Method)
	fields = append(fields, r.Options...)
	return strings.Join(fields, " ")
}
