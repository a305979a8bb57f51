package bench

import (
	"fmt"
	"testing"
	"time"
)

// sa is an acknowledged write as ParseServerAck reads it: timeline tli,
// insert position lsn, stamped srvMS after t0 by its server, the client's
// clock (the same clock) ackMS after t0 once it had the answer.
func sa(t *testing.T, tli uint32, lsn uint64, srvMS, ackMS int) ServerAck {
	t.Helper()
	srv := at(srvMS)
	a, err := ParseServerAck(fmt.Sprintf("%08X0000000000000001", tli), fmt.Sprintf("%X/%X", lsn>>32, lsn&0xffffffff),
		fmt.Sprintf("%d.%06d", srv.Unix(), srv.Nanosecond()/1000), at(ackMS))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestSplitBrainByServerOrder: the real-pod rule. The new primary's first
// write is when its own server ran it; an old primary's write counts from
// its acknowledgement as seen on the same clock (its commit comes after the
// server's stamp and before that), so a late commit is never hidden, and
// no client delay on the new primary's side can hide one either.
func TestSplitBrainByServerOrder(t *testing.T) {
	const hist = "1\t0/1000\tno recovery target specified\n"
	for _, tc := range []struct {
		name                   string
		acks                   func() []ServerAck
		divergent, overlapping int
	}{
		{"the cut-off primary's writes all acknowledged before the new primary's first",
			func() []ServerAck {
				return []ServerAck{sa(t, 1, 0x0f00, 0, 20), sa(t, 1, 0x1100, 2900, 2950), sa(t, 2, 0x1200, 6000, 6100)}
			}, 1, 0},
		{"stamped before the new primary's first write, acknowledged after it: overlap",
			func() []ServerAck { return []ServerAck{sa(t, 2, 0x1200, 6000, 6100), sa(t, 1, 0x1100, 5990, 6010)} }, 1, 1},
		{"the new primary's client saw its first write late: the server's stamp counts, the late old write is caught",
			func() []ServerAck { return []ServerAck{sa(t, 2, 0x1200, 300, 900), sa(t, 1, 0x1100, 500, 600)} }, 1, 1},
		{"the old primary's client was slow to read its answer: reported (never hidden)",
			func() []ServerAck { return []ServerAck{sa(t, 1, 0x1100, 100, 400), sa(t, 2, 0x1200, 300, 310)} }, 1, 1},
		{"writes the new timeline holds (before the fork) never overlap, however late their client saw them",
			func() []ServerAck { return []ServerAck{sa(t, 1, 0x0f00, 100, 9000), sa(t, 2, 0x1200, 300, 310)} }, 0, 0},
	} {
		d, o, err := SplitBrain(tc.acks(), 2, hist)
		if err != nil {
			t.Fatal(err)
		}
		if d != tc.divergent || o != tc.overlapping {
			t.Errorf("%s: divergent %d, overlapping %d; want %d, %d", tc.name, d, o, tc.divergent, tc.overlapping)
		}
	}
	if _, _, err := SplitBrain(nil, 2, "1\tnot-an-lsn\tx\n"); err == nil {
		t.Error("a bad history was accepted")
	}
}

func TestFirstAfterTimeline(t *testing.T) {
	acks := []ServerAck{sa(t, 1, 0x100, 0, 1), sa(t, 3, 0x2100, 900, 2000), sa(t, 2, 0x1100, 500, 3000), sa(t, 2, 0x1000, 400, 5000)}
	for _, tc := range []struct {
		tli  uint32
		want int
		ok   bool
	}{{1, 400, true}, {2, 900, true}, {3, 0, false}} {
		got, ok := FirstAfterTimeline(acks, tc.tli)
		if ok != tc.ok || (ok && !got.Equal(at(tc.want))) {
			t.Errorf("after timeline %d: %v %v; want %v %v", tc.tli, got, ok, at(tc.want), tc.ok)
		}
	}
}

func TestParseServerAck(t *testing.T) {
	a, err := ParseServerAck("000000050000000000000003", "0/30000D8", "1796572800.123456", time.Time{})
	if err != nil || a.Timeline() != 5 || a.word.lsn != 0x30000d8 || !a.Server().Equal(time.Unix(1796572800, 123456000)) {
		t.Fatalf("got %+v, %v", a, err)
	}
	if a, err := ParseServerAck("000000010000000000000001", "0/1", "1796572800", time.Time{}); err != nil || !a.Server().Equal(time.Unix(1796572800, 0)) {
		t.Errorf("whole seconds: %+v, %v", a, err)
	}
	for _, bad := range [][3]string{
		{"000000010000000000000001", "0/1", ""},
		{"000000010000000000000001", "0/1", "-5.1"},
		{"000000010000000000000001", "0/1", "12.x"},
		{"000000010000000000000001", "0/1", "2026-12-06 21:00:00+00"},
		{"", "0/1", "1.5"},
		{"000000010000000000000001", "1", "1.5"},
	} {
		if _, err := ParseServerAck(bad[0], bad[1], bad[2], time.Time{}); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
