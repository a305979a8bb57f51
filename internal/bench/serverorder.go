package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// What a server says about each write it acknowledged, and how the
// benchmark decides from it alone whether two instances accepted writes at
// once. Client timestamps are taken when an answer reaches a client
// goroutine: on a busy machine one that waited to be scheduled looks later
// than it was (inventing an overlap) and a late first write of the new
// primary hides writes of the old one. The servers' own words cannot be
// reordered that way.

// serverAckSQL is what every benchmark write returns besides its own
// columns: the server's WAL file name for its insert position (whose first
// 8 hex digits are the timeline it writes on: pg_walfile_name uses the
// insertion timeline), that position (at or before the write's own WAL
// records), and the server's clock when it ran the statement.
const serverAckSQL = "pg_walfile_name(pg_current_wal_insert_lsn()), pg_current_wal_insert_lsn()::text, clock_timestamp()"

// serverWord is one acknowledged write as its server reported it.
type serverWord struct {
	tli uint32
	lsn uint64
	srv time.Time
	// acked, when known, is a clock reading taken after the client got the
	// acknowledgement, on the clock the servers read (real pods of one
	// node: CLOCK_REALTIME is not namespaced). The commit lies between srv
	// and acked; a client that waited for the CPU only makes acked later,
	// so judging by it can report an overlap that was not, never hide one.
	acked time.Time
}

// latest is the last moment the write can have been acknowledged at.
func (w serverWord) latest() time.Time {
	if w.acked.After(w.srv) {
		return w.acked
	}
	return w.srv
}

// parseServerWord reads serverAckSQL's three columns.
func parseServerWord(walfile, lsn string, srv time.Time) (serverWord, error) {
	if len(walfile) < 8 {
		return serverWord{}, fmt.Errorf("WAL file name %q", walfile)
	}
	tli, err := strconv.ParseUint(walfile[:8], 16, 32)
	if err != nil {
		return serverWord{}, fmt.Errorf("WAL file name %q: %w", walfile, err)
	}
	l, err := parseLSN(lsn)
	if err != nil {
		return serverWord{}, err
	}
	return serverWord{tli: uint32(tli), lsn: l, srv: srv}, nil
}

func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return 0, fmt.Errorf("LSN %q", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("LSN %q: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("LSN %q: %w", s, err)
	}
	return h<<32 | l, nil
}

// history is the final timeline and, for each of its ancestors, the LSN
// at which the next timeline of the chain forked from it: PostgreSQL's
// timeline history file of the final timeline.
type history struct {
	final    uint32
	switchAt map[uint32]uint64
}

// parseHistory reads a timeline history file ("parentTLI switchpoint
// reason" lines; comments and blank lines skipped).
func parseHistory(final uint32, text string) (history, error) {
	h := history{final: final, switchAt: map[uint32]uint64{}}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		tli, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil {
			return h, fmt.Errorf("timeline history line %q: %w", line, err)
		}
		at, err := parseLSN(f[1])
		if err != nil {
			return h, fmt.Errorf("timeline history line %q: %w", line, err)
		}
		h.switchAt[uint32(tli)] = at
	}
	return h, nil
}

// readHistory reads the final timeline's history file from a data
// directory (none for timeline 1).
func readHistory(dataDir string, final uint32) (history, error) {
	if final <= 1 {
		return history{final: final, switchAt: map[uint32]uint64{}}, nil
	}
	b, err := os.ReadFile(filepath.Join(dataDir, "pg_wal", fmt.Sprintf("%08X.history", final))) // #nosec G304 -- inside the benchmark's state dir
	if err != nil {
		return history{}, err
	}
	return parseHistory(final, string(b))
}

// successor is the timeline of the final chain that forked from tli, or
// for a timeline outside the chain (a branch abandoned later) the first
// timeline of the chain after it; false for the final timeline.
func (h history) successor(tli uint32) (uint32, bool) {
	next, ok := h.final, tli < h.final
	for t := range h.switchAt {
		if t > tli && t < next {
			next = t
		}
	}
	return next, ok
}

// survives reports whether the surviving history holds the write: it is
// on the final timeline, or on an ancestor before the point where the next
// timeline forked. A write whose insert position is at or past that point
// was not carried over, whatever the client saw.
func (h history) survives(w serverWord) bool {
	if w.tli == h.final {
		return true
	}
	at, ok := h.switchAt[w.tli]
	return ok && w.lsn < at
}

// serverOrder counts, from the servers' words alone, the acknowledged
// writes the surviving history does not hold (divergent: under
// synchronous replication none may exist; under asynchronous ones the
// last commits before a failover are lost this way) and, of those, the
// ones their server ran at or after the moment the timeline that replaced
// theirs took its first write (overlapping: two writable primaries at
// once). Both moments are read from the servers' clock_timestamp() (the
// old write's from its acknowledgement instead when that is known and
// later: see serverWord.acked): the
// instances of one machine (or one node) read one clock, and each stamp is
// taken by the server that did the write, not by a client that may have
// been waiting for the CPU. A round ends by itself: the old primary's
// writes after it rejoined are on the new timeline, and survive.
func serverOrder(words []serverWord, h history) (divergent, overlapping int) {
	first := map[uint32]time.Time{}
	for _, w := range words {
		if f, ok := first[w.tli]; !ok || w.srv.Before(f) {
			first[w.tli] = w.srv
		}
	}
	for _, w := range words {
		if h.survives(w) {
			continue
		}
		divergent++
		next, ok := h.successor(w.tli)
		if f, seen := first[next]; ok && seen && !w.latest().Before(f) {
			overlapping++
		}
	}
	return divergent, overlapping
}
