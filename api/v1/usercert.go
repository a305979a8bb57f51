package v1

import (
	"fmt"
	"strings"
	"time"
)

// Client certificates for PostgreSQL users (`pgward local certificate`,
// `kubectl pgward certificate`): one decision for both runtimes.

const (
	// DefaultUserCertificateValidity is how long a user's client
	// certificate is valid unless asked otherwise. Short, because a
	// client certificate cannot be revoked (PostgreSQL reads no CRL
	// pgward writes): the only way to take a leaked one back is to let it
	// expire, or to rotate the client CA.
	DefaultUserCertificateValidity = 7 * 24 * time.Hour
	// MaxUserCertificateValidity is the longest a user may ask for: the
	// validity of pgward's own certificates (the CA caps it too).
	MaxUserCertificateValidity = 90 * 24 * time.Hour
	// minUserCertificateValidity keeps a typo (--valid-for 1s) from
	// issuing a certificate that is dead on arrival.
	minUserCertificateValidity = time.Minute
)

// CheckUserCertificate decides whether a client certificate may be issued
// for the PostgreSQL role user of c, valid for validity. Refused: names
// that are not plain PostgreSQL identifiers (the name becomes the
// certificate's CN and a path in pg_hba matching); pgward's own identities
// in any letter case (streaming_replica's certificate is replication, the
// controller's commands the instances, the metrics one scrapes them,
// pgward_monitor runs custom queries over the socket only); PostgreSQL's
// predefined pg_ roles; and postgres unless superuser access is on, as
// with its password.
func (c *Cluster) CheckUserCertificate(user string, validity time.Duration) error {
	for _, id := range []string{ReplicationUser, ControllerIdentity, MetricsIdentity, MonitorRole, "root"} {
		if strings.EqualFold(user, id) {
			return fmt.Errorf("user %q is one of pgward's own identities: its certificate is pgward's alone", user)
		}
	}
	switch {
	case strings.EqualFold(user, SuperuserRole):
		if c.Spec.EnableSuperuserAccess == nil || !*c.Spec.EnableSuperuserAccess {
			return fmt.Errorf("user: a certificate for %q needs enableSuperuserAccess: true", SuperuserRole)
		}
		if user != SuperuserRole {
			return fmt.Errorf("user %q: the superuser is %q", user, SuperuserRole)
		}
	case !identifierRE.MatchString(user):
		return fmt.Errorf("user %q is not a valid PostgreSQL identifier (a lower-case letter or '_', then letters, digits or '_', at most 63)", user)
	case strings.HasPrefix(user, "pg_"):
		return fmt.Errorf("user %q: the pg_ prefix is PostgreSQL's predefined roles, which cannot log in", user)
	}
	if validity < minUserCertificateValidity || validity > MaxUserCertificateValidity {
		return fmt.Errorf("validity %s: between %s and %s", validity, minUserCertificateValidity, MaxUserCertificateValidity)
	}
	return nil
}
