package audit

import (
	"strings"
	"testing"
)

func TestDecideWalDir(t *testing.T) {
	const dir = "/var/lib/postgresql/wal/pg_wal"
	cases := []struct {
		name string
		w    WalDir
		st   Status
		want string
	}{
		{"linked, 0700, postgres's", WalDir{Dir: dir, Link: dir, Mode: 0o700, UID: 26}, Pass, "pg_wal links to " + dir},
		{"group access", WalDir{Dir: dir, Link: dir, Mode: 0o750, UID: 26}, Pass, "0750"},
		{"in the data volume", WalDir{Dir: dir, Mode: 0o700, UID: 26}, Fail, "pg_wal is not a symbolic link"},
		{"linked elsewhere", WalDir{Dir: dir, Link: "/tmp/x", Mode: 0o700, UID: 26}, Fail, "pg_wal is /tmp/x"},
		{"others may read", WalDir{Dir: dir, Link: dir, Mode: 0o704, UID: 26}, Fail, "0704 (want 0700)"},
		{"group may write", WalDir{Dir: dir, Link: dir, Mode: 0o770, UID: 26}, Fail, "0770"},
		{"root's", WalDir{Dir: dir, Link: dir, Mode: 0o700, UID: 0}, Fail, "owned by uid 0 (want 26)"},
	}
	for _, c := range cases {
		p := DecideWalDir("i-1", c.w, 26)
		if p.Status != c.st || p.Subject != "i-1" || !strings.Contains(p.Evidence, c.want) {
			t.Errorf("%s: %+v, want %v containing %q", c.name, p, c.st, c.want)
		}
	}
}
