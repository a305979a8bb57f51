// Package cli holds pgward's cobra commands. Commands turn flags into
// options for a runtime and return errors; only main exits.
package cli

import (
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Version is pgward's version, set at build time from the VERSION file
// (`make build`: -ldflags "-X github.com/pgward/pgward/internal/cli.Version=...").
var Version = "unknown"

// NewRootCmd returns the pgward command tree.
func NewRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "pgward",
		Version:       Version,
		Short:         "A security-first PostgreSQL operator: highly available clusters on Kubernetes or locally",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(NewLocalCmd(), NewInstanceCmd(), NewBenchCmd(), NewOperatorCmd(), newValidateCmd(), newKubePromoteCmd(), newKubeCmd())
	return root
}

// newLeveledLogger logs text to stderr (PGWARD_LOG_LEVEL=debug for
// more), at a level the caller may change: the instance manager and the
// local controller keep it at the manifest's spec.logLevel.
func newLeveledLogger() (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	if strings.EqualFold(os.Getenv("PGWARD_LOG_LEVEL"), "debug") {
		level.Set(slog.LevelDebug)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})), level
}
