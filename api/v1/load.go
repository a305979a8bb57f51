package v1

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// MaxManifestSize bounds a manifest, like the Kubernetes API server bounds
// an object, so a huge file cannot exhaust memory while it is parsed.
const MaxManifestSize = 1 << 20

// foreignAPIVersions are the apiVersions of Cloud Native PostgreSQL that
// LoadCluster also accepts, so users can bring their manifests; they are
// rewritten to APIVersion.
var foreignAPIVersions = []string{"postgresql.cnpg.io/v1", "postgresql.k8s.enterprisedb.io/v1"}

// cnpOnlyFields are Cloud Native PostgreSQL Cluster fields that pgward does
// not implement yet. Naming them in errors tells a user bringing a manifest
// that the field is understood but unsupported, not misspelled.
var cnpOnlyFields = specPaths(
	"monitoring.metricsQueriesTTL", "nodeMaintenanceWindow", "plugins",
	"replicationSlots.synchronizeReplicas", "replicationSlots.highAvailability.synchronizeLogicalDecoding",
	"bootstrap.recovery.backup.endpointCA",
	"bootstrap.recovery.recoveryTarget.targetTLI",
	"backup.target", "backup.pluginConfiguration",
	// Volume snapshots are cold (volumesnapshot.go): online ones and group
	// snapshots are not implemented.
	"backup.volumeSnapshot.onlineConfiguration", "backup.volumeSnapshot.groupSnapshot",
	"backup.barmanObjectStore.azureCredentials", "backup.barmanObjectStore.googleCredentials",
	"backup.barmanObjectStore.tags", "backup.barmanObjectStore.historyTags",
	"backup.barmanObjectStore.s3Credentials.inheritFromIAMRole",
	"backup.barmanObjectStore.s3Credentials.sessionToken",
	"externalClusters[].plugin",
	"externalClusters[].barmanObjectStore.azureCredentials",
	"externalClusters[].barmanObjectStore.googleCredentials",
	"externalClusters[].barmanObjectStore.tags", "externalClusters[].barmanObjectStore.historyTags",
	"externalClusters[].barmanObjectStore.s3Credentials.inheritFromIAMRole",
	"externalClusters[].barmanObjectStore.s3Credentials.sessionToken",
	"postgresql.extensions",
	"postgresql.promotionTimeout",
	"postgresql.synchronous.maxStandbyNamesFromCluster",
	"postgresql.synchronous.standbyNamesPost", "postgresql.synchronous.standbyNamesPre",
	"walStorage.pvcTemplate",
	"tablespaces[].storage.pvcTemplate",
	"probes.liveness.isolationCheck",
	"replica.promotionToken",
	// pgward's primary Lease: the duration and the renew deadline are
	// implemented (primarylease.go); a non-holder's retry period and a
	// released lease's TTL have no counterpart yet (no instance acquires
	// the Lease itself: the operator moves it, and a clean shutdown is a
	// switchover).
	"primaryLease.retryPeriodSeconds", "primaryLease.releasedLeaseDurationSeconds",
)

// listIndex matches the index of a list element in a field path, so that
// cnpOnlyFields can name a field of every element at once.
var listIndex = regexp.MustCompile(`\[[0-9]+\]`)

// specPaths returns the set of the given paths under "spec.".
func specPaths(paths ...string) map[string]bool {
	set := make(map[string]bool, len(paths))
	for _, p := range paths {
		set["spec."+p] = true
	}
	return set
}

// LoadCluster decodes one Cluster from YAML or JSON, strictly: it reports
// every unknown field with its full path, every value of the wrong type,
// duplicate keys, a status section (written by pgward, never by users), more
// than one document, and an apiVersion or kind that is not a Cluster's. All
// problems are returned together: apiVersion, kind and status first, then
// the others sorted by field path.
//
// It neither applies defaults nor validates values; see LoadAndValidate.
func LoadCluster(data []byte) (*Cluster, error) {
	obj, err := decodeManifest(data)
	if err != nil {
		return nil, err
	}
	errs := checkTypeMeta(obj)
	if _, ok := obj["status"]; ok {
		errs = append(errs, errors.New(`field "status" is written by pgward and cannot be set in a manifest`))
		delete(obj, "status")
	}
	// SetDefaults makes a missing instances 1; an explicit 0 is a mistake
	// to report, not to turn into 1.
	if spec, ok := obj["spec"].(map[string]any); ok {
		if n, ok := spec["instances"].(json.Number); ok && n.String() == "0" {
			errs = append(errs, errors.New(`spec.instances: must be at least 1 (leave it out for one instance)`))
		}
	}
	var w fieldWalker
	w.walk("", obj, reflect.TypeFor[Cluster]())
	errs = append(errs, w.errs...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	obj["apiVersion"], obj["kind"] = APIVersion, Kind
	return decodeCluster(obj)
}

// LoadAndValidate loads a Cluster, applies SetDefaults and returns it if
// Validate finds nothing wrong; otherwise the error lists every problem.
func LoadAndValidate(data []byte) (*Cluster, error) {
	c, err := LoadCluster(data)
	if err != nil {
		return nil, err
	}
	SetDefaults(c)
	if agg := c.Validate().ToAggregate(); agg != nil {
		return nil, agg
	}
	return c, nil
}

// decodeManifest parses the single document of data into generic JSON
// values, numbers kept as json.Number so integers stay exact.
func decodeManifest(data []byte) (map[string]any, error) {
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("the manifest is %d bytes long, more than the %d allowed", len(data), MaxManifestSize)
	}
	doc, err := singleDocument(data)
	if err != nil {
		return nil, err
	}
	// Strict mode makes duplicate keys an error instead of last-one-wins.
	jsonData, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		// The YAML parser lists its problems on several indented lines;
		// one line per problem keeps the joined errors readable.
		return nil, fmt.Errorf("the manifest is not valid YAML: %s", oneLine(err.Error()))
	}
	dec := json.NewDecoder(bytes.NewReader(jsonData))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return nil, fmt.Errorf("the manifest is not valid YAML: %w", err)
	}
	obj, ok := generic.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("the manifest must be an object (a Cluster), not %s", describeJSON(generic))
	}
	return obj, nil
}

// decodeCluster turns checked generic values into a Cluster. Unknown fields
// were reported already; rejecting them again guards against a mismatch
// between the walker and encoding/json.
func decodeCluster(obj map[string]any) (*Cluster, error) {
	normalized, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("re-encoding the manifest: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(normalized))
	dec.DisallowUnknownFields()
	var c Cluster
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("the manifest does not decode as a Cluster: %w", err)
	}
	return &c, nil
}

// singleDocument returns the only YAML document of data that has content.
// A YAML parser reads just the first document and silently ignores the
// rest, so a second document must be detected here: it would otherwise be
// a part of the file that is never validated.
func singleDocument(data []byte) ([]byte, error) {
	docs := SplitDocuments(data)
	switch len(docs) {
	case 0:
		return nil, errors.New("the manifest is empty")
	case 1:
		return docs[0], nil
	}
	return nil, fmt.Errorf("the manifest holds %d YAML documents: give exactly one Cluster", len(docs))
}

// SplitDocuments returns the YAML documents of data that have content, in
// order ("---" and "..." markers in the first column).
func SplitDocuments(data []byte) [][]byte {
	var (
		docs       [][]byte
		current    []byte
		hasContent bool
	)
	flush := func() {
		if hasContent {
			docs = append(docs, current)
		}
		current, hasContent = nil, false
	}
	for line := range bytes.SplitAfterSeq(data, []byte("\n")) {
		text := strings.TrimRight(string(line), "\r\n")
		switch {
		case isDocumentMarker(text, "---"):
			flush()
			current = append(current, line...)
			hasContent = isYAMLContent(text[3:])
		case isDocumentMarker(text, "..."):
			flush()
		default:
			current = append(current, line...)
			hasContent = hasContent || (!strings.HasPrefix(text, "%") && isYAMLContent(text))
		}
	}
	flush()
	return docs
}

// isDocumentMarker reports whether a line starts or ends a YAML document.
// Markers only count in the first column, where no scalar can continue.
func isDocumentMarker(line, marker string) bool {
	rest, ok := strings.CutPrefix(line, marker)
	return ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t')
}

// isYAMLContent reports whether a line holds more than blanks and a comment.
func isYAMLContent(line string) bool {
	t := strings.TrimSpace(line)
	return t != "" && !strings.HasPrefix(t, "#")
}

// checkTypeMeta checks apiVersion and kind and removes them from obj; the
// caller writes back the normalized values.
func checkTypeMeta(obj map[string]any) []error {
	var errs []error
	accepted := append([]string{APIVersion}, foreignAPIVersions...)
	switch v, ok := obj["apiVersion"]; {
	case !ok:
		errs = append(errs, fmt.Errorf(`field "apiVersion" is required: use %s`, APIVersion))
	case !isOneOf(v, accepted):
		errs = append(errs, fmt.Errorf(`apiVersion %s is not supported: use %s`, describeValue(v), APIVersion))
	}
	switch v, ok := obj["kind"]; {
	case !ok:
		errs = append(errs, fmt.Errorf(`field "kind" is required: use %s`, Kind))
	case !isOneOf(v, []string{Kind}):
		errs = append(errs, fmt.Errorf(`kind %s is not supported: use %s`, describeValue(v), Kind))
	}
	delete(obj, "apiVersion")
	delete(obj, "kind")
	return errs
}

// oneLine joins the lines of a multi-line message: "a:\n  b\n  c" becomes
// "a: b; c".
func oneLine(msg string) string {
	lines := strings.Split(msg, "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	if len(lines) == 1 {
		return lines[0]
	}
	return lines[0] + " " + strings.Join(lines[1:], "; ")
}

// isOneOf reports whether v is a string among allowed.
func isOneOf(v any, allowed []string) bool {
	s, ok := v.(string)
	return ok && slices.Contains(allowed, s)
}

// describeValue quotes a string and describes any other JSON value.
func describeValue(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return describeJSON(v)
}

// fieldWalker compares a generic JSON document with a Go type, by the json
// tags of its fields, and collects an error for every unknown field and
// every value of the wrong type. encoding/json cannot do this: it matches
// field names case-insensitively and stops at the first problem.
type fieldWalker struct {
	errs []error
}

var (
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// walk checks value v found at path against type t.
func (w *fieldWalker) walk(path string, v any, t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	// null decodes to the zero value. Types that decode themselves (times,
	// quantities, durations) are decoded here once, so that a value they
	// refuse is named by its path.
	if v == nil {
		return
	}
	if hasCustomDecoding(t) {
		w.decodes(path, v, t)
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if obj, ok := w.expect(path, v, "an object", isObject).(map[string]any); ok {
			w.walkStruct(path, obj, t)
		}
	case reflect.Map:
		if obj, ok := w.expect(path, v, "an object", isObject).(map[string]any); ok {
			for _, k := range sortedKeys(obj) {
				w.walk(fmt.Sprintf("%s[%s]", path, k), obj[k], t.Elem())
			}
		}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			w.expect(path, v, "a base64 string", isString)
			return
		}
		if list, ok := w.expect(path, v, "a list", isList).([]any); ok {
			for i, item := range list {
				w.walk(fmt.Sprintf("%s[%d]", path, i), item, t.Elem())
			}
		}
	case reflect.String:
		w.expect(path, v, "a string", isString)
	case reflect.Bool:
		w.expect(path, v, "a boolean (true or false)", isBool)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		w.expect(path, v, "an integer", func(v any) bool { return isInt(v, t.Bits()) })
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		w.expect(path, v, "a non-negative integer", func(v any) bool { return isUint(v, t.Bits()) })
	case reflect.Float32, reflect.Float64:
		w.expect(path, v, "a number", isNumber)
	}
}

// walkStruct checks every key of obj, in sorted order, against the fields
// of struct type t.
func (w *fieldWalker) walkStruct(path string, obj map[string]any, t reflect.Type) {
	fields := jsonFields(t)
	for _, k := range sortedKeys(obj) {
		child := k
		if path != "" {
			child = path + "." + k
		}
		ft, known := fields[k]
		switch {
		// Before known: a type pgward shares between fields (storage and
		// walStorage) can know a field that one of them does not support.
		case cnpRefusedFields[listIndex.ReplaceAllString(child, "[]")] != "":
			w.errs = append(w.errs, fmt.Errorf("field %q is a Cloud Native PostgreSQL field that pgward refuses: %s",
				child, cnpRefusedFields[listIndex.ReplaceAllString(child, "[]")]))
		case cnpOnlyFields[listIndex.ReplaceAllString(child, "[]")]:
			w.errs = append(w.errs, fmt.Errorf(
				"field %q is a Cloud Native PostgreSQL field that pgward does not support yet", child))
		case known:
			w.walk(child, obj[k], ft)
		default:
			w.errs = append(w.errs, fmt.Errorf("unknown field %q", child))
		}
	}
}

// expect records an error unless ok(v), and returns v when it is ok.
func (w *fieldWalker) expect(path string, v any, want string, ok func(any) bool) any {
	if ok(v) {
		return v
	}
	hint := ""
	if want == "a string" {
		// YAML reads 100, on and yes as a number or a boolean.
		hint = " (put the value in quotes)"
	}
	w.errs = append(w.errs, fmt.Errorf("field %q must be %s, not %s%s", path, want, describeJSON(v), hint))
	return nil
}

// jsonFields maps the JSON names of t's fields to their types, flattening
// embedded structs the way encoding/json does.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := make(map[string]reflect.Type)
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || (!f.IsExported() && !f.Anonymous):
			continue
		case f.Anonymous && name == "":
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					fields[k] = v
				}
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	return fields
}

// decodes reports, naming path, a value that t's own decoding refuses.
func (w *fieldWalker) decodes(path string, v any, t reflect.Type) {
	b, err := json.Marshal(v)
	if err == nil {
		err = json.Unmarshal(b, reflect.New(t).Interface())
	}
	if err != nil {
		w.errs = append(w.errs, fmt.Errorf("field %q: %w", path, err))
	}
}

// hasCustomDecoding reports whether encoding/json decodes t with its own
// UnmarshalJSON or UnmarshalText.
func hasCustomDecoding(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return t.Implements(jsonUnmarshalerType) || p.Implements(jsonUnmarshalerType) ||
		t.Implements(textUnmarshalerType) || p.Implements(textUnmarshalerType)
}

func sortedKeys(obj map[string]any) []string {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func isObject(v any) bool { _, ok := v.(map[string]any); return ok }
func isList(v any) bool   { _, ok := v.([]any); return ok }
func isString(v any) bool { _, ok := v.(string); return ok }
func isBool(v any) bool   { _, ok := v.(bool); return ok }
func isNumber(v any) bool { _, ok := v.(json.Number); return ok }

func isInt(v any, bits int) bool {
	n, ok := v.(json.Number)
	if !ok {
		return false
	}
	_, err := strconv.ParseInt(string(n), 10, bits)
	return err == nil
}

func isUint(v any, bits int) bool {
	n, ok := v.(json.Number)
	if !ok {
		return false
	}
	_, err := strconv.ParseUint(string(n), 10, bits)
	return err == nil
}

// describeJSON names the kind of a generic JSON value for error messages.
func describeJSON(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "the number " + v.String()
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
