//go:build tools

// Package tools records the two commands hack/csi.sh builds, so that
// `go mod tidy` keeps their dependencies.
package tools

import (
	_ "github.com/kubernetes-csi/external-snapshotter/v8/cmd/csi-snapshotter"
	_ "github.com/kubernetes-csi/external-snapshotter/v8/cmd/snapshot-controller"
)
