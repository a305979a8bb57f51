package v1

import (
	"regexp"
	"slices"
	"strings"

	"github.com/pgward/pgward/internal/safetext"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// relabelActions are the Prometheus relabeling actions, lowercase (the
// Prometheus operator accepts either case).
var relabelActions = []string{"replace", "keep", "drop", "hashmod", "labelmap", "labeldrop", "labelkeep", "lowercase", "uppercase", "keepequal", "dropequal"}

var promLabelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// validateMonitoring checks spec.monitoring. The custom queries' content
// lives in ConfigMaps and Secrets: the runtimes check it where they read
// it (internal/customqueries), naming the field that refers to it.
func validateMonitoring(m *MonitoringConfiguration, path *field.Path) field.ErrorList {
	if m == nil {
		return nil
	}
	var errs field.ErrorList
	seen := map[string]bool{}
	for i, r := range m.CustomQueriesConfigMap {
		p := path.Child("customQueriesConfigMap").Index(i)
		errs = append(errs, validateSecretName(p.Child("name"), r.Name)...)
		errs = append(errs, validateDataKey(p.Child("key"), r.Key)...)
		if k := "configmap/" + r.Name + "/" + r.Key; seen[k] {
			errs = append(errs, field.Duplicate(p, r.Name+"/"+r.Key))
		} else {
			seen[k] = true
		}
	}
	for i, r := range m.CustomQueriesSecret {
		p := path.Child("customQueriesSecret").Index(i)
		errs = append(errs, validateSecretName(p.Child("name"), r.Name)...)
		errs = append(errs, validateDataKey(p.Child("key"), r.Key)...)
		if k := "secret/" + r.Name + "/" + r.Key; seen[k] {
			errs = append(errs, field.Duplicate(p, r.Name+"/"+r.Key))
		} else {
			seen[k] = true
		}
	}
	if t := m.TLSConfig; t != nil && !t.Enabled {
		errs = append(errs, field.Forbidden(path.Child("tls", "enabled"),
			"pgward's exporter always serves TLS 1.3 and requires the <cluster>-metrics client certificate; there is no plain-HTTP mode (leave tls out, or set enabled: true)"))
	}
	errs = append(errs, validateRelabelings(m.PodMonitorRelabelConfigs, path.Child("podMonitorRelabelings"))...)
	errs = append(errs, validateRelabelings(m.PodMonitorMetricRelabelConfigs, path.Child("podMonitorMetricRelabelings"))...)
	if !m.EnablePodMonitor && (len(m.PodMonitorRelabelConfigs) > 0 || len(m.PodMonitorMetricRelabelConfigs) > 0) {
		errs = append(errs, field.Forbidden(path.Child("podMonitorRelabelings"),
			"relabelings go into the PodMonitor, which exists only with enablePodMonitor: true"))
	}
	return errs
}

// validateDataKey accepts what Kubernetes accepts as a ConfigMap or Secret
// key ([-._a-zA-Z0-9]+, not . or ..).
func validateDataKey(p *field.Path, key string) field.ErrorList {
	if key == "" || len(key) > 253 || key == "." || key == ".." || strings.TrimLeft(key, "-._abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" {
		return field.ErrorList{field.Invalid(p, key, "must be a ConfigMap or Secret key: letters, digits, '-', '_', '.'")}
	}
	return nil
}

func validateRelabelings(rs []RelabelConfig, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, r := range rs {
		p := path.Index(i)
		action := strings.ToLower(r.Action)
		if action == "" {
			action = "replace"
		}
		if !slices.Contains(relabelActions, action) {
			errs = append(errs, field.NotSupported(p.Child("action"), r.Action, relabelActions))
		}
		for j, l := range r.SourceLabels {
			if !promLabelName.MatchString(l) {
				errs = append(errs, field.Invalid(p.Child("sourceLabels").Index(j), l, "must be a Prometheus label name"))
			}
		}
		if r.TargetLabel != "" && safetext.Check(r.TargetLabel) != nil {
			errs = append(errs, field.Invalid(p.Child("targetLabel"), r.TargetLabel, "no control characters"))
		}
		if r.Regex != "" {
			if safetext.Check(r.Regex) != nil {
				errs = append(errs, field.Invalid(p.Child("regex"), r.Regex, "no control characters"))
			} else if _, err := regexp.Compile("^(?:" + r.Regex + ")$"); err != nil {
				errs = append(errs, field.Invalid(p.Child("regex"), r.Regex, "not a regular expression Prometheus accepts: "+err.Error()))
			}
		}
		for _, s := range []*string{r.Separator, r.Replacement} {
			if s != nil && safetext.Check(*s) != nil {
				errs = append(errs, field.Invalid(p, "", "separator and replacement take no control characters"))
			}
		}
		if (action == "replace" || action == "hashmod" || action == "lowercase" || action == "uppercase") && r.TargetLabel == "" {
			errs = append(errs, field.Required(p.Child("targetLabel"), "action "+action+" needs a targetLabel"))
		}
		if action == "hashmod" && r.Modulus == 0 {
			errs = append(errs, field.Required(p.Child("modulus"), "action hashmod needs a modulus"))
		}
	}
	return errs
}
