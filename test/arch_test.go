// Package test holds tests about the repository as a whole.
package test

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/pgward/pgward"

// allowed lists, for each package, the pgward packages it may import.
// Arrows point one way, toward api/v1: the core never imports a runtime,
// and the instance manager executes but never decides (no plan).
var allowed = map[string][]string{
	"api/v1":               {},
	"internal/pgconf":      {"api/v1"},
	"internal/pki":         {},
	"internal/secrets":     {},
	"internal/plan":        {"api/v1"},
	"internal/instanceapi": {},
	// pgBackRest's configuration and commands, for the instance manager.
	"internal/backup": {"api/v1"},
	// The audit's decisions are pure; each runtime observes for it.
	"internal/audit":    {"api/v1", "internal/pki"},
	"internal/instance": {"api/v1", "internal/backup", "internal/pgconf", "internal/secrets", "internal/pki", "internal/instanceapi"},
	"internal/local":    {"api/v1", "internal/backup", "internal/audit", "internal/pgconf", "internal/secrets", "internal/pki", "internal/instanceapi", "internal/instance", "internal/plan", "internal/control"},
	"internal/bench":    {"api/v1", "internal/backup", "internal/audit", "internal/pgconf", "internal/secrets", "internal/pki", "internal/instanceapi", "internal/instance", "internal/plan", "internal/control", "internal/local"},
	"internal/cli":      {"api/v1", "internal/backup", "internal/audit", "internal/pgconf", "internal/secrets", "internal/pki", "internal/instanceapi", "internal/instance", "internal/plan", "internal/control", "internal/local", "internal/bench", "internal/kube", "internal/kube/build"},
	// The operator's pure builders see the instance manager's Config type
	// (and so what it imports), never the planner or a runtime.
	"internal/kube/build": {"api/v1", "internal/backup", "internal/pgconf", "internal/secrets", "internal/pki", "internal/instanceapi", "internal/instance"},
	// The operator drives the same planner as the local runtime but never
	// imports it (nor the CLI).
	"internal/kube": {"api/v1", "internal/backup", "internal/pgconf", "internal/secrets", "internal/pki", "internal/instanceapi", "internal/instance", "internal/plan", "internal/control", "internal/kube/build"},
}

// forbiddenExternal are imports a package must not pull in, even indirectly.
var forbiddenExternal = map[string][]string{
	"internal/plan":   {"net", "os", "os/exec", "math/rand", "context", "log/slog"},
	"internal/pgconf": {"os", "os/exec", "net"},
	"internal/audit":  {"os", "os/exec", "net", "net/http", "github.com/jackc/pgx/v5"},
	"internal/local":  {"k8s.io/client-go", "sigs.k8s.io/controller-runtime"},
	// Builders are pure: no client, no context, no randomness, no files.
	"internal/kube/build": {"context", "k8s.io/client-go", "sigs.k8s.io/controller-runtime", "crypto/rand", "math/rand", "os", "net/http"},
}

func TestDependencyRules(t *testing.T) {
	for pkg, ok := range allowed {
		deps := goListDeps(t, pkg)
		for _, d := range deps {
			if !strings.HasPrefix(d, module+"/") {
				continue
			}
			rel := strings.TrimPrefix(d, module+"/")
			if rel == pkg || contains(ok, rel) {
				continue
			}
			t.Errorf("%s depends on %s, which the layering forbids", pkg, rel)
		}
	}
	for pkg, bad := range forbiddenExternal {
		imports := goListImports(t, pkg)
		for _, b := range bad {
			for _, imp := range imports {
				if imp == b || strings.HasPrefix(imp, b+"/") {
					t.Errorf("%s imports %s; it must stay free of it", pkg, imp)
				}
			}
		}
	}
}

func goListDeps(t *testing.T, pkg string) []string {
	t.Helper()
	return goList(t, pkg, "Deps")
}

// goListImports returns the package's direct imports (not the standard
// library's own internals, which every package reaches).
func goListImports(t *testing.T, pkg string) []string {
	t.Helper()
	return goList(t, pkg, "Imports")
}

func goList(t *testing.T, pkg, field string) []string {
	t.Helper()
	out, err := exec.CommandContext(context.Background(), "go", "list", "-json", "../"+pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	var p map[string]any
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	var res []string
	if list, ok := p[field].([]any); ok {
		for _, v := range list {
			res = append(res, v.(string))
		}
	}
	return res
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
