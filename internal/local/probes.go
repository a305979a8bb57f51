package local

import (
	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
)

// streamingChecks returns the streaming strategies c's startup and
// readiness probes ask for (probes.*.type streaming, maximumLag). There
// is no kubelet locally: `up` waits until every instance passes the
// startup and readiness ones, and `status` shows an instance failing the
// readiness one as not ready, with the reason.
func streamingChecks(c *v1.Cluster) (startup, readiness *instanceapi.Streaming) {
	if c == nil || c.Spec.Probes == nil {
		return nil, nil
	}
	if ok, lag := c.Spec.Probes.Startup.StreamingLag(); ok {
		startup = &instanceapi.Streaming{MaxLagBytes: lag}
	}
	if ok, lag := c.Spec.Probes.Readiness.StreamingLag(); ok {
		readiness = &instanceapi.Streaming{MaxLagBytes: lag}
	}
	return startup, readiness
}

// passStreaming reports whether st passes every strategy asked for, and
// the first reason it does not.
func passStreaming(st *instanceapi.Status, checks ...*instanceapi.Streaming) error {
	for _, s := range checks {
		if s == nil {
			continue
		}
		if err := s.Check(st); err != nil {
			return err
		}
	}
	return nil
}
