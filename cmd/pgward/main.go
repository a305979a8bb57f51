// Command pgward runs highly available PostgreSQL clusters from one Cluster
// manifest, locally (`pgward local up -f cluster.yaml`) or as the instance
// manager inside each instance (`pgward instance run`).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/pgward/pgward/internal/cli"
)

func main() {
	cli.DropExecImage()
	if err := cli.NewRootCmdFor(os.Args[0]).ExecuteContext(context.Background()); err != nil {
		var exit *cli.ExitCodeError
		if errors.As(err, &exit) {
			// The unprivileged child already reported the error.
			os.Exit(exit.Code)
		}
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
