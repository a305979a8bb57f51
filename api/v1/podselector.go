package v1

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// PodSelectorRef names a label selector of pods of the Cluster's
// namespace for pg_hba's ${podselector:NAME} addresses (CloudNativePG's
// field).
type PodSelectorRef struct {
	// Name is what ${podselector:NAME} refers to.
	Name string `json:"name"`
	// Selector chooses the pods whose IP addresses NAME stands for.
	Selector metav1.LabelSelector `json:"selector"`
}

// podSelectorPrefix starts a pg_hba address that names a PodSelectorRef.
const podSelectorPrefix = "${podselector:"

// podSelectorAddress is the whole address field ${podselector:NAME}, NAME a
// DNS label.
var podSelectorAddress = regexp.MustCompile(`^\$\{podselector:([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)\}$`)

// PodSelectorOf returns NAME when address is ${podselector:NAME}.
func PodSelectorOf(address string) (string, bool) {
	m := podSelectorAddress.FindStringSubmatch(address)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// validatePodSelectorRefs checks the references and the pg_hba rules
// using them: every ${podselector:NAME} names a reference, only as a host
// rule's address, once per line (the operator replaces that one field).
// A selector must select something narrower than the namespace: an empty
// one would let every pod of it in.
func (s *ClusterSpec) validatePodSelectorRefs(path *field.Path) field.ErrorList {
	var errs field.ErrorList
	names := map[string]bool{}
	for i, ref := range s.PodSelectorRefs {
		p := path.Child("podSelectorRefs").Index(i)
		for _, msg := range validation.IsDNS1123Label(ref.Name) {
			errs = append(errs, field.Invalid(p.Child("name"), ref.Name, msg))
		}
		if names[ref.Name] {
			errs = append(errs, field.Duplicate(p.Child("name"), ref.Name))
		}
		names[ref.Name] = true
		if len(ref.Selector.MatchLabels)+len(ref.Selector.MatchExpressions) == 0 {
			errs = append(errs, field.Required(p.Child("selector"), "labels to match: an empty selector selects every pod of the namespace"))
		} else if _, err := metav1.LabelSelectorAsSelector(&ref.Selector); err != nil {
			errs = append(errs, field.Invalid(p.Child("selector"), field.OmitValueType{}, err.Error()))
		}
	}
	for i, line := range s.PostgresConfiguration.PgHBA {
		n := strings.Count(line, podSelectorPrefix)
		if n == 0 {
			continue
		}
		p := path.Child("postgresql", "pg_hba").Index(i)
		r, err := ParseHBARule(line)
		if err != nil {
			continue // reported by the pg_hba check
		}
		name, ok := PodSelectorOf(r.Address)
		switch {
		case !ok || n != 1:
			errs = append(errs, field.Invalid(p, field.OmitValueType{}, "${podselector:NAME} may only be a host rule's whole address, once"))
		case !names[name]:
			errs = append(errs, field.Invalid(p, field.OmitValueType{}, fmt.Sprintf("${podselector:%s} names no entry of spec.podSelectorRefs", name)))
		}
	}
	return errs
}

// ExpandPodSelectors returns lines with each rule whose address is
// ${podselector:NAME} replaced by one rule per address of ips[NAME], as a
// /32 (IPv4) or /128 (IPv6) network, in the order given; a rule whose
// selector matches no pod is left out (it lets nobody in). The addresses
// are parsed IPs, rendered by netip: nothing else can reach the line. The
// lines must have passed validation (one reference, as the address).
func ExpandPodSelectors(lines []string, ips map[string][]netip.Addr) []string {
	out := make([]string, 0, len(lines))
	for _, line := range lines {
		r, err := ParseHBARule(line)
		name, ok := PodSelectorOf(r.Address)
		if err != nil || !ok {
			out = append(out, line)
			continue
		}
		for _, ip := range ips[name] {
			ip = ip.Unmap().WithZone("")
			out = append(out, strings.Replace(line, r.Address, netip.PrefixFrom(ip, ip.BitLen()).String(), 1))
		}
	}
	return out
}
