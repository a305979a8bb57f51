package instanceapi

import (
	"net/url"
	"strings"
	"testing"
)

func TestStreamingCheck(t *testing.T) {
	bound := int64(1 << 20)
	replica := func(status string, lag int64) *Status {
		return &Status{Ready: true, Role: RoleReplica, WALReceiver: &WALReceiver{Status: status, LagBytes: lag}}
	}
	tests := []struct {
		name string
		s    Streaming
		st   *Status
		want string // "" passes, else a part of the reason
	}{
		{"primary", Streaming{MaxLagBytes: &bound}, &Status{Ready: true, Role: RolePrimary}, ""},
		{"primary not accepting connections", Streaming{}, &Status{Role: RolePrimary}, "does not accept connections"},
		{"unknown role", Streaming{}, &Status{Ready: true, Role: RoleUnknown}, "role unknown"},
		{"replica streaming, no bound", Streaming{}, replica("streaming", 1<<40), ""},
		{"replica within the bound", Streaming{MaxLagBytes: &bound}, replica("streaming", bound), ""},
		{"replica beyond the bound", Streaming{MaxLagBytes: &bound}, replica("streaming", bound+1), "replay lag 1048577 bytes exceeds maximumLag 1048576"},
		{"replica catching up", Streaming{}, replica("catchup", 0), "not streaming"},
		{"replica without a WAL receiver", Streaming{}, &Status{Ready: true, Role: RoleReplica}, "not streaming"},
		{"designated primary beyond the bound", Streaming{MaxLagBytes: &bound}, &Status{Ready: true, Role: RoleReplica, Designated: true,
			WALReceiver: &WALReceiver{Status: "streaming", LagBytes: 2 * bound}}, "exceeds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.Check(tc.st)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Check = %v, want a pass", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Check = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestStreamingQuery: what the operator writes into a probe's path reads
// back the same, and anything else a caller may put there is refused
// rather than ignored (a dropped bound would pass a lagging replica).
func TestStreamingQuery(t *testing.T) {
	bound := int64(16 << 20)
	for _, s := range []Streaming{{}, {MaxLagBytes: &bound}} {
		q, err := url.ParseQuery(strings.TrimPrefix(s.Query(), "?"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseStreaming(q)
		if err != nil || got == nil || (got.MaxLagBytes == nil) != (s.MaxLagBytes == nil) ||
			(got.MaxLagBytes != nil && *got.MaxLagBytes != *s.MaxLagBytes) {
			t.Errorf("%s read back as %+v, %v", s.Query(), got, err)
		}
	}
	if got, err := ParseStreaming(url.Values{}); got != nil || err != nil {
		t.Errorf("no query: %+v, %v", got, err)
	}
	for _, bad := range []string{"type=query", "maximumLag=5", "type=streaming&maximumLag=-1", "type=streaming&maximumLag=1Mi",
		"type=streaming&maximumLag=1&maximumLag=2", "type=streaming&type=streaming", "type=streaming&lag=1", "type=streaming&maximumLag=99999999999999999999"} {
		q, _ := url.ParseQuery(bad)
		if got, err := ParseStreaming(q); err == nil {
			t.Errorf("%s accepted as %+v", bad, got)
		}
	}
}
