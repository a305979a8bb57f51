package cli

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgward/pgward/internal/bench"
	"github.com/pgward/pgward/internal/local"
)

// NewBenchCmd returns `pgward bench`, availability benchmarks on a local cluster.
func NewBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure failover and switchover on a local cluster (numbers, not pass/fail)",
	}
	cmd.AddCommand(newBenchFailoverCmd(), newBenchSwitchoverCmd(), newBenchFaultCmd())
	return cmd
}

type benchFlags struct {
	file, dir, runAs string
	json             bool
}

func (f *benchFlags) register(c *cobra.Command) {
	c.Flags().StringVarP(&f.file, "file", "f", "config/samples/cluster-sync.yaml", "Cluster manifest (YAML)")
	c.Flags().StringVar(&f.dir, "dir", "", "state directory (default: a temporary one, deleted afterwards)")
	c.Flags().StringVar(&f.runAs, "run-as", "", "OS user PostgreSQL runs as when pgward runs as root (default postgres)")
	c.Flags().BoolVar(&f.json, "json", false, "print the result as JSON")
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
			if mode != bench.ModeKill && mode != bench.ModeFreeze {
				return bench.FailoverOptions{}, fmt.Errorf("--mode must be %s or %s", bench.ModeKill, bench.ModeFreeze)
			}
			return bench.FailoverOptions{Mode: mode, Rounds: kills, FreezeFor: freeze}, nil
		}),
	}
	f.register(c)
	c.Flags().IntVar(&kills, "kills", 20, "number of failures to inject")
	c.Flags().StringVar(&mode, "mode", bench.ModeKill, "kill: kill -9 the postmaster; freeze: SIGSTOP the primary's manager and postgres")
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
		return verdict(s)
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
