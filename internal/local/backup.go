package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/pgward/pgward/internal/instanceapi"
)

// BackupOptions configure `pgward local backup` and `pgward local backups`.
type BackupOptions struct {
	Dir     string
	Timeout time.Duration
	JSON    bool
	Out     io.Writer
}

// primaryAddr finds the instance that is primary now (the one reporting
// the role, not only the target: a failover may be under way).
func primaryAddr(ctx context.Context, cl *instanceapi.Client, st *State) (string, error) {
	sts, _ := observe(ctx, cl, st)
	for i, s := range sts {
		if s != nil && s.Role == instanceapi.RolePrimary && s.Ready {
			return net.JoinHostPort(loopback, strconv.Itoa(st.Instances[i].StatusPort)), nil
		}
	}
	return "", errors.New("no primary is ready (see `pgward local status`)")
}

// Backup asks the primary's instance manager for a full base backup and
// waits for it to complete.
func Backup(ctx context.Context, o BackupOptions) error {
	l := Layout{Dir: o.Dir}
	st, err := LoadState(l)
	if err != nil {
		return err
	}
	cl, err := newStatusClient(l, st.Cluster, 10*time.Second)
	if err != nil {
		return err
	}
	defer cl.CloseIdle()
	addr, err := primaryAddr(ctx, cl, st)
	if err != nil {
		return err
	}
	run, err := cl.StartBackup(ctx, addr)
	if err != nil {
		return fmt.Errorf("starting the backup: %w", err)
	}
	started := run.Started
	_, _ = fmt.Fprintln(o.Out, "backup started on the primary")
	deadline := time.After(o.Timeout)
	for {
		s, err := cl.Status(ctx, addr, 0)
		if err == nil && s.Backup != nil && s.Backup.Started.Equal(started) {
			switch s.Backup.Phase {
			case instanceapi.BackupCompleted:
				_, _ = fmt.Fprintf(o.Out, "backup %s completed in %s\n", s.Backup.Label, s.Backup.Stopped.Sub(s.Backup.Started).Round(10*time.Millisecond))
				return nil
			case instanceapi.BackupFailed:
				return fmt.Errorf("backup failed: %s", s.Backup.Error)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("the backup has not completed after %s; it goes on: see `pgward local status`", o.Timeout)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Backups lists the backups in the cluster's object store.
func Backups(ctx context.Context, o BackupOptions) error {
	l := Layout{Dir: o.Dir}
	st, err := LoadState(l)
	if err != nil {
		return err
	}
	cl, err := newStatusClient(l, st.Cluster, 10*time.Second)
	if err != nil {
		return err
	}
	defer cl.CloseIdle()
	// Any running instance can list them; the primary is asked first.
	addrs := []string{}
	if a, err := primaryAddr(ctx, cl, st); err == nil {
		addrs = append(addrs, a)
	}
	for _, is := range st.Instances {
		addrs = append(addrs, net.JoinHostPort(loopback, strconv.Itoa(is.StatusPort)))
	}
	var list *instanceapi.BackupList
	var errs []error
	for _, a := range addrs {
		if list, err = cl.Backups(ctx, a); err == nil {
			break
		}
		errs = append(errs, err)
	}
	if list == nil {
		return errors.Join(errs...)
	}
	if o.JSON {
		enc := json.NewEncoder(o.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	w := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(w, "LABEL\tSTARTED\tSTOPPED\tTIMELINE\tSTART LSN\tSTOP LSN\tSIZE\tIN STORE\tENCRYPTED")
	for _, b := range list.Backups {
		_, _ = fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%t\n", b.Label, b.Start.Format(time.RFC3339), b.Stop.Format(time.RFC3339),
			b.Timeline, b.StartLSN, b.StopLSN, humanBytes(b.Size), humanBytes(b.RepoSize), b.Encrypted)
	}
	if len(list.Backups) == 0 {
		_, _ = fmt.Fprintf(w, "(no backups of %q yet: `pgward local backup` takes one)\n", list.Stanza)
	}
	return w.Flush()
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
