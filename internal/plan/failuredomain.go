package plan

import (
	"fmt"
	"strings"
)

// FailureDomain renders an instance's failure domain for Spec.SyncDomains
// from the values of podKeys on its pod's labels and of nodeKeys on its
// node's. Two instances are in the same domain when every one of those
// labels has the same value on both, a label missing on both counting as
// the same; quoting keeps a value from posing as another key's.
func FailureDomain(podKeys, nodeKeys []string, podLabels, nodeLabels map[string]string) string {
	var b strings.Builder
	part := func(kind string, keys []string, labels map[string]string) {
		for _, k := range keys {
			if v, ok := labels[k]; ok {
				fmt.Fprintf(&b, "%s %q=%q;", kind, k, v)
			} else {
				fmt.Fprintf(&b, "%s %q absent;", kind, k)
			}
		}
	}
	part("pod", podKeys, podLabels)
	part("node", nodeKeys, nodeLabels)
	return b.String()
}
