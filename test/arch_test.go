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
	"api/v1":           {"internal/safetext"},
	"internal/pgconf":  {"api/v1", "internal/safetext"},
	"internal/pki":     {"internal/safetext"},
	"internal/secrets": {"internal/safetext"},
	"internal/plan":    {"api/v1", "internal/safetext"},
	// Test helpers for the planner: fakes of observations, never shipped.
	"internal/plan/plantest": {"api/v1", "internal/plan", "internal/safetext"},
	"internal/instanceapi":   {},
	// The characters never let through (one definition): a leaf.
	"internal/safetext": {},
	// CloudNativePG's custom query format: pure decisions, shared by
	// validation, both runtimes and the exporter.
	"internal/customqueries": {"api/v1", "internal/safetext"},
	// The one planner loop: the planner and the instance contract, no runtime.
	"internal/control": {"api/v1", "internal/plan", "internal/instanceapi", "internal/safetext"},
	// The audit's decisions are pure; each runtime observes for it.
	"internal/audit": {"api/v1", "internal/pki", "internal/safetext"},
	// The audit's observations, shared by the local adapter, the instance
	// manager's audit endpoint and the Kubernetes adapter: no decision.
	"internal/audit/probe": {"api/v1", "internal/pki", "internal/audit", "internal/safetext"},
	// pgBackRest's driver: configuration, commands, the choice of a backup.
	"internal/backup":   {"api/v1", "internal/safetext"},
	"internal/instance": {"api/v1", "internal/customqueries", "internal/pgconf", "internal/secrets", "internal/pki", "internal/instanceapi", "internal/backup", "internal/audit", "internal/audit/probe", "internal/safetext"},
	"internal/local":    {"api/v1", "internal/customqueries", "internal/audit", "internal/audit/probe", "internal/pgconf", "internal/secrets", "internal/pki", "internal/instanceapi", "internal/backup", "internal/instance", "internal/plan", "internal/control", "internal/safetext"},
	"internal/bench":    {"api/v1", "internal/customqueries", "internal/audit", "internal/audit/probe", "internal/pgconf", "internal/secrets", "internal/pki", "internal/instanceapi", "internal/backup", "internal/instance", "internal/plan", "internal/control", "internal/local", "internal/safetext"},
	"internal/cli":      {"api/v1", "internal/customqueries", "internal/audit", "internal/audit/probe", "internal/pgconf", "internal/secrets", "internal/pki", "internal/instanceapi", "internal/backup", "internal/instance", "internal/plan", "internal/control", "internal/local", "internal/bench", "internal/kube", "internal/kube/build", "internal/safetext"},
	// The operator's pure builders see the instance manager's Config type
	// through its contract (instanceapi), never the manager, the planner
	// or a runtime.
	"internal/kube/build": {"api/v1", "internal/pki", "internal/instanceapi", "internal/safetext"},
	// The operator drives the same planner as the local runtime but never
	// imports it (nor the CLI).
	"internal/kube": {"api/v1", "internal/customqueries", "internal/pgconf", "internal/secrets", "internal/pki", "internal/audit", "internal/audit/probe", "internal/instanceapi", "internal/backup", "internal/instance", "internal/plan", "internal/control", "internal/kube/build", "internal/safetext"},
}

// forbiddenExternal are imports a package must not pull in, even indirectly.
var forbiddenExternal = map[string][]string{
	"internal/plan":          {"net", "os", "os/exec", "math/rand", "context", "log/slog"},
	"internal/pgconf":        {"os", "os/exec", "net"},
	"internal/audit":         {"os", "os/exec", "net", "net/http", "github.com/jackc/pgx/v5"},
	"internal/customqueries": {"os", "os/exec", "net", "net/http", "github.com/jackc/pgx/v5"},
	"internal/local":         {"k8s.io/client-go", "sigs.k8s.io/controller-runtime"},
	"internal/control":       {"k8s.io/client-go", "sigs.k8s.io/controller-runtime", "os", "os/exec"},
	// Builders are pure: no client, no context, no randomness, no files.
	"internal/kube/build": {"context", "k8s.io/client-go", "sigs.k8s.io/controller-runtime", "crypto/rand", "math/rand", "os", "net/http", "github.com/jackc/pgx/v5"},
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

// TestEveryPackageHasARule: a new package must say where it sits in the
// layering; one the table does not know would be checked by nobody.
func TestEveryPackageHasARule(t *testing.T) {
	out, err := exec.CommandContext(context.Background(), "go", "list", "../...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		rel := strings.TrimPrefix(p, module+"/")
		if strings.HasPrefix(rel, "test") || strings.HasPrefix(rel, "hack/") || strings.HasPrefix(rel, "cmd/") {
			continue // tests, tools and the main package may import anything
		}
		if _, ok := allowed[rel]; !ok {
			t.Errorf("package %s has no rule in allowed: add it, with what it may import", rel)
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
