package bench

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func TestSplitBrainCountsWritesOfTheOldPrimaryAfterTheNewOnes(t *testing.T) {
	ports := map[string]int{"a": 1, "b": 2, "c": 3}
	rounds := []Round{{N: 1, OldPrimary: "a", NewPrimary: "b", Start: at(0), FirstWrite: at(300)}}
	cases := []struct {
		name   string
		writes []ack
		probes []ack
		want   int
	}{
		{"clean failover", []ack{{port: 1, at: at(-10)}, {port: 2, at: at(300)}, {port: 2, at: at(310)}}, nil, 0},
		{"old primary acknowledges after the new one", []ack{{port: 2, at: at(300)}}, []ack{{port: 1, at: at(500)}}, 1},
		{"a third instance accepts a write", []ack{{port: 2, at: at(300)}}, []ack{{port: 3, at: at(400)}, {port: 3, at: at(450)}}, 2},
		{"old primary's last write before the kill", []ack{{port: 1, at: at(-1)}, {port: 2, at: at(300)}}, []ack{{port: 1, at: at(-5)}}, 0},
	}
	for _, c := range cases {
		rec := &recorder{writes: c.writes, probes: c.probes}
		if got := splitBrain(rec, rounds, ports); got != c.want {
			t.Errorf("%s: splitBrain = %d, want %d", c.name, got, c.want)
		}
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
