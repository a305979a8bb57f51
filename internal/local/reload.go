package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
)

// ReloadOptions configure `pgward local reload`.
type ReloadOptions struct {
	Dir     string
	Timeout time.Duration
	Out     io.Writer
	// now names the request; tests may fix it.
	now func() time.Time
}

// Reload makes every running instance apply the stored manifest, the
// secrets and the certificates now, as its periodic check (every
// instance.TLSCheckInterval) would: the instance re-renders its files,
// reloads PostgreSQL and reports the outcome, which Reload waits for. It
// fails naming each instance where the configuration is not in effect; a
// parameter that needs a restart is reported, pointing at `restart`.
func Reload(ctx context.Context, o ReloadOptions) error {
	l := Layout{Dir: o.Dir}
	if o.Timeout == 0 {
		o.Timeout = time.Minute
	}
	if o.now == nil {
		o.now = time.Now
	}
	manifest, err := os.ReadFile(l.ClusterFile())
	if err != nil {
		return fmt.Errorf("reading the stored manifest: %w", err)
	}
	// The instances refuse an invalid manifest too; this says why at once.
	if _, err := v1.LoadAndValidate(manifest); err != nil {
		return fmt.Errorf("the stored manifest %s: %w", l.ClusterFile(), err)
	}
	st, err := LoadState(l)
	if err != nil {
		return err
	}
	cl, err := newStatusClient(l, st.Cluster, 5*time.Second)
	if err != nil {
		return err
	}
	defer cl.CloseIdle()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	sum := sha256.Sum256(manifest)
	req := instanceapi.ReloadRequest{ID: "local-" + strconv.FormatInt(o.now().UnixNano(), 10), ManifestSHA256: hex.EncodeToString(sum[:])}
	sts, errs := observe(ctx, cl, st)
	outcomes := make([]instanceapi.ReloadOutcome, len(st.Instances))
	asked := map[int]bool{}
	for i, is := range st.Instances {
		outcomes[i].Instance = is.Name
		switch {
		case errs[i] != nil:
			outcomes[i].Err = "its instance manager does not answer: " + errs[i].Error()
		case !sts[i].PostmasterRunning:
			outcomes[i].Skipped = "PostgreSQL is not running there (" + instanceapi.StateOf(sts[i]) + "); it reads the configuration when it starts"
		default:
			if err := cl.Reload(ctx, statusAddr(is), req); err != nil {
				outcomes[i].Err = err.Error()
				continue
			}
			asked[i] = true
		}
	}
	instanceapi.WaitReloads(ctx, req.ID, 50*time.Millisecond, func() map[int]*instanceapi.Status {
		sts, _ := observe(ctx, cl, st)
		out := map[int]*instanceapi.Status{}
		for i := range asked {
			out[i] = sts[i]
		}
		return out
	}, outcomes)
	lines, err := instanceapi.SummarizeReload(outcomes, "pgward local restart --dir "+l.Dir)
	_, _ = fmt.Fprintln(o.Out, strings.Join(lines, "\n"))
	return err
}
