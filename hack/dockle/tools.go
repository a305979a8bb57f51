//go:build tools

// Package tools records Dockle's command so that `go mod tidy` keeps its
// dependencies.
package tools

import _ "github.com/goodwithtech/dockle/cmd/dockle"
