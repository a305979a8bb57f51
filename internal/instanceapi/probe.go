package instanceapi

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
)

// Streaming is the "streaming" strategy of a startup or readiness check
// (CloudNativePG's probe type): on top of pgward's own check, a replica
// must stream from its upstream, and with MaxLagBytes set replay within
// that many bytes of the WAL the upstream last reported. The kubelet asks
// for it in the probe's query string; the local runtime applies it to the
// status it polls. Both decide with Check.
type Streaming struct {
	// MaxLagBytes bounds the replay lag; nil means no bound.
	MaxLagBytes *int64
}

// Query parameters of PathHealthz and PathReadyz that ask for Streaming.
const (
	ProbeTypeParam   = "type"
	ProbeMaxLagParam = "maximumLag"
	probeStreaming   = "streaming"
)

// Query is the query string (with its "?") that asks a probe path for s.
func (s Streaming) Query() string {
	v := url.Values{ProbeTypeParam: {probeStreaming}}
	if s.MaxLagBytes != nil {
		v.Set(ProbeMaxLagParam, strconv.FormatInt(*s.MaxLagBytes, 10))
	}
	return "?" + v.Encode()
}

// ParseStreaming reads what Query wrote; nil when the query asks for no
// strategy (pgward's own check alone). Anything else is an error: a probe
// that silently ignored a bound it was given would pass when it must not.
func ParseStreaming(q url.Values) (*Streaming, error) {
	for k := range q {
		if k != ProbeTypeParam && k != ProbeMaxLagParam {
			return nil, fmt.Errorf("unknown probe parameter %q", k)
		}
	}
	if len(q) == 0 {
		return nil, nil
	}
	if q.Get(ProbeTypeParam) != probeStreaming || len(q[ProbeTypeParam]) != 1 {
		return nil, fmt.Errorf("probe parameter %s must be %s", ProbeTypeParam, probeStreaming)
	}
	s := &Streaming{}
	if vs, ok := q[ProbeMaxLagParam]; ok {
		if len(vs) != 1 {
			return nil, fmt.Errorf("probe parameter %s given %d times", ProbeMaxLagParam, len(vs))
		}
		n, err := strconv.ParseInt(vs[0], 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("probe parameter %s must be a byte count, not %q", ProbeMaxLagParam, vs[0])
		}
		s.MaxLagBytes = &n
	}
	return s, nil
}

// Check decides whether st passes the streaming strategy, and says why not.
// A primary passes when it accepts connections: it has no upstream to lag
// behind (a designated primary of a replica cluster does, and is held to
// it like any replica).
func (s Streaming) Check(st *Status) error {
	switch {
	case !st.Ready:
		return errors.New("PostgreSQL does not accept connections")
	case st.Role == RolePrimary:
		return nil
	case st.Role != RoleReplica:
		return fmt.Errorf("role %s", st.Role)
	case st.WALReceiver == nil || st.WALReceiver.Status != "streaming":
		return errors.New("not streaming from its upstream")
	case s.MaxLagBytes != nil && st.WALReceiver.LagBytes > *s.MaxLagBytes:
		return fmt.Errorf("replay lag %d bytes exceeds maximumLag %d", st.WALReceiver.LagBytes, *s.MaxLagBytes)
	}
	return nil
}
