package v1

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/pgward/pgward/internal/safetext"
)

// LDAPConfig is CloudNativePG's postgresql.ldap: the catch-all pg_hba rule
// authenticates against an LDAP directory instead of asking for a SCRAM
// password. The client's password travels to the directory, so pgward
// requires TLS to it (ldaps or StartTLS) and PostgreSQL verifies the
// directory's certificate (see docs/security.md).
type LDAPConfig struct {
	// Server is the LDAP server's host name or IP address.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Server string `json:"server,omitempty"`
	// Port is the LDAP server's port (default 389, 636 for ldaps).
	// +optional
	Port int `json:"port,omitempty"`
	// Scheme is ldap or ldaps; ldap needs tls: true (StartTLS).
	// +optional
	// +kubebuilder:validation:Enum=ldap;ldaps
	Scheme string `json:"scheme,omitempty"`
	// TLS asks for StartTLS on an ldap connection.
	// +optional
	TLS bool `json:"tls,omitempty"`
	// BindAsAuth binds as prefix+user+suffix (simple bind).
	// +optional
	BindAsAuth *LDAPBindAsAuth `json:"bindAsAuth,omitempty"`
	// BindSearchAuth searches the user's DN, then binds as it.
	// +optional
	BindSearchAuth *LDAPBindSearchAuth `json:"bindSearchAuth,omitempty"`
	// CASecret names the secret key holding the PEM CA certificate(s) the
	// LDAP server's certificate must chain to; without it the system's
	// CAs are used. A pgward field: CloudNativePG has no equivalent.
	// +optional
	CASecret *SecretKeySelector `json:"caSecret,omitempty"`
}

// LDAPBindAsAuth is the simple-bind mode of LDAP authentication.
type LDAPBindAsAuth struct {
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Prefix string `json:"prefix,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Suffix string `json:"suffix,omitempty"`
}

// LDAPBindSearchAuth is the search+bind mode of LDAP authentication.
type LDAPBindSearchAuth struct {
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	BaseDN string `json:"baseDN,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	BindDN string `json:"bindDN,omitempty"`
	// BindPassword is the secret key holding BindDN's password.
	// +optional
	BindPassword *SecretKeySelector `json:"bindPassword,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	SearchAttribute string `json:"searchAttribute,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	SearchFilter string `json:"searchFilter,omitempty"`
}

// maxLDAPValue bounds every LDAP string that reaches pg_hba.conf.
const maxLDAPValue = 1024

// CheckLDAPValue checks a value pgward writes, double-quoted, as one
// pg_hba.conf option: it must stay inside its quotes and on its line.
// PostgreSQL 15's pg_hba tokenizer has no escape for a double quote, a
// backslash at a line's end joins the next line, and control characters
// (a newline above all) would end the rule. The error never echoes the
// value: it may be the bind password.
func CheckLDAPValue(s string) error {
	if err := safetext.Check(s); err != nil {
		return err
	}
	switch {
	case len(s) > maxLDAPValue:
		return fmt.Errorf("is longer than %d bytes", maxLDAPValue)
	case strings.Contains(s, `"`):
		return errors.New(`contains a double quote, which pg_hba.conf cannot hold inside a quoted value`)
	case strings.Contains(s, "#"):
		// PostgreSQL reads '#' inside quotes as text, but pgward's pg_hba
		// parser refuses it anywhere (outside quotes it starts a comment),
		// and every rendered rule must read back through that parser.
		return errors.New(`contains '#', which pgward does not allow in pg_hba.conf`)
	case strings.Contains(s, `\`):
		return errors.New(`contains a backslash, which pg_hba.conf would read as a line continuation`)
	}
	return nil
}

// checkLDAPServer accepts one host name or IP address.
func checkLDAPServer(s string) error {
	if _, err := netip.ParseAddr(s); err == nil {
		if strings.Contains(s, "%") {
			return errors.New("IPv6 zones are not supported")
		}
		return nil
	}
	name := strings.ToLower(s)
	if strings.HasPrefix(name, ".") || len(name) > 253 || !hostnameRE.MatchString(name) {
		return errors.New("must be a host name or an IP address")
	}
	return nil
}

// validateLDAP checks postgresql.ldap, naming the field of every error and
// never echoing a value (a DN may be sensitive; the password is not here).
func validateLDAP(l *LDAPConfig, path *field.Path) field.ErrorList {
	if l == nil {
		return nil
	}
	var errs field.ErrorList
	bad := func(p *field.Path, msg string) {
		errs = append(errs, field.Invalid(p, field.OmitValueType{}, msg))
	}
	if l.Server == "" {
		errs = append(errs, field.Required(path.Child("server"), "the LDAP server's host name or IP address"))
	} else if err := checkLDAPServer(l.Server); err != nil {
		bad(path.Child("server"), err.Error())
	}
	if l.Port < 0 || l.Port > 65535 {
		bad(path.Child("port"), "must be a port number (1-65535)")
	}
	switch {
	case l.Scheme != "" && l.Scheme != "ldap" && l.Scheme != "ldaps":
		bad(path.Child("scheme"), "takes ldap or ldaps")
	case l.Scheme == "ldaps" && l.TLS:
		bad(path.Child("tls"), "StartTLS is for scheme ldap: ldaps is TLS from the first byte already")
	case l.Scheme != "ldaps" && !l.TLS:
		// The clients' passwords would reach the directory in clear text.
		bad(path.Child("scheme"), "ldap without tls: true sends every client's password to the LDAP server in clear text: use scheme ldaps, or tls: true (StartTLS)")
	}
	if l.CASecret != nil {
		errs = append(errs, validateSecretName(path.Child("caSecret", "name"), l.CASecret.Name)...)
		if l.CASecret.Key == "" {
			errs = append(errs, field.Required(path.Child("caSecret", "key"), "the key holding the PEM CA"))
		}
	}
	values := func(p *field.Path, kv ...string) {
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				continue
			}
			if err := CheckLDAPValue(kv[i+1]); err != nil {
				bad(p.Child(kv[i]), err.Error())
			}
		}
	}
	switch a, s := l.BindAsAuth, l.BindSearchAuth; {
	case a != nil && s != nil:
		bad(path, "set bindAsAuth or bindSearchAuth, not both")
	case a == nil && s == nil:
		errs = append(errs, field.Required(path.Child("bindAsAuth"), "bindAsAuth (simple bind) or bindSearchAuth (search+bind)"))
	case a != nil:
		p := path.Child("bindAsAuth")
		if a.Prefix == "" && a.Suffix == "" {
			errs = append(errs, field.Required(p.Child("prefix"), "prefix or suffix (the user's DN is prefix+user name+suffix)"))
		}
		values(p, "prefix", a.Prefix, "suffix", a.Suffix)
	default:
		p := path.Child("bindSearchAuth")
		if s.BaseDN == "" {
			errs = append(errs, field.Required(p.Child("baseDN"), "the DN the search for the user starts at"))
		}
		if s.SearchAttribute != "" && s.SearchFilter != "" {
			bad(p.Child("searchFilter"), "use searchAttribute or searchFilter, not both")
		}
		if s.BindPassword != nil {
			if s.BindDN == "" {
				errs = append(errs, field.Required(p.Child("bindDN"), "the DN the bind password is for"))
			}
			errs = append(errs, validateSecretName(p.Child("bindPassword", "name"), s.BindPassword.Name)...)
			if s.BindPassword.Key == "" {
				errs = append(errs, field.Required(p.Child("bindPassword", "key"), "the key holding the password"))
			}
		}
		values(p, "baseDN", s.BaseDN, "bindDN", s.BindDN, "searchAttribute", s.SearchAttribute, "searchFilter", s.SearchFilter)
	}
	return errs
}

// LDAPSecretKeys lists the secrets postgresql.ldap reads (the bind
// password, the CA), with the field naming each.
func (c *Cluster) LDAPSecretKeys() []SecretKeyUse {
	l := c.Spec.PostgresConfiguration.LDAP
	if l == nil {
		return nil
	}
	var out []SecretKeyUse
	if s := l.BindSearchAuth; s != nil && s.BindPassword != nil {
		out = append(out, SecretKeyUse{Field: "spec.postgresql.ldap.bindSearchAuth.bindPassword",
			Name: s.BindPassword.Name, Key: s.BindPassword.Key, What: "LDAP bind password"})
	}
	if l.CASecret != nil {
		out = append(out, SecretKeyUse{Field: "spec.postgresql.ldap.caSecret",
			Name: l.CASecret.Name, Key: l.CASecret.Key, What: "LDAP server CA"})
	}
	return out
}

// LDAPHBAOptions are the options of the ldap catch-all rule, in a fixed
// order, every free-text value double-quoted. bindPassword is the content
// of bindSearchAuth.bindPassword's secret ("" when there is none); it is
// checked like every other value. Errors name the field, never the value.
func (l *LDAPConfig) LDAPHBAOptions(bindPassword string) ([]string, error) {
	if errs := validateLDAP(l, field.NewPath("spec", "postgresql", "ldap")); len(errs) > 0 {
		return nil, errs.ToAggregate()
	}
	q := func(name, v string) string { return name + `="` + v + `"` }
	opts := []string{q("ldapserver", l.Server)}
	if l.Port != 0 {
		opts = append(opts, "ldapport="+strconv.Itoa(l.Port))
	}
	scheme := l.Scheme
	if scheme == "" {
		scheme = "ldap"
	}
	opts = append(opts, "ldapscheme="+scheme)
	if l.TLS {
		opts = append(opts, "ldaptls=1")
	}
	if a := l.BindAsAuth; a != nil {
		if a.Prefix != "" {
			opts = append(opts, q("ldapprefix", a.Prefix))
		}
		if a.Suffix != "" {
			opts = append(opts, q("ldapsuffix", a.Suffix))
		}
		return opts, nil
	}
	s := l.BindSearchAuth
	opts = append(opts, q("ldapbasedn", s.BaseDN))
	if s.BindDN != "" {
		opts = append(opts, q("ldapbinddn", s.BindDN))
	}
	if s.BindPassword != nil {
		if bindPassword == "" {
			return nil, errors.New("spec.postgresql.ldap.bindSearchAuth.bindPassword: the secret's key is empty")
		}
		if err := CheckLDAPValue(bindPassword); err != nil {
			return nil, fmt.Errorf("spec.postgresql.ldap.bindSearchAuth.bindPassword: the password %w", err)
		}
		opts = append(opts, q("ldapbindpasswd", bindPassword))
	}
	if s.SearchAttribute != "" {
		opts = append(opts, q("ldapsearchattribute", s.SearchAttribute))
	}
	if s.SearchFilter != "" {
		opts = append(opts, q("ldapsearchfilter", s.SearchFilter))
	}
	return opts, nil
}

// HBAHoldsSecret reports whether pg_hba.conf will hold a secret: the LDAP
// bind password of postgresql.ldap, or an ldapbindpasswd or radiussecrets
// option of a pg_hba line. PostgreSQL logs the whole pg_hba line a failed
// authentication matched, secret included, as the DETAIL of the failure
// ("Connection matched pg_hba.conf line N: ..."), so pgward then fixes
// log_error_verbosity to terse, which leaves DETAIL out of the log.
func (p *PostgresConfiguration) HBAHoldsSecret() bool {
	if l := p.LDAP; l != nil && l.BindSearchAuth != nil && l.BindSearchAuth.BindPassword != nil {
		return true
	}
	for _, line := range p.PgHBA {
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "ldapbindpasswd=") || strings.HasPrefix(f, "radiussecrets=") {
				return true
			}
		}
	}
	return false
}

// validateSecretLogging refuses a log_error_verbosity that would log the
// secret pg_hba.conf holds (see HBAHoldsSecret).
func (p *PostgresConfiguration) validateSecretLogging(path *field.Path) field.ErrorList {
	v, set := p.Parameters["log_error_verbosity"]
	if !set || !p.HBAHoldsSecret() || strings.EqualFold(v, "terse") {
		return nil
	}
	return field.ErrorList{field.Invalid(path.Child("parameters").Key("log_error_verbosity"), v,
		"pg_hba.conf holds a secret (the LDAP bind password or a RADIUS secret), which PostgreSQL logs in the DETAIL of a failed authentication: pgward keeps log_error_verbosity terse then")}
}
