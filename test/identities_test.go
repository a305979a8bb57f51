package test

import (
	"testing"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/pki"
)

// The names validation reserves are the names pgward's certificates carry:
// api/v1 and pki import nothing from each other, so a test keeps them equal.
func TestIdentityNamesAgree(t *testing.T) {
	if v1.ControllerIdentity != pki.ControllerCommonName {
		t.Errorf("api/v1 reserves %q, the controller's certificate says %q", v1.ControllerIdentity, pki.ControllerCommonName)
	}
	if v1.ReplicationUser != pki.ReplicationCommonName {
		t.Errorf("api/v1 reserves %q, the replication certificate says %q", v1.ReplicationUser, pki.ReplicationCommonName)
	}
	if v1.MetricsIdentity != pki.MetricsCommonName {
		t.Errorf("api/v1 reserves %q, the metrics certificate says %q", v1.MetricsIdentity, pki.MetricsCommonName)
	}
}
