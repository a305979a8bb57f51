package cli

import (
	"errors"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/pgward/pgward/internal/instance"
)

// NewInstanceCmd returns `pgward instance`, the instance manager.
func NewInstanceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "instance",
		Short: "Instance manager commands (run inside each pod or local instance)",
	}
	var configPath string
	run := &cobra.Command{
		Use:   "run",
		Short: "Run the instance manager: create or clone PGDATA, run postgres, serve status on the status port",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if os.Geteuid() == 0 {
				return errors.New("the instance manager never runs as root: PostgreSQL must run as an unprivileged user (run it as that user, or use `pgward local up --run-as`)")
			}
			cfg, err := instance.LoadConfig(configPath)
			if err != nil {
				return err
			}
			log := newLogger().With("instance", cfg.Name)
			m, err := instance.NewManager(cfg, log)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return m.Run(ctx)
		},
	}
	run.Flags().StringVar(&configPath, "config", "", "instance manager config file (JSON)")
	_ = run.MarkFlagRequired("config")
	cmd.AddCommand(run)
	return cmd
}
