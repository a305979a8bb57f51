// Package audit checks a running cluster against pgward's security
// controls and reports one line per control: PASS, WARN or FAIL, the
// evidence, and the fix.
//
// The package decides; it does not observe. Each runtime (the local one
// in internal/local) gathers what it can see from the outside (an attack
// tried and its answer, a file read, a process listed) and hands it to the
// pure decision functions here, which turn it into a Result. A check that
// cannot observe what it needs says so with WARN, never PASS.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pgward/pgward/internal/safetext"
)

// Status is the outcome of one control.
type Status string

// The three outcomes, from best to worst.
const (
	Pass Status = "PASS"
	Warn Status = "WARN"
	Fail Status = "FAIL"
)

func (s Status) rank() int {
	switch s {
	case Pass:
		return 0
	case Warn:
		return 1
	default:
		return 2
	}
}

// Worse returns the worse of two statuses.
func Worse(a, b Status) Status {
	if b.rank() > a.rank() {
		return b
	}
	return a
}

// Result is one line of the audit.
type Result struct {
	Status   Status `json:"status"`
	Control  string `json:"control"`
	Evidence string `json:"evidence"`
	// Fix says what to do; empty on PASS.
	Fix string `json:"fix,omitempty"`
}

// Check is one control: it observes the cluster and decides.
type Check interface {
	// Control is the control's stable name, e.g. "replication-needs-certificate".
	Control() string
	Run(ctx context.Context) Result
}

// Func is a Check made of a name, a fix and a function.
type Func struct {
	Name string
	// Fix is printed with any result that is not PASS and gives no fix of its own.
	Fix string
	Fn  func(ctx context.Context) Result
}

// Control implements Check.
func (f Func) Control() string { return f.Name }

// Run implements Check.
func (f Func) Run(ctx context.Context) Result {
	r := f.Fn(ctx)
	r.Control = f.Name
	if r.Status == Pass {
		r.Fix = ""
	} else if r.Fix == "" {
		r.Fix = f.Fix
	}
	return r
}

// Run runs every check in order; the report keeps that order.
func Run(ctx context.Context, checks []Check) []Result {
	out := make([]Result, 0, len(checks))
	for _, c := range checks {
		out = append(out, c.Run(ctx))
	}
	return out
}

// Failed reports whether any result is FAIL.
func Failed(rs []Result) bool {
	for _, r := range rs {
		if r.Status == Fail {
			return true
		}
	}
	return false
}

// Print writes the results as text (one line per control) or as a JSON list.
func Print(w io.Writer, rs []Result, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rs)
	case "", "text", "table":
		for _, r := range rs {
			line := fmt.Sprintf("%-4s  %s  %s", r.Status, r.Control, oneLine(r.Evidence))
			if r.Fix != "" {
				line += "  fix: " + oneLine(r.Fix)
			}
			if _, err := fmt.Fprintln(w, line); err != nil {
				return err
			}
		}
		return nil
	default:
		return fmt.Errorf("unknown output format %q (text or json)", format)
	}
}

// oneLine escapes control characters: evidence may carry names the
// cluster's owner chose (a file called "x\nPASS  ..."), which must not
// start a line of their own or rewrite the terminal. JSON escapes them
// by itself.
func oneLine(s string) string {
	if strings.IndexFunc(s, safetext.Forbidden) < 0 && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case safetext.Forbidden(r):
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Part is what one check found about one subject (an instance, a secret).
type Part struct {
	Subject  string
	Status   Status
	Evidence string
}

// Combine makes one Result of the parts of a check: the worst status wins,
// and the evidence lists the parts that are not PASS first (all of them
// when every part passed).
func Combine(parts []Part) Result {
	if len(parts) == 0 {
		return Result{Status: Warn, Evidence: "nothing to check (no instance or secret found)"}
	}
	st := Pass
	for _, p := range parts {
		st = Worse(st, p.Status)
	}
	sorted := append([]Part(nil), parts...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Status.rank() > sorted[j].Status.rank() })
	var ev []string
	for _, p := range sorted {
		if st != Pass && p.Status == Pass {
			continue
		}
		e := p.Evidence
		if p.Subject != "" {
			e = p.Subject + ": " + e
		}
		ev = append(ev, e)
	}
	return Result{Status: st, Evidence: strings.Join(ev, "; ")}
}
