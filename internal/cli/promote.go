package cli

import (
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
)

// newKubePromoteCmd is `pgward promote`: a switchover on Kubernetes, asked of
// the operator (the annotation pgward.io/switchover-to), as `pgward local
// promote` asks the local controller.
func newKubePromoteCmd() *cobra.Command {
	var namespace, kubeconfig, kubeContext string
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "promote CLUSTER INSTANCE",
		Short: "Switch over a Cluster on Kubernetes to INSTANCE and wait until it is the primary",
		Long: `Ask the operator for a switchover (clean shutdown of the primary, INSTANCE
receives all of its WAL, is promoted, the others follow) by setting the
Cluster's pgward.io/switchover-to annotation, and wait until the Cluster's
status names INSTANCE as its primary. The outcome is also an event of the
Cluster. Uses the kubeconfig as kubectl does (--kubeconfig, $KUBECONFIG,
~/.kube/config) and needs patch on the Cluster.`,
		Example: `  pgward promote cluster-example cluster-example-2 -n db`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			rules := clientcmd.NewDefaultClientConfigLoadingRules()
			rules.ExplicitPath = kubeconfig
			cfg := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext})
			ns := namespace
			if ns == "" {
				var err error
				if ns, _, err = cfg.Namespace(); err != nil {
					return err
				}
			}
			rest, err := cfg.ClientConfig()
			if err != nil {
				return err
			}
			scheme := runtime.NewScheme()
			if err := v1.AddToScheme(scheme); err != nil {
				return err
			}
			cl, err := client.New(rest, client.Options{Scheme: scheme})
			if err != nil {
				return err
			}
			start := time.Now()
			if err := kube.RequestSwitchover(cmd.Context(), cl, types.NamespacedName{Namespace: ns, Name: args[0]}, args[1], timeout); err != nil {
				return err
			}
			cmd.Printf("%s is the primary of %s/%s (%s)\n", args[1], ns, args[0], time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	c.Flags().StringVarP(&namespace, "namespace", "n", "", "the Cluster's namespace (default: the context's)")
	c.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	c.Flags().StringVar(&kubeContext, "context", "", "kubeconfig context")
	c.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long to wait for the switchover")
	return c
}
