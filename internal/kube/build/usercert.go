package build

import (
	corev1 "k8s.io/api/core/v1"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/pki"
)

const (
	// userCertComponent marks the Secrets `kubectl pgward certificate
	// --secret` writes: the only Secrets it may overwrite.
	userCertComponent = "user-certificate"
	// UserCertificateUserAnnotation names the PostgreSQL role a user
	// certificate Secret is for (an annotation: a role name may start with
	// '_', which a label value may not).
	UserCertificateUserAnnotation = "pgward.io/certificate-user"
)

// UserCertificateSecret is a kubernetes.io/tls Secret holding a client
// certificate for the PostgreSQL role user, with the server CA's ca.crt so
// that its holder can verify-full. It is labelled for c and owned by it:
// deleted with the Cluster, whose CA signed it.
func UserCertificateSecret(c *v1.Cluster, name, user string, kp *pki.KeyPair, serverCA []byte) *corev1.Secret {
	s := TLSSecret(c, name, userCertComponent, kp, serverCA)
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[UserCertificateUserAnnotation] = user
	return s
}

// IsUserCertificateSecret reports whether s is a Secret pgward wrote with
// UserCertificateSecret for c, which may therefore be replaced (a renewal);
// any other Secret of that name is someone else's.
func IsUserCertificateSecret(c *v1.Cluster, s *corev1.Secret) bool {
	l := s.Labels
	return s.Type == corev1.SecretTypeTLS && l[ClusterLabel] == c.Name && l[managedByLabel] == managedBy && l[componentLabel] == userCertComponent
}
