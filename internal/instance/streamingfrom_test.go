package instance

import (
	"testing"

	"github.com/pgward/pgward/internal/instanceapi"
)

func TestStreamingFrom(t *testing.T) {
	follow := instanceapi.Endpoint{Name: "c-2", Host: "c-rw", Port: 5432}
	streaming := &instanceapi.WALReceiver{Status: "streaming", SenderHost: "c-rw", SenderPort: 5432}
	for _, tc := range []struct {
		name string
		st   instanceapi.Status
		want string
	}{
		{"streaming from the primary it follows", instanceapi.Status{Name: "c-1", WALReceiver: streaming}, "c-2"},
		{"another replica cascades from it: still streaming", instanceapi.Status{Name: "c-1", WALReceiver: streaming,
			Replication: []instanceapi.Peer{{ApplicationName: "c-3"}}}, "c-2"},
		{"the Service led it to itself", instanceapi.Status{Name: "c-1", WALReceiver: streaming,
			Replication: []instanceapi.Peer{{ApplicationName: "c-1"}}}, ""},
		{"no WAL receiver", instanceapi.Status{Name: "c-1"}, ""},
		{"not streaming yet", instanceapi.Status{Name: "c-1", WALReceiver: &instanceapi.WALReceiver{Status: "starting", SenderPort: 5432}}, ""},
		{"another port", instanceapi.Status{Name: "c-1", WALReceiver: &instanceapi.WALReceiver{Status: "streaming", SenderPort: 5433}}, ""},
		{"a designated primary streams from the source", instanceapi.Status{Name: "c-1", WALReceiver: streaming, Designated: true}, ""},
	} {
		if got := streamingFrom(&tc.st, follow); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
