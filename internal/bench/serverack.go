package bench

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The server-order rule of serverOrder for clients that are not this
// package's own: the real-pod tests (test/kube) write with psql from pods
// and from the node, and judge their writes by what the servers said.

// ServerAckEpochSQL is serverAckSQL for clients that read text (psql): the
// server's clock as seconds since the epoch, whatever its DateStyle and
// TimeZone.
const ServerAckEpochSQL = "pg_walfile_name(pg_current_wal_insert_lsn()), pg_current_wal_insert_lsn()::text, extract(epoch from clock_timestamp())"

// ServerAck is one acknowledged write as its server reported it, with the
// client's clock reading once it had the acknowledgement.
type ServerAck struct{ word serverWord }

// Timeline is the timeline the server wrote on.
func (a ServerAck) Timeline() uint32 { return a.word.tli }

// Server is the server's clock while it ran the write.
func (a ServerAck) Server() time.Time { return a.word.srv }

// ParseServerAck reads ServerAckEpochSQL's three columns as psql prints
// them. acked is the client's clock right after the write returned; give
// it only when that clock is the servers' own (one machine, or pods of one
// node), else the zero time.
func ParseServerAck(walfile, lsn, epoch string, acked time.Time) (ServerAck, error) {
	srv, err := parseEpoch(epoch)
	if err != nil {
		return ServerAck{}, err
	}
	w, err := parseServerWord(walfile, lsn, srv)
	if err != nil {
		return ServerAck{}, err
	}
	w.acked = acked
	return ServerAck{word: w}, nil
}

// parseEpoch reads "seconds[.fraction]" exactly (a float would round the
// microseconds away at today's epoch).
func parseEpoch(s string) (time.Time, error) {
	sec, frac, _ := strings.Cut(strings.TrimSpace(s), ".")
	n, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("server clock %q: not seconds since the epoch", s)
	}
	var ns int64
	if frac != "" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		f, err := strconv.ParseUint(frac, 10, 32)
		if err != nil {
			return time.Time{}, fmt.Errorf("server clock %q: %w", s, err)
		}
		ns = int64(f)
		for range 9 - len(frac) {
			ns *= 10
		}
	}
	return time.Unix(n, ns).UTC(), nil
}

// FirstAfterTimeline is the server's clock at the earliest write acks holds
// on a timeline later than tli: by its own clock, when the primary that
// replaced tli's took its first write (a lower bound of that commit).
func FirstAfterTimeline(acks []ServerAck, tli uint32) (time.Time, bool) {
	var first time.Time
	for _, a := range acks {
		if a.word.tli > tli && (first.IsZero() || a.word.srv.Before(first)) {
			first = a.word.srv
		}
	}
	return first, !first.IsZero()
}

// SplitBrain judges acks by server order (serverOrder) against the final
// timeline's history file, historyText (PostgreSQL's <final>.history; empty
// for timeline 1): the writes the surviving history does not hold, and of
// those the ones acknowledged at or after the first write of the timeline
// that replaced theirs (two writable primaries at once).
func SplitBrain(acks []ServerAck, final uint32, historyText string) (divergent, overlapping int, err error) {
	h, err := parseHistory(final, historyText)
	if err != nil {
		return 0, 0, err
	}
	words := make([]serverWord, len(acks))
	for i, a := range acks {
		words[i] = a.word
	}
	divergent, overlapping = serverOrder(words, h)
	return divergent, overlapping, nil
}
