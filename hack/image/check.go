package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// maxScan bounds how much of one file is searched for key material; keys
// and credential files are small.
const maxScan = 1 << 20

// CheckFile applies Check to a docker-archive tarball.
func CheckFile(path, wantUser string) []string {
	img, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		return []string{err.Error()}
	}
	return Check(img, wantUser)
}

// Check applies pgward's own rules to an image, beyond what Dockle checks
// (Dockle reports setuid files only as INFO, and looks for credentials by
// file name, not content). It returns one line per finding:
//   - the configured user is wantUser, numeric, and neither uid nor gid is 0;
//   - no setuid or setgid file;
//   - no world-writable file, nor world-writable directory without the
//     sticky bit;
//   - no private key, by content, anywhere;
//   - no package-manager cache or index, no manual pages or documentation
//     beyond the copyright files.
func Check(img v1.Image, wantUser string) []string {
	var found []string
	cf, err := img.ConfigFile()
	if err != nil {
		return []string{err.Error()}
	}
	if msg := checkUser(cf.Config.User, wantUser); msg != "" {
		found = append(found, msg)
	}
	rc := mutate.Extract(img)
	defer func() { _ = rc.Close() }()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return append(found, "reading the image: "+err.Error())
		}
		name := "/" + strings.TrimPrefix(h.Name, "./")
		switch h.Typeflag {
		case tar.TypeReg:
			if h.Mode&0o6000 != 0 {
				found = append(found, fmt.Sprintf("%s: setuid/setgid file (mode %o)", name, h.Mode))
			}
			if h.Mode&0o002 != 0 {
				found = append(found, fmt.Sprintf("%s: world-writable file", name))
			}
			if msg := unwantedPath(name); msg != "" {
				found = append(found, name+": "+msg)
			}
			head, err := io.ReadAll(io.LimitReader(tr, maxScan))
			if err != nil {
				return append(found, "reading "+name+": "+err.Error())
			}
			if bytes.Contains(head, []byte("PRIVATE KEY-----")) {
				found = append(found, name+": holds a private key")
			}
		case tar.TypeDir:
			if h.Mode&0o002 != 0 && h.Mode&0o1000 == 0 {
				found = append(found, fmt.Sprintf("%s: world-writable directory without the sticky bit", name))
			}
		}
	}
	return found
}

func checkUser(user, want string) string {
	if user != want {
		return fmt.Sprintf("config user %q, want %q", user, want)
	}
	for _, part := range strings.Split(user, ":") {
		id, err := strconv.Atoi(part)
		if err != nil {
			return fmt.Sprintf("config user %q is not numeric (a non-root check needs ids)", user)
		}
		if id == 0 {
			return fmt.Sprintf("config user %q runs as root", user)
		}
	}
	return ""
}

// unwantedPath names what a runtime image must not carry.
func unwantedPath(name string) string {
	switch {
	case (strings.HasPrefix(name, "/var/lib/apt/") || strings.HasPrefix(name, "/var/cache/apt/")) && strings.HasSuffix(name, "/lock"):
		return "" // apt's empty lock files
	case strings.HasPrefix(name, "/var/lib/apt/lists/"):
		return "apt index"
	case strings.HasPrefix(name, "/var/cache/apt/"):
		return "apt cache"
	case strings.HasPrefix(name, "/usr/share/man/"), strings.HasPrefix(name, "/usr/share/info/"):
		return "manual page"
	case strings.HasPrefix(name, "/usr/share/doc/") && !strings.HasSuffix(name, "/copyright"):
		return "documentation"
	case strings.HasPrefix(name, "/root/") || strings.HasPrefix(name, "/home/"):
		return "a file in a home directory"
	}
	return ""
}
