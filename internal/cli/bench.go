package cli

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgward/pgward/internal/bench"
	"github.com/pgward/pgward/internal/local"
)

// NewBenchCmd returns `pgward bench`, availability benchmarks on a local cluster.
func NewBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure failover, switchover and backups on a local cluster (numbers, not pass/fail)",
	}
	cmd.AddCommand(newBenchFailoverCmd(), newBenchSwitchoverCmd(), newBenchFaultCmd(), newBenchBackupCmd())
	return cmd
}

type benchFlags struct {
	file, dir, runAs string
	json             bool
	// goalP50 makes the command fail when the median misses it
	// (`make bench-check`); zero: numbers only.
	goalP50 time.Duration
}

func (f *benchFlags) register(c *cobra.Command) {
	c.Flags().StringVarP(&f.file, "file", "f", "config/samples/cluster-sync.yaml", "Cluster manifest (YAML)")
	c.Flags().StringVar(&f.dir, "dir", "", "state directory (default: a temporary one, deleted afterwards)")
	c.Flags().StringVar(&f.runAs, "run-as", "", "OS user PostgreSQL runs as when pgward runs as root (default postgres)")
	c.Flags().BoolVar(&f.json, "json", false, "print the result as JSON")
	c.Flags().DurationVar(&f.goalP50, "goal-p50", 0, "fail when the median time misses this goal (make bench-check); 0: report only")
}

func (f *benchFlags) options(c *cobra.Command) (bench.Options, error) {
	manifest, err := readManifest(f.file)
	if err != nil {
		return bench.Options{}, err
	}
	dir := f.dir
	if dir != "" {
		if dir, err = absDir(dir); err != nil {
			return bench.Options{}, err
		}
	}
	return bench.Options{Manifest: manifest, Dir: dir, RunAs: f.runAs, Out: c.OutOrStdout(), JSON: f.json}, nil
}

func newBenchFailoverCmd() *cobra.Command {
	var f benchFlags
	var kills int
	var mode string
	var freeze time.Duration
	c := &cobra.Command{
		Use:   "failover",
		Short: "Kill -9 (or freeze) the primary repeatedly under a writer; report time to the first write on the new primary",
		Args:  cobra.NoArgs,
		RunE: f.run(func() (bench.FailoverOptions, error) {
			if mode != bench.ModeKill && mode != bench.ModeFreeze && mode != bench.ModeFreezeManager {
				return bench.FailoverOptions{}, fmt.Errorf("--mode must be %s, %s or %s", bench.ModeKill, bench.ModeFreeze, bench.ModeFreezeManager)
			}
			return bench.FailoverOptions{Mode: mode, Rounds: kills, FreezeFor: freeze}, nil
		}),
	}
	f.register(c)
	c.Flags().IntVar(&kills, "kills", 20, "number of failures to inject")
	c.Flags().StringVar(&mode, "mode", bench.ModeKill, "kill: kill -9 the postmaster; freeze: SIGSTOP the primary's manager and postgres; freeze-manager: SIGSTOP its manager only (postgres keeps serving)")
	c.Flags().DurationVar(&freeze, "freeze", 30*time.Second, "how long --mode freeze keeps the primary stopped")
	return c
}

func newBenchSwitchoverCmd() *cobra.Command {
	var f benchFlags
	var rounds int
	c := &cobra.Command{
		Use:   "switchover",
		Short: "Switch over repeatedly under a writer; report the write-unavailability window",
		Args:  cobra.NoArgs,
		RunE: f.run(func() (bench.FailoverOptions, error) {
			return bench.FailoverOptions{Mode: bench.ModeSwitchover, Rounds: rounds}, nil
		}),
	}
	f.register(c)
	c.Flags().IntVar(&rounds, "rounds", 20, "number of switchovers")
	return c
}

func newBenchFaultCmd() *cobra.Command {
	var f benchFlags
	var rounds int
	var mode string
	var freeze, full time.Duration
	c := &cobra.Command{
		Use:   "fault --mode MODE",
		Short: "Inject a fault into the local runtime's own processes or files under a writer; report the write window",
		Long: `Inject a fault into the local runtime's own processes or files, under a writer
that records every acknowledged row, and report the longest time without an
acknowledged write (or, when the primary changes, the time to the first
write on the new one). Modes:
  controller-kill             SIGKILL the controller (the managers start another)
  controller-stop             SIGSTOP the controller for --freeze (a manager kills it)
  manager-kill                SIGKILL the primary's instance manager
  replica-manager-kill        SIGKILL a replica's instance manager
  replica-data-loss           delete a replica's data directory under it
  switchover-controller-kill  SIGKILL the controller in the middle of a switchover
  disk-full                   fill the primary's filesystem (a small one you mounted)
                              and keep it full for --full-for after the failover`,
		Example: `  pgward bench fault --mode controller-kill --rounds 5`,
		Args:    cobra.NoArgs,
		RunE: f.run(func() (bench.FailoverOptions, error) {
			if !slices.Contains(bench.FaultModes, mode) {
				return bench.FailoverOptions{}, fmt.Errorf("--mode must be one of %s", strings.Join(bench.FaultModes, ", "))
			}
			return bench.FailoverOptions{Mode: mode, Rounds: rounds, FreezeFor: freeze, FullFor: full}, nil
		}),
	}
	f.register(c)
	c.Flags().IntVar(&rounds, "rounds", 5, "number of faults to inject")
	c.Flags().DurationVar(&full, "full-for", 3*time.Second, "how long disk-full keeps the disk full after another instance took over")
	c.Flags().StringVar(&mode, "mode", "", "the fault (see above)")
	c.Flags().DurationVar(&freeze, "freeze", 10*time.Second, "how long controller-stop keeps the controller stopped")
	return c
}

// run builds a command body: read the manifest, drop privileges when
// root, run the benchmark, and fail on a broken guarantee.
func (f *benchFlags) run(mode func() (bench.FailoverOptions, error)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		o, err := f.options(cmd)
		if err != nil {
			return err
		}
		if isRoot() {
			return f.asOwner(cmd, args, o)
		}
		fo, err := mode()
		if err != nil {
			return err
		}
		fo.Options = o
		s, err := bench.Run(cmd.Context(), fo)
		if err != nil {
			return err
		}
		if err := verdict(s); err != nil {
			return err
		}
		if f.goalP50 > 0 && s.P50 > f.goalP50 {
			return fmt.Errorf("%s: p50 %s misses the goal of %s", s.Mode, s.P50.Round(time.Millisecond), f.goalP50)
		}
		return nil
	}
}

// verdict turns a broken guarantee into a non-zero exit, so a script can
// rely on the benchmark without reading its numbers.
func verdict(s bench.Summary) error {
	switch {
	case s.FailedRounds > 0:
		return fmt.Errorf("%d round(s) failed", s.FailedRounds)
	case s.SplitBrain > 0:
		return fmt.Errorf("%d moment(s) with two instances accepting writes", s.SplitBrain)
	case s.SyncReplication && s.MissingAcked > 0:
		return fmt.Errorf("%d acknowledged write(s) lost with synchronous replication", s.MissingAcked)
	}
	return nil
}

// asOwner reruns the benchmark as the run-as user: it kills and freezes the
// cluster's processes, which that user owns.
func (f *benchFlags) asOwner(cmd *cobra.Command, args []string, o bench.Options) error {
	owner, err := local.LookupRunAs(f.runAs)
	if err != nil {
		return err
	}
	if o.Dir != "" {
		sd, err := local.ClaimStateDir(o.Dir, owner)
		if err != nil {
			return err
		}
		defer func() { _ = sd.Close() }()
		o.Dir = sd.Path
	}
	return asOwner(cmd, args, owner, o.Dir, o.Manifest)
}

func newBenchBackupCmd() *cobra.Command {
	var o bench.BackupOptions
	var endpoint, secretFile, stdinSecret, runAs string
	c := &cobra.Command{
		Use:   "backup",
		Short: "Measure base backup, restore, WAL archive lag and point-in-time recovery against an S3 store",
		Long: `Start a one-instance cluster archiving into an S3 object store over TLS, fill
it with pgbench -i -s SCALE, and measure: pg_basebackup to local disk and
` + "`pgward local backup`" + ` (pgBackRest, encrypted on the client) of the same data;
a bootstrap.recovery of that backup into a new cluster until it is ready; the
time from pg_switch_wal() until the segment is archived, under pgbench load;
and a recovery to a time a few seconds before the load ended. Every cluster it
starts is purged at the end; the objects stay in the store, under a path of
their own (printed).

The store: ` + "`make objectstore-up`" + ` starts one and prints PGWARD_S3_ENDPOINT and
PGWARD_S3_SECRET_FILE (a Secret manifest with ACCESS_KEY_ID, ACCESS_SECRET_KEY
and ca.crt); --s3-endpoint and --s3-secret-file override them.`,
		Example: `  eval "$(make -s objectstore-up | tail -n 2)"
  pgward bench backup --scale 70`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if endpoint == "" {
				endpoint = os.Getenv("PGWARD_S3_ENDPOINT")
			}
			if secretFile == "" {
				secretFile = os.Getenv("PGWARD_S3_SECRET_FILE")
			}
			// Root hands the Secret, which only it may read, to the
			// unprivileged rerun on stdin.
			if stdinSecret != "" {
				secretFile = stdinSecret
			}
			if endpoint == "" || secretFile == "" {
				return errors.New("no object store: run `make objectstore-up` and export the PGWARD_S3_ENDPOINT and PGWARD_S3_SECRET_FILE it prints (or pass --s3-endpoint and --s3-secret-file)")
			}
			secret, err := readManifest(secretFile)
			if err != nil {
				return fmt.Errorf("--s3-secret-file: %w", err)
			}
			if isRoot() {
				owner, err := local.LookupRunAs(runAs)
				if err != nil {
					return err
				}
				// The endpoint may have come from the environment, which
				// the rerun does not get.
				if err := cmd.Flags().Set("s3-endpoint", endpoint); err != nil {
					return err
				}
				// ^C reaches the rerun too (same process group): it purges
				// its clusters, and this process must outlive it, since its
				// death kills the rerun (Pdeathsig).
				signal.Notify(make(chan os.Signal, 1), os.Interrupt)
				return asOwner(cmd, args, owner, "", secret)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			o.Endpoint, o.Secret, o.Out = endpoint, secret, cmd.OutOrStdout()
			_, err = bench.RunBackup(ctx, o)
			if err != nil && ctx.Err() != nil {
				return errors.New("interrupted: the clusters the benchmark started are stopped and purged")
			}
			return err
		},
	}
	c.Flags().IntVar(&o.Scale, "scale", 70, "pgbench scale factor (-i -s): 70 is about 1 GB")
	c.Flags().StringVar(&endpoint, "s3-endpoint", "", "the S3 store's https:// URL (default $PGWARD_S3_ENDPOINT)")
	c.Flags().StringVar(&secretFile, "s3-secret-file", "", "Secret manifest with ACCESS_KEY_ID, ACCESS_SECRET_KEY and ca.crt (default $PGWARD_S3_SECRET_FILE)")
	c.Flags().StringVar(&o.Bucket, "s3-bucket", "pgward", "bucket; each run writes under a path of its own in it")
	c.Flags().StringVar(&o.Compression, "compression", "", "wal and data compression: gzip, bzip2, lz4 or zstd (default none, as in a manifest)")
	c.Flags().IntVar(&o.LagSamples, "lag-samples", 60, "WAL switches timed for the archive lag")
	c.Flags().StringVar(&runAs, "run-as", "", "OS user PostgreSQL runs as when pgward runs as root (default postgres)")
	c.Flags().BoolVar(&o.JSON, "json", false, "print the result as JSON")
	// How root passes the Secret to its unprivileged rerun (asOwner).
	c.Flags().StringVar(&stdinSecret, "file", "", "")
	_ = c.Flags().MarkHidden("file")
	return c
}
