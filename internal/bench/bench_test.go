package bench

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// w is a write its server acknowledged on timeline tli at insert position
// lsn, stamped ms after t0 by the server's clock.
func w(tli uint32, lsn uint64, ms int) serverWord { return serverWord{tli: tli, lsn: lsn, srv: at(ms)} }

// TestServerOrder: split brain and divergence judged by the servers' words
// (timeline, insert position, server clock) against the final timeline's
// history, never by when a client saw the answer. Two rounds: timeline 2
// forked from 1 at 0x1000 (a → b), timeline 3 from 2 at 0x2000 (b → c).
func TestServerOrder(t *testing.T) {
	h, err := parseHistory(3, "1\t0/1000\tno recovery target specified\n\n2\t0/2000\tno recovery target specified\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name                   string
		words                  []serverWord
		divergent, overlapping int
	}{
		{"clean failovers: every write on the chain before each fork",
			[]serverWord{w(1, 0x0f00, 0), w(1, 0x0ff0, 5), w(2, 0x1100, 300), w(2, 0x1f00, 900), w(3, 0x2100, 1300)}, 0, 0},
		{"the old primary writes past the fork after the new primary's first write",
			[]serverWord{w(1, 0x0f00, 0), w(2, 0x1100, 300), w(1, 0x1200, 500)}, 1, 1},
		{"past the fork but before the new primary's first write: lost (async), not two primaries",
			[]serverWord{w(1, 0x1000, 10), w(1, 0x1080, 20), w(2, 0x1100, 300)}, 2, 0},
		{"a write stamped at the very moment of the new primary's first one counts",
			[]serverWord{w(2, 0x1100, 300), w(1, 0x1100, 300)}, 1, 1},
		// The end of a round: b, new primary of round 1, keeps writing on
		// timeline 2 until round 2 forks at 0x2000, long after timeline 2's
		// first write (300 ms). Those writes survive; only b's writes past
		// 0x2000 at or after c's first write (1300 ms) overlap.
		{"the end of round 1 is round 2's fork, not a client's clock",
			[]serverWord{w(2, 0x1100, 300), w(2, 0x1ff0, 1250), w(3, 0x2100, 1300), w(2, 0x2050, 1290), w(2, 0x2080, 1400)}, 2, 1},
		{"the old primary of round 1, rejoined on timeline 2, writes nothing divergent",
			[]serverWord{w(2, 0x1100, 300), w(2, 0x1800, 700), w(3, 0x2100, 1300)}, 0, 0},
		{"a timeline outside the final chain: divergent",
			[]serverWord{w(2, 0x1100, 300), w(4, 0x1500, 250), w(4, 0x1600, 400)}, 2, 0},
		{"a write whose word did not parse (timeline 0) shows as divergent",
			[]serverWord{{}, w(3, 0x2100, 1300)}, 1, 0},
	} {
		d, o := serverOrder(tc.words, h)
		if d != tc.divergent || o != tc.overlapping {
			t.Errorf("%s: divergent %d, overlapping %d; want %d, %d", tc.name, d, o, tc.divergent, tc.overlapping)
		}
	}
}

// TestServerOrderIgnoresClientClocks: the recorder's client times, here
// reversed around the new primary's first write as a busy machine may
// deliver them, change nothing: the old primary's last write was stamped
// by its server before the fork; the late-seen write shows no overlap, and
// an early-seen overlapping one is still counted.
func TestServerOrderIgnoresClientClocks(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "pg_wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pg_wal", "00000002.history"), []byte("1\t0/1000\treason\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{
		writes: []ack{
			{id: 1, port: 1, at: at(900), word: w(1, 0x0f00, 0)},   // seen late: the client waited for the CPU
			{id: 2, port: 2, at: at(300), word: w(2, 0x1100, 300)}, // the new primary's first write
		},
		probes: []ack{
			{port: 1, at: at(100), word: w(1, 0x1200, 600)}, // seen "before", written after: overlap
			{port: 2, at: at(950), word: w(2, 0x1200, 950)},
		},
	}
	d, o, err := splitBrain(rec, dir)
	if err != nil {
		t.Fatal(err)
	}
	if d != 1 || o != 1 {
		t.Fatalf("divergent %d, overlapping %d; want 1, 1", d, o)
	}
}

func TestParseServerWord(t *testing.T) {
	got, err := parseServerWord("000000030000000000000002", "0/2000A8", at(5))
	if err != nil || got.tli != 3 || got.lsn != 0x2000a8 || !got.srv.Equal(at(5)) {
		t.Fatalf("got %+v, %v", got, err)
	}
	for _, bad := range [][2]string{{"", "0/1"}, {"zzzzzzzz0000", "0/1"}, {"000000010000000000000001", "01"}, {"000000010000000000000001", "x/1"}} {
		if _, err := parseServerWord(bad[0], bad[1], at(0)); err == nil {
			t.Errorf("%q %q: no error", bad[0], bad[1])
		}
	}
	if _, err := parseHistory(2, "1\tnot-an-lsn\tx\n"); err == nil {
		t.Error("a bad history line was accepted")
	}
}

func TestFirstWriteAfter(t *testing.T) {
	rec := &recorder{writes: []ack{{id: 1, port: 1, at: at(-5)}, {id: 2, port: 1, at: at(10)}, {id: 3, port: 2, at: at(20)}}}
	a, ok := rec.firstWriteAfter(at(0), 1)
	if !ok || a.id != 3 {
		t.Fatalf("got %+v %v, want id 3", a, ok)
	}
	if _, ok := rec.firstWriteAfter(at(30), 1); ok {
		t.Fatal("found a write after the last one")
	}
}

func TestSummarize(t *testing.T) {
	var rounds []Round
	for i, ms := range []int{400, 100, 300, 200, 500} {
		rounds = append(rounds, Round{N: i + 1, Duration: time.Duration(ms) * time.Millisecond})
	}
	rounds = append(rounds, Round{N: 6, Err: "boom"})
	s := summarize(ModeKill, rounds)
	if s.P50 != 300*time.Millisecond || s.Max != 500*time.Millisecond || s.P95 != 500*time.Millisecond || s.FailedRounds != 1 {
		t.Fatalf("summary %+v", s)
	}
}

func TestLongestGap(t *testing.T) {
	rec := &recorder{writes: []ack{{at: at(0)}, {at: at(10)}, {at: at(400)}, {at: at(410)}, {at: at(2000)}}}
	if g := longestGap(rec, at(5), at(500)); g != 390*time.Millisecond {
		t.Fatalf("gap %s", g)
	}
}

func TestSingleHost(t *testing.T) {
	u := "postgresql://app@localhost:1,localhost:2/app?connect_timeout=3&target_session_attrs=read-write"
	want := "postgresql://app@localhost:7/app?connect_timeout=3&target_session_attrs=any"
	if got := singleHost(u, 7); got != want {
		t.Fatalf("got %s", got)
	}
}
