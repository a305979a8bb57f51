//go:build tools

// Package tools records the commands built from this wrapper module so that
// `go mod tidy` keeps their dependencies: the control plane the operator's
// tests run against, and the node (kubelet, kube-proxy) and scheduler that
// hack/kube-up.sh adds to run real pods.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
