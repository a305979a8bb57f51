package test

import (
	"go/ast"
	"go/types"
	"sort"
	"strings"
	"testing"

	"golang.org/x/tools/go/packages"
)

// notReadByName lists the spec fields that no Go selector reads outside
// validation and defaulting, each with why that is right. Reviewed: a
// field lands here only when its effect is real but not a field read
// (serialised whole into a config, read by reflection, a pure marker).
var notReadByName = map[string]string{
	// Declared so that a manifest asking for them is refused naming the
	// field (api/v1 validateRoles): pgward never makes a managed role a
	// superuser or a replication role; false is the only value accepted.
	"RoleConfiguration.Superuser":   "refused when true",
	"RoleConfiguration.Replication": "refused when true",
	// PostgreSQL 16 and 17 initdb options: declared so that the error
	// names the version pgward lacks (api/v1 validateInitDBExtras).
	"BootstrapInitDB.ICURules":      "refused when set",
	"BootstrapInitDB.BuiltinLocale": "refused when set",
	// Only pgward's group and CloudNativePG's are accepted, both naming
	// pgward's catalog kinds (CloudNativePG's group is read as pgward's,
	// as its apiVersion is): there is nothing else for it to select.
	"ImageCatalogRef.APIGroup": "two accepted values of one meaning",
	// spec.monitoring.tls: the exporter always serves TLS 1.3 with a
	// client certificate; only enabled: true is accepted (api/v1
	// validateMonitoring), which states what is so.
	"MonitoringConfiguration.TLSConfig":         "only tls.enabled: true accepted",
	"ClusterMonitoringTLSConfiguration.Enabled": "only true accepted",
	// Copied whole (JSON) into the PodMonitor's relabelings
	// (internal/kube/build/podmonitor.go relabelList).
	"RelabelConfig.SourceLabels": "serialised into the PodMonitor",
	"RelabelConfig.Separator":    "serialised into the PodMonitor",
	"RelabelConfig.TargetLabel":  "serialised into the PodMonitor",
	"RelabelConfig.Regex":        "serialised into the PodMonitor",
	"RelabelConfig.Modulus":      "serialised into the PodMonitor",
	"RelabelConfig.Replacement":  "serialised into the PodMonitor",
	"RelabelConfig.Action":       "serialised into the PodMonitor",
	// bootstrap.recovery.volumeSnapshots: only external-snapshotter's
	// VolumeSnapshot is accepted (api/v1 validateSnapshotRef), which the
	// claims' data sources then name as constants.
	"TypedLocalObjectReference.APIGroup": "only snapshot.storage.k8s.io accepted",
	"TypedLocalObjectReference.Kind":     "only VolumeSnapshot accepted",
	// pgward's volume snapshots are cold: online: true is refused (api/v1
	// validateVolumeSnapshotConfig); false states what is so.
	"VolumeSnapshotConfiguration.Online": "refused when true",
	// The Database kind's options PostgreSQL 15 lacks or pgward does not
	// support yet: declared so that the error names them (api/v1
	// DatabaseSpec.Validate), never pruned unseen by the API server.
	"DatabaseSpec.ICURules":         "refused when set",
	"DatabaseSpec.BuiltinLocale":    "refused when set",
	"DatabaseSpec.CollationVersion": "refused when set",
	"DatabaseSpec.FDWs":             "refused when set",
	"DatabaseSpec.Servers":          "refused when set",
	"RefusedObject.Name":            "part of a refused list",
}

// TestEveryAcceptedFieldIsRead walks the spec types of every kind pgward
// serves (Cluster, Backup, ScheduledBackup) and fails for any field that
// no code reads except to validate or default it: a field accepted and
// read by nobody is a field silently ignored.
func TestEveryAcceptedFieldIsRead(t *testing.T) {
	cfg := &packages.Config{
		Mode: packages.NeedName | packages.NeedFiles | packages.NeedSyntax |
			packages.NeedTypes | packages.NeedTypesInfo,
		Dir: "..",
	}
	pkgs, err := packages.Load(cfg, "./...")
	if err != nil {
		t.Fatal(err)
	}
	var api *packages.Package
	for _, p := range pkgs {
		for _, e := range p.Errors {
			t.Fatalf("%s: %v", p.PkgPath, e)
		}
		if p.PkgPath == module+"/api/v1" {
			api = p
		}
	}
	if api == nil {
		t.Fatal("api/v1 not loaded")
	}

	// Every field reachable from the kinds' specs, by "Type.Field".
	fields := map[*types.Var]string{}
	seen := map[*types.Named]bool{}
	var walk func(types.Type)
	walk = func(typ types.Type) {
		switch tt := typ.(type) {
		case *types.Pointer:
			walk(tt.Elem())
		case *types.Slice:
			walk(tt.Elem())
		case *types.Map:
			walk(tt.Elem())
		case *types.Named:
			if tt.Obj().Pkg() != api.Types || seen[tt] {
				return
			}
			seen[tt] = true
			st, ok := tt.Underlying().(*types.Struct)
			if !ok {
				return
			}
			for i := range st.NumFields() {
				f := st.Field(i)
				fields[f] = tt.Obj().Name() + "." + f.Name()
				walk(f.Type())
			}
		}
	}
	for _, kind := range []string{"ClusterSpec", "BackupSpec", "ScheduledBackupSpec", "DatabaseSpec"} {
		obj := api.Types.Scope().Lookup(kind)
		if obj == nil {
			t.Fatalf("api/v1 has no %s", kind)
		}
		walk(obj.Type())
	}

	read := map[*types.Var]bool{}
	for _, p := range pkgs {
		for _, file := range p.Syntax {
			name := p.Fset.Position(file.Pos()).Filename
			if strings.HasSuffix(name, "zz_generated.deepcopy.go") {
				continue
			}
			for _, decl := range file.Decls {
				if fn, ok := decl.(*ast.FuncDecl); ok && onlyChecks(fn.Name.Name) {
					continue
				}
				ast.Inspect(decl, func(n ast.Node) bool {
					sel, ok := n.(*ast.SelectorExpr)
					if !ok {
						return true
					}
					if s := p.TypesInfo.Selections[sel]; s != nil && s.Kind() == types.FieldVal {
						if v, ok := s.Obj().(*types.Var); ok {
							read[v] = true
						}
					}
					return true
				})
			}
		}
	}

	var unread []string
	stillListed := map[string]bool{}
	for k := range notReadByName {
		stillListed[k] = true
	}
	for v, name := range fields {
		if read[v] {
			continue
		}
		if _, ok := notReadByName[name]; ok {
			delete(stillListed, name)
			continue
		}
		unread = append(unread, name)
	}
	sort.Strings(unread)
	for _, name := range unread {
		t.Errorf("%s is accepted but nothing reads it outside validation and defaulting: make it take effect, refuse it, or list it in notReadByName with the reason", name)
	}
	for name := range stillListed {
		t.Errorf("%s is listed in notReadByName but is read (or gone): take it off the list", name)
	}
	t.Logf("%d spec fields, %d read", len(fields), len(fields)-len(unread))
}

// onlyChecks reports whether a function only validates, defaults or
// copies: reading a field there gives it no effect.
func onlyChecks(name string) bool {
	for _, p := range []string{"validate", "Validate", "SetDefaults", "setDefaults", "default", "Default", "DeepCopy"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
