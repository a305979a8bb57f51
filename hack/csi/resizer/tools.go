//go:build tools

// Package tools records the command hack/csi.sh builds, so that `go mod
// tidy` keeps its dependencies.
package tools

import _ "github.com/kubernetes-csi/external-resizer/v2/cmd/csi-resizer"
