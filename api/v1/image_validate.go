package v1

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// MaxImageLength bounds an image reference.
const MaxImageLength = 512

// imageReference is the grammar of a container image reference: an
// optional registry host (with port), slash-separated lower-case path
// components, then a tag, a sha256 digest, or both. Nothing else reaches
// a pod spec: no spaces, no shell or YAML metacharacters.
var imageReference = regexp.MustCompile(`^` +
	`(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]{1,5})?/)?` +
	`[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*` +
	`(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?` +
	`(?:@sha256:[a-f0-9]{64})?$`)

// tagMajor reads a PostgreSQL major version off a tag that starts with
// one ("15", "15.4", "16-bookworm", "18.6-system-trixie").
var tagMajor = regexp.MustCompile(`^([0-9]{1,2})(?:[._-]|$)`)

// ImageTagMajor returns the PostgreSQL major version an image's tag names,
// if its tag starts with one (9 to 99); ok is false otherwise (no tag,
// "latest", a date): then only the instance manager, which checks
// `postgres --version` at start, can tell.
func ImageTagMajor(image string) (major int, ok bool) {
	ref, _, _ := strings.Cut(image, "@")
	slash := strings.LastIndex(ref, "/")
	colon := strings.LastIndex(ref, ":")
	if colon <= slash {
		return 0, false
	}
	m := tagMajor.FindStringSubmatch(ref[colon+1:])
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(m[1])
	if err != nil || n < 9 {
		return 0, false
	}
	return n, true
}

// validateImageReference checks the syntax of an image reference.
func validateImageReference(path *field.Path, image string) field.ErrorList {
	switch {
	case image == "":
		return field.ErrorList{field.Required(path, "an image reference, e.g. ghcr.io/cloudnative-pg/postgresql:15")}
	case len(image) > MaxImageLength:
		return field.ErrorList{field.TooLong(path, "", MaxImageLength)}
	case !imageReference.MatchString(image):
		return field.ErrorList{field.Invalid(path, image, "not an image reference (registry/name:tag or name@sha256:digest)")}
	}
	return nil
}

// unsupportedMajor is the message for a major pgward does not run.
func unsupportedMajor(major int) string {
	return fmt.Sprintf("PostgreSQL %d: pgward supports PostgreSQL %d (parameters are validated against its settings)", major, SupportedMajor)
}

// validateImage checks imageName, imageCatalogRef, imagePullPolicy and
// imagePullSecrets. An image whose tag names another major is refused,
// not run with PostgreSQL 15's validation.
func (s *ClusterSpec) validateImage(path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.ImageName != "" {
		p := path.Child("imageName")
		errs = append(errs, validateImageReference(p, s.ImageName)...)
		if m, ok := ImageTagMajor(s.ImageName); ok && m != SupportedMajor {
			errs = append(errs, field.Invalid(p, s.ImageName, "the tag says "+unsupportedMajor(m)))
		}
		if s.ImageCatalogRef != nil {
			errs = append(errs, field.Forbidden(path.Child("imageCatalogRef"), "imageName and imageCatalogRef exclude each other"))
		}
	}
	if r := s.ImageCatalogRef; r != nil {
		p := path.Child("imageCatalogRef")
		if r.APIGroup != nil && *r.APIGroup != Group && *r.APIGroup != CloudNativePGGroup {
			errs = append(errs, field.NotSupported(p.Child("apiGroup"), *r.APIGroup, []string{Group, CloudNativePGGroup}))
		}
		if r.Kind != ImageCatalogKind && r.Kind != ClusterImageCatalogKind {
			errs = append(errs, field.NotSupported(p.Child("kind"), r.Kind, []string{ImageCatalogKind, ClusterImageCatalogKind}))
		}
		if msgs := validation.IsDNS1123Subdomain(r.Name); len(msgs) > 0 {
			errs = append(errs, field.Invalid(p.Child("name"), r.Name, strings.Join(msgs, "; ")))
		}
		if r.Major != SupportedMajor {
			errs = append(errs, field.Invalid(p.Child("major"), r.Major, unsupportedMajor(r.Major)))
		}
	}
	switch s.ImagePullPolicy {
	case "", "Always", "Never", "IfNotPresent":
	default:
		errs = append(errs, field.NotSupported(path.Child("imagePullPolicy"), s.ImagePullPolicy, []string{"Always", "Never", "IfNotPresent"}))
	}
	for i, ps := range s.ImagePullSecrets {
		errs = append(errs, validateSecretName(path.Child("imagePullSecrets").Index(i).Child("name"), ps.Name)...)
	}
	return errs
}

// Validate checks a catalog's entries: one per major, valid references,
// and no tag that contradicts its major. Majors pgward does not run are
// accepted in a catalog (it may serve other operators' clusters too); a
// Cluster cannot select them.
func (s *ImageCatalogSpec) Validate(path *field.Path) field.ErrorList {
	var errs field.ErrorList
	p := path.Child("images")
	if len(s.Images) == 0 {
		errs = append(errs, field.Required(p, "at least one image"))
	}
	if len(s.Images) > 16 {
		errs = append(errs, field.TooMany(p, len(s.Images), 16))
	}
	seen := map[int]bool{}
	for i, img := range s.Images {
		ip := p.Index(i)
		errs = append(errs, validateImageReference(ip.Child("image"), img.Image)...)
		if img.Major < 10 {
			errs = append(errs, field.Invalid(ip.Child("major"), img.Major, "must be a PostgreSQL major version (10 or later)"))
		}
		if seen[img.Major] {
			errs = append(errs, field.Duplicate(ip.Child("major"), img.Major))
		}
		seen[img.Major] = true
		if m, ok := ImageTagMajor(img.Image); ok && m != img.Major {
			errs = append(errs, field.Invalid(ip.Child("image"), img.Image,
				fmt.Sprintf("the tag says PostgreSQL %d, the entry's major is %d", m, img.Major)))
		}
	}
	return errs
}

// ImageFor returns the catalog's image for major, if it lists one.
func (s *ImageCatalogSpec) ImageFor(major int) (string, bool) {
	for _, img := range s.Images {
		if img.Major == major {
			return img.Image, true
		}
	}
	return "", false
}
