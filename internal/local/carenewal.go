package local

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/pki"
	"github.com/pgward/pgward/internal/secrets"
)

// caFinishMargin is how long before the old CA expires an automatic CA
// renewal finishes its overlap (the server certificate moves to the new
// CA, the old CA leaves the bundle).
//
// The overlap is what lets clients that copied ca.crt before the renewal
// fetch the new one: it should last as long as possible, and it cannot
// outlive the old CA, since the server certificate it signed (capped at its
// expiry) is what those clients verify. The renewal starts when the CA is
// due (pki.RenewBefore, 7 days, before its expiry) and finishes one day
// before the old CA expires, so clients get the rest of the renewal window
// less a day (6 days when the controller ran at the time); the day left
// leaves 24 hourly checks (and the 30 s retries between them) to finish
// even if instances or the lock are busy, before anything expires.
const caFinishMargin = 24 * time.Hour

// CA renewal timing of the running controller.
const (
	// pkiCheckInterval is how often certificates are checked when nothing
	// is due sooner.
	pkiCheckInterval = time.Hour
	// pkiRetryInterval is how soon a check that could not complete (the
	// lock busy, an instance not confirming) is tried again.
	pkiRetryInterval = 30 * time.Second
	// pkiCheckTimeout bounds one check, so that it never keeps `up`,
	// `down` or `rotate-ca` waiting for long on the lock it holds.
	pkiCheckTimeout = time.Minute
)

// caStep is what the renewal check does with the generated CA.
type caStep int

const (
	// caNothing: the CA is not due (or is missing or unusable, which
	// ensurePKI handles by replacing it at once).
	caNothing caStep = iota
	// caStart: the CA is due; a new one signs, trusted beside the old.
	caStart
	// caClients: an overlap is under way and the client certificates are
	// not yet on the new CA.
	caClients
	// caOverlap: the client certificates are on the new CA; the old one
	// stays trusted until finishAt.
	caOverlap
	// caFinish: the server certificate moves to the new CA and the old CA
	// leaves the bundle.
	caFinish
)

func (s caStep) String() string {
	return [...]string{"nothing", "start", "clients", "overlap", "finish"}[s]
}

// caDecision is the step and, during an overlap, when it may end.
type caDecision struct {
	step     caStep
	finishAt time.Time
}

// decideCA decides the renewal step from what the CA secret holds (bundle,
// the signing CA first, as rotate-ca writes it), whether every generated
// client certificate is signed by the first CA, and the time. The secrets
// are the state: a controller restarted in the middle of a renewal decides
// the same step again, and every step can run twice.
func decideCA(bundle []*x509.Certificate, clientsOnNew bool, now time.Time) caDecision {
	switch {
	case len(bundle) == 0:
		return caDecision{}
	case len(bundle) == 1:
		ca := bundle[0]
		if pki.NeedsRenewal(ca, now) && !now.Before(ca.NotBefore) && now.Before(ca.NotAfter) {
			return caDecision{step: caStart}
		}
		return caDecision{}
	}
	finishAt := bundle[1].NotAfter
	for _, old := range bundle[2:] {
		if old.NotAfter.Before(finishAt) {
			finishAt = old.NotAfter
		}
	}
	finishAt = finishAt.Add(-caFinishMargin)
	if !clientsOnNew {
		return caDecision{step: caClients, finishAt: finishAt}
	}
	if now.Before(finishAt) {
		return caDecision{step: caOverlap, finishAt: finishAt}
	}
	return caDecision{step: caFinish, finishAt: finishAt}
}

// autoRenewCA runs one step of the automatic renewal of the generated CA
// and returns when to check again. The caller holds up.lock. A user-provided
// CA is never touched: the user replaces it in its secret.
func (r *caRotation) autoRenewCA(ctx context.Context) (time.Duration, error) {
	// Each step moves to the next one (start, clients, overlap or finish),
	// so four rounds are enough; a step that does not is retried later.
	for range 4 {
		d, err := r.decide()
		if err != nil {
			return pkiRetryInterval, err
		}
		now := r.now()
		switch d.step {
		case caNothing:
			return pkiCheckInterval, nil
		case caOverlap:
			return min(pkiCheckInterval, max(d.finishAt.Sub(now), time.Second)), nil
		case caStart:
			if err := r.begin(); err != nil {
				return pkiRetryInterval, err
			}
		case caClients:
			if err := r.reissueClients(ctx); err != nil {
				return pkiRetryInterval, err
			}
			if d, err := r.decide(); err == nil && d.step == caOverlap {
				r.say(fmt.Sprintf("the client certificates are on the new CA; the server certificate stays on the old one, "+
					"which stays trusted until %s so that clients can fetch the new %s/%s/ca.crt",
					d.finishAt.UTC().Format(time.RFC3339), r.layout.SecretsDir(), r.caSecret))
			}
		case caFinish:
			return pkiCheckInterval, r.finish(ctx)
		}
	}
	return pkiRetryInterval, fmt.Errorf("the CA renewal of %s did not advance", r.caSecret)
}

// decide reads the CA secret and the client certificates and decides.
func (r *caRotation) decide() (caDecision, error) {
	data, err := r.store.Get(r.caSecret)
	if err != nil {
		return caDecision{}, fmt.Errorf("CA secret %q: %w", r.caSecret, err)
	}
	bundle := bundleCerts(data[keyCACert])
	clientsOnNew := len(bundle) > 0
	for _, leaf := range r.generatedLeaves() {
		if leaf.server || !clientsOnNew {
			continue
		}
		ld, err := r.store.Get(leaf.secret)
		if err != nil {
			clientsOnNew = false
			continue
		}
		cert, err := pki.ParseCertificatePEM(ld[keyTLSCert])
		clientsOnNew = err == nil && cert.CheckSignatureFrom(bundle[0]) == nil
	}
	return decideCA(bundle, clientsOnNew, r.now()), nil
}

// generatedCARotation prepares a rotation of the CA pgward generated for c,
// or returns nil when c uses user-provided CAs only: those are the user's
// to replace.
func generatedCARotation(l Layout, c *v1.Cluster, st *State, store secrets.DirStore) *caRotation {
	names := tlsNamesFor(c)
	caSecret := c.Name + "-ca"
	if names.ServerCA != caSecret && names.ClientCA != caSecret {
		return nil
	}
	return &caRotation{layout: l, cluster: c, state: st, names: names, caSecret: caSecret, store: store,
		timeout: pkiCheckTimeout, say: func(string) {}}
}
