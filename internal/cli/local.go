package cli

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/local"
)

// NewLocalCmd returns `pgward local`, the embedded runtime.
func NewLocalCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "local",
		Short: "Run a Cluster manifest as local processes on loopback (no Kubernetes needed)",
	}
	var dir string
	cmd.PersistentFlags().StringVar(&dir, "dir", "", "state directory (default ./.pgward/<cluster>)")
	cmd.AddCommand(newUpCmd(&dir), newDownCmd(&dir), newStatusCmd(&dir), newURICmd(&dir), newPromoteCmd(&dir), newRotatePasswordCmd(&dir), newRotateCACmd(&dir), newMetricsCmd(&dir), newAuditCmd(&dir), newCertificateCmd(&dir), newReportCmd(&dir), newPsqlCmd(&dir), newBackupCmd(&dir), newBackupsCmd(&dir), newRestartCmd(&dir), newLocalReloadCmd(&dir), newLocalFenceCmd(&dir), newLocalHibernateCmd(&dir), newControllerCmd(&dir))
	return cmd
}

func newUpCmd(dir *string) *cobra.Command {
	var file, runAs, pgBin string
	var timeout time.Duration
	var ha local.HAOptions
	c := &cobra.Command{
		Use:   "up -f MANIFEST",
		Short: "Create (or resume) a local cluster and wait until every instance is ready",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			whole, err := readManifest(file)
			if err != nil {
				return err
			}
			manifest, docs, configMaps, err := local.SplitManifestWithConfigMaps(whole)
			if err != nil {
				return err
			}
			dbs, err := local.DatabaseDocs(whole)
			if err != nil {
				return err
			}
			c, err := v1.LoadAndValidate(manifest)
			if err != nil {
				return err
			}
			if err := local.CheckDatabases(c, dbs); err != nil {
				return err
			}
			d := *dir
			if d == "" {
				d = filepath.Join(".pgward", c.Name)
			}
			abs, err := absDir(d)
			if err != nil {
				return err
			}
			if isRoot() {
				owner, err := local.LookupRunAs(runAs)
				if err != nil {
					return err
				}
				if err := local.CheckStateDirPath(abs, owner); err != nil {
					return err
				}
				if err := local.Preflight(cmd.Context(), c, docs, configMaps, abs, pgBin, owner); err != nil {
					return err
				}
				sd, err := local.ClaimStateDir(abs, owner)
				if err != nil {
					return err
				}
				defer func() { _ = sd.Close() }()
				return asOwner(cmd, args, sd.Owner, sd.Path, whole)
			}
			return local.Up(cmd.Context(), local.UpOptions{
				Dir: abs, Manifest: manifest, Secrets: docs, ConfigMaps: configMaps, Databases: dbs, RunAs: runAs, PGBinDir: pgBin, Timeout: timeout, HA: ha, Out: cmd.OutOrStdout(),
			})
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "Cluster manifest (YAML)")
	c.Flags().StringVar(&runAs, "run-as", "", "OS user PostgreSQL runs as when pgward runs as root (default postgres)")
	c.Flags().StringVar(&pgBin, "pg-bin", "", "PostgreSQL bin directory (default: newest /usr/lib/postgresql/*/bin)")
	c.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for the cluster to be ready")
	c.Flags().DurationVar(&ha.UnreachableTimeout, "unreachable-timeout", 0, "how long a primary may not answer before it counts as failed (default 1s; kept across runs)")
	c.Flags().DurationVar(&ha.SelfFence, "self-fence", 0, "how long a primary may go without the controller before it stops itself (default 3s; the controller's wait before replacing it is derived)")
	_ = c.MarkFlagRequired("file")
	return c
}

func newDownCmd(dir *string) *cobra.Command {
	var purge bool
	c := &cobra.Command{
		Use:   "down",
		Short: "Stop every process of a local cluster (--purge also deletes its data)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := resolveDir(*dir)
			if err != nil {
				return err
			}
			if isRoot() {
				sd, err := local.OpenStateDir(d)
				if err != nil {
					return err
				}
				defer func() { _ = sd.Close() }()
				if err := asOwner(cmd, args, sd.Owner, sd.Path, nil); err != nil || !purge {
					return err
				}
				// The owner emptied it; the directory's parent may be
				// root's, so root removes the empty directory, through
				// the parent it pinned before the owner ran.
				return sd.RemoveEmpty()
			}
			return local.Down(cmd.Context(), local.DownOptions{Dir: d, Purge: purge, Out: cmd.OutOrStdout()})
		},
	}
	c.Flags().BoolVar(&purge, "purge", false, "delete the state directory (data, certificates, secrets) after stopping")
	return c
}

func newStatusCmd(dir *string) *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "status",
		Short: "Show each instance's role, state, timeline, LSN, lag and replication TLS",
		Args:  cobra.NoArgs,
		RunE: inStateDir(dir, func(cmd *cobra.Command, d string, _ []string) error {
			return local.Status(cmd.Context(), local.StatusOptions{Dir: d, Output: output, Out: cmd.OutOrStdout()})
		}),
	}
	c.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return c
}

func newAuditCmd(dir *string) *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "audit",
		Short: "Check the running cluster against pgward's security controls: one PASS/WARN/FAIL line per control (exit status 1 on any FAIL)",
		Long: `Audit tries, from the outside where it can, what each control must refuse
(a replication login with a password or without TLS, TLS 1.2, an anonymous
status request), reads the rendered configuration, postgresql.auto.conf,
the file modes and certificates of the state directory and the owners of
the cluster's processes, and prints one line per control:

  PASS|WARN|FAIL  <control>  <evidence>  [fix: ...]

Run as root, it reruns itself as the state directory's owner, like every
other local verb. The exit status is 1 when any control fails.`,
		Args: cobra.NoArgs,
		RunE: inStateDir(dir, func(cmd *cobra.Command, d string, _ []string) error {
			failed, err := local.Audit(cmd.Context(), local.AuditOptions{Dir: d, Output: output, Out: cmd.OutOrStdout()})
			if err != nil {
				return err
			}
			if failed {
				// The report says which control failed.
				return &ExitCodeError{Code: 1}
			}
			return nil
		}),
	}
	c.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return c
}

func newURICmd(dir *string) *cobra.Command {
	var ro bool
	c := &cobra.Command{
		Use:   "uri USER",
		Short: "Print a libpq URI for USER (verify-full TLS; the password stays in the pgpass file)",
		Args:  cobra.ExactArgs(1),
		RunE: inStateDir(dir, func(cmd *cobra.Command, d string, args []string) error {
			u, err := local.URI(local.URIOptions{Dir: d, User: args[0], ReadOnly: ro})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), u)
			return err
		}),
	}
	c.Flags().BoolVar(&ro, "ro", false, "prefer standbys (read-only traffic)")
	return c
}

func newMetricsCmd(dir *string) *cobra.Command {
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "metrics [INSTANCE]",
		Short: "Scrape each instance's metrics exporter once (TLS 1.3, the pgward-metrics client certificate) and print the exposition text",
		Args:  cobra.MaximumNArgs(1),
		RunE: inStateDir(dir, func(cmd *cobra.Command, d string, args []string) error {
			o := local.MetricsOptions{Dir: d, Timeout: timeout, Out: cmd.OutOrStdout()}
			if len(args) == 1 {
				o.Instance = args[0]
			}
			return local.Metrics(cmd.Context(), o)
		}),
	}
	c.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for each instance")
	return c
}

func newPromoteCmd(dir *string) *cobra.Command {
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "promote INSTANCE",
		Short: "Switch over: shut the primary down cleanly, let INSTANCE catch up, promote it, the others follow",
		Args:  cobra.ExactArgs(1),
		RunE: inStateDir(dir, func(cmd *cobra.Command, d string, args []string) error {
			return local.Promote(cmd.Context(), local.PromoteOptions{Dir: d, Instance: args[0], Timeout: timeout, Out: cmd.OutOrStdout()})
		}),
	}
	c.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long to wait for the switchover")
	return c
}

func newControllerCmd(dir *string) *cobra.Command {
	return &cobra.Command{
		Use:    "controller",
		Short:  "Supervise a local cluster's instances (started by `up`)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if *dir == "" {
				return errors.New("--dir is required")
			}
			if os.Geteuid() == 0 {
				return errors.New("the controller does not run as root; `pgward local up` starts it as the run-as user")
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			log, level := newLeveledLogger()
			ctl := &local.Controller{Layout: local.Layout{Dir: *dir}, Log: log, Level: level, Binary: self}
			return ctl.Run(ctx)
		},
	}
}

// resolveDir finds the state directory: --dir, or the only cluster under ./.pgward.
func resolveDir(dir string) (string, error) {
	if dir != "" {
		return absDir(dir)
	}
	if isRoot() {
		// Root lists no directory through a symlink (OpenStateDir then
		// checks the whole path of the one it picks).
		if fi, err := os.Lstat(".pgward"); err == nil && !fi.IsDir() {
			return "", errors.New("no --dir given and ./.pgward is not a directory (a symbolic link?); pass --dir with the real path")
		}
	}
	entries, err := os.ReadDir(".pgward")
	if err != nil {
		return "", errors.New("no --dir given and no ./.pgward directory here")
	}
	var found []string
	for _, e := range entries {
		if e.IsDir() {
			found = append(found, e.Name())
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("no --dir given and ./.pgward holds %d clusters %v; pass --dir", len(found), found)
	}
	return absDir(filepath.Join(".pgward", found[0]))
}

// absDir makes a state directory path absolute. As root it starts from
// the kernel's name for the working directory (getcwd), not $PWD, which
// may go through symlinks that root's walk would refuse (OpenStateDir).
func absDir(dir string) (string, error) {
	if filepath.IsAbs(dir) || !isRoot() {
		return filepath.Abs(dir)
	}
	wd, err := unix.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	return filepath.Join(wd, dir), nil
}

// inStateDir resolves the state directory and, as root, reruns the command
// as the directory's owner; otherwise it runs run.
func inStateDir(dir *string, run func(cmd *cobra.Command, d string, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		d, err := resolveDir(*dir)
		if err != nil {
			return err
		}
		if isRoot() {
			sd, err := local.OpenStateDir(d)
			if err != nil {
				return err
			}
			defer func() { _ = sd.Close() }()
			return asOwner(cmd, args, sd.Owner, sd.Path, nil)
		}
		return run(cmd, d, args)
	}
}

func newBackupCmd(dir *string) *cobra.Command {
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "backup",
		Short: "Take a full base backup of the primary into the object store of spec.backup (encrypted), and wait for it",
		Example: `  pgward local backup
  pgward local backups        # list them`,
		Args: cobra.NoArgs,
		RunE: inStateDir(dir, func(cmd *cobra.Command, d string, _ []string) error {
			return local.Backup(cmd.Context(), local.BackupOptions{Dir: d, Timeout: timeout, Out: cmd.OutOrStdout()})
		}),
	}
	c.Flags().DurationVar(&timeout, "timeout", time.Hour, "how long to wait for the backup to complete")
	return c
}

func newBackupsCmd(dir *string) *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "backups",
		Short: "List the base backups in the object store: label, times, timeline, LSNs, sizes",
		Args:  cobra.NoArgs,
		RunE: inStateDir(dir, func(cmd *cobra.Command, d string, _ []string) error {
			if output != "" && output != "json" {
				return fmt.Errorf("-o %q: the only output format is json", output)
			}
			return local.Backups(cmd.Context(), local.BackupOptions{Dir: d, JSON: output == "json", Out: cmd.OutOrStdout()})
		}),
	}
	c.Flags().StringVarP(&output, "output", "o", "", "json for scripts")
	return c
}

func newRestartCmd(dir *string) *cobra.Command {
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "restart [INSTANCE]",
		Short: "Restart PostgreSQL: every instance, rolling (replicas one at a time, then a switchover), or one instance",
		Example: `  pgward local restart            # rolling: no instant with fewer than n-1 instances, writes pause under a second
  pgward local restart demo-2     # one instance (a primary restarts in place: writes stop meanwhile)`,
		Args: cobra.MaximumNArgs(1),
		RunE: inStateDir(dir, func(cmd *cobra.Command, d string, args []string) error {
			o := local.RestartOptions{Dir: d, Timeout: timeout, Out: cmd.OutOrStdout()}
			if len(args) == 1 {
				o.Instance = args[0]
			}
			return local.Restart(cmd.Context(), o)
		}),
	}
	c.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for the whole restart")
	return c
}

func newLocalReloadCmd(dir *string) *cobra.Command {
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "reload",
		Short: "Apply the stored manifest, secrets and certificates now on every instance, and wait until it is in effect",
		Long: `Every instance re-reads the stored manifest (what the last ` + "`up -f`" + ` wrote),
its secrets and certificates, re-renders postgresql.conf, pg_hba.conf and
pg_ident.conf, reloads PostgreSQL and reports back; reload waits for every
answer. Without it the instances do the same within 10 seconds. A parameter
that only a restart applies is named, with the restart command; an instance
that refused the configuration is named with PostgreSQL's reason, and the
command fails. Instances whose PostgreSQL is down read it when they start.`,
		Example: `  pgward local up -f cluster.yaml    # the manifest with work_mem changed
  pgward local reload                # in effect on every instance when it returns`,
		Args: cobra.NoArgs,
		RunE: inStateDir(dir, func(cmd *cobra.Command, d string, _ []string) error {
			return local.Reload(cmd.Context(), local.ReloadOptions{Dir: d, Timeout: timeout, Out: cmd.OutOrStdout()})
		}),
	}
	c.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long to wait for every instance")
	return c
}

// onOff parses the on|off argument of fence and hibernate.
func onOff(arg string) (bool, error) {
	switch arg {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, fmt.Errorf("%q: on or off", arg)
}

func newLocalFenceCmd(dir *string) *cobra.Command {
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "fence on|off INSTANCE|*",
		Short: "Fence an instance (PostgreSQL shut down and kept down, its manager reporting it; a fenced primary is not failed over), or unfence it",
		Long: `Fencing shuts PostgreSQL down cleanly on the instance and keeps it down;
its instance manager keeps running and reports it fenced. A fenced primary
is NOT failed over: writes stop until it is unfenced, then it comes back as
the primary. "*" fences every instance. The request is CloudNativePG's
cnpg.io/fencedInstances annotation, kept in the state directory
(fencing.json) once this command has run.`,
		Example: `  pgward local fence on demo-2     # a replica: writes go on
  pgward local fence off demo-2
  pgward local fence on '*'`,
		Args: cobra.ExactArgs(2),
		RunE: inStateDir(dir, func(cmd *cobra.Command, d string, args []string) error {
			on, err := onOff(args[0])
			if err != nil {
				return err
			}
			return local.Fence(cmd.Context(), local.FenceOptions{Dir: d, Instance: args[1], On: on, Timeout: timeout, Out: cmd.OutOrStdout()})
		}),
	}
	c.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long to wait for the instance")
	return c
}

func newLocalHibernateCmd(dir *string) *cobra.Command {
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "hibernate on|off",
		Short: "Shut every instance down cleanly and keep it down, data kept (on); bring the cluster back with the same primary (off)",
		Long: `Hibernation is CloudNativePG's cnpg.io/hibernation annotation: every
instance's PostgreSQL is shut down cleanly, the primary first so the
replicas have all of its WAL; the instance managers keep running and report
it. off starts the same primary again, then the replicas.`,
		Example: `  pgward local hibernate on
  pgward local hibernate off`,
		Args: cobra.ExactArgs(1),
		RunE: inStateDir(dir, func(cmd *cobra.Command, d string, args []string) error {
			on, err := onOff(args[0])
			if err != nil {
				return err
			}
			return local.Hibernate(cmd.Context(), local.FenceOptions{Dir: d, On: on, Timeout: timeout, Out: cmd.OutOrStdout()})
		}),
	}
	c.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long to wait for the instances")
	return c
}
