package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Inputs are everything an image is made of; the same Inputs give the same
// digests.
type Inputs struct {
	Rootfs, Pgward, Pause string
	Version, Revision     string
	Epoch                 time.Time
}

// Image tags. The operand's tag names its PostgreSQL major version, as the
// operator's --instance-image default does; the operator's names pgward's
// version, as dist/install.yaml does.
const (
	OperandTag  = "pgward/postgresql:15"
	OperatorRep = "pgward/pgward"
	PauseTag    = "pgward.local/pause:1"
	// PlainTag is PostgreSQL 15 without pgward (image plain): a stand-in
	// for a user's operand image in the tests, never shipped.
	PlainTag = "pgward.local/postgresql-plain:15"
)

// Users the images run as. 26 is PostgreSQL's uid/gid in pgward's pods (and
// Cloud Native PostgreSQL's); 65532 is the customary "nonroot" of
// distroless images; 65535 the customary uid of pause containers.
const (
	postgresUser = "26:26"
	nonrootUser  = "65532:65532"
	pauseUser    = "65535:65535"
)

const binPath = "/usr/local/bin/pgward"

// Built is one image written to disk.
type Built struct {
	Tag    string
	File   string
	Digest v1.Hash
	Image  v1.Image
}

// Summary is a Built as images.json lists it.
type Summary struct {
	Tag    string `json:"tag"`
	File   string `json:"file"`
	Digest string `json:"digest"`
	Bytes  int64  `json:"bytes"`
	User   string `json:"user"`
}

// Summaries describes what BuildAll wrote.
func Summaries(built []Built) []Summary {
	var out []Summary
	for _, b := range built {
		s := Summary{Tag: b.Tag, File: filepath.Base(b.File), Digest: b.Digest.String()}
		if fi, err := os.Stat(b.File); err == nil {
			s.Bytes = fi.Size()
		}
		if cfg, err := b.Image.ConfigFile(); err == nil {
			s.User = cfg.Config.User
		}
		out = append(out, s)
	}
	return out
}

// BuildAll writes the three images as docker-archive tarballs into out.
func BuildAll(in Inputs, out string) ([]Built, error) {
	specs := []struct {
		tag, file string
		make      func(Inputs) (v1.Image, error)
	}{
		{OperandTag, "postgresql.tar", Operand},
		{OperatorRep + ":" + in.Version, "pgward.tar", Operator},
		{PauseTag, "pause.tar", Pause},
	}
	var built []Built
	for _, s := range specs {
		img, err := s.make(in)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.tag, err)
		}
		dst := filepath.Join(out, s.file)
		if err := writeTarball(dst, s.tag, img); err != nil {
			return nil, fmt.Errorf("%s: %w", s.tag, err)
		}
		d, err := img.Digest()
		if err != nil {
			return nil, err
		}
		built = append(built, Built{Tag: s.tag, File: dst, Digest: d, Image: img})
	}
	return built, nil
}

// Operand is pgward/postgresql:15: the Debian root filesystem of
// hack/rootfs.sh and pgward as the instance manager, run as postgres (26).
func Operand(in Inputs) (v1.Image, error) {
	base, err := tarball.LayerFromFile(in.Rootfs)
	if err != nil {
		return nil, fmt.Errorf("root filesystem layer: %w", err)
	}
	bin, err := fileLayer(in.Epoch, file{path: binPath, src: in.Pgward, mode: 0o755})
	if err != nil {
		return nil, err
	}
	return assemble(in, []layer{
		{base, "debian bookworm minbase + postgresql-15 + pgbackrest (hack/rootfs.sh, images/postgresql/*-hook.sh)"},
		{bin, "pgward instance manager: " + binPath},
	}, v1.Config{
		User:       postgresUser,
		Entrypoint: []string{binPath},
		Cmd:        []string{"instance", "run", "--config", "/etc/pgward/config.json"},
		WorkingDir: "/var/lib/postgresql",
		Env:        []string{"PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"},
		Labels:     labels(in, "pgward PostgreSQL 15 instance", "PostgreSQL 15 from Debian and pgward's instance manager"),
	})
}

// Plain is the operand's root filesystem alone: Debian, PostgreSQL 15 and
// pgBackRest, user 26, no pgward.
func Plain(in Inputs) (v1.Image, error) {
	base, err := tarball.LayerFromFile(in.Rootfs)
	if err != nil {
		return nil, fmt.Errorf("root filesystem layer: %w", err)
	}
	return assemble(in, []layer{
		{base, "debian bookworm minbase + postgresql-15 + pgbackrest (hack/rootfs.sh), without pgward"},
	}, v1.Config{
		User:       postgresUser,
		WorkingDir: "/var/lib/postgresql",
		Env:        []string{"PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"},
		Labels:     labels(in, "PostgreSQL 15 without pgward (test image)", "a stand-in for a user's operand image"),
	})
}

// Operator is pgward/pgward:<version>: the static binary and the passwd and
// group files that name its user, on no base at all.
func Operator(in Inputs) (v1.Image, error) {
	l, err := fileLayer(in.Epoch,
		file{path: binPath, src: in.Pgward, mode: 0o755},
		file{path: "/etc/passwd", data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"), mode: 0o644},
		file{path: "/etc/group", data: []byte("root:x:0:\nnonroot:x:65532:\n"), mode: 0o644},
		// Locked accounts: nobody can log in, and image linters can see so.
		file{path: "/etc/shadow", data: []byte("root:*:1::::::\nnonroot:*:1::::::\n"), mode: 0o600},
	)
	if err != nil {
		return nil, err
	}
	return assemble(in, []layer{{l, "pgward operator: " + binPath + ", /etc/passwd, /etc/group, /etc/shadow"}}, v1.Config{
		User:       nonrootUser,
		Entrypoint: []string{binPath, "operator"},
		Env:        []string{"PATH=/usr/local/bin"},
		Labels:     labels(in, "pgward operator", "The pgward Kubernetes operator"),
	})
}

// Pause is the sandbox image of the test cluster.
func Pause(in Inputs) (v1.Image, error) {
	l, err := fileLayer(in.Epoch,
		file{path: "/pause", src: in.Pause, mode: 0o755},
		file{path: "/etc/passwd", data: []byte("pause:x:65535:65535:pause:/:/sbin/nologin\n"), mode: 0o644},
		file{path: "/etc/group", data: []byte("pause:x:65535:\n"), mode: 0o644},
		file{path: "/etc/shadow", data: []byte("pause:*:1::::::\n"), mode: 0o600},
	)
	if err != nil {
		return nil, err
	}
	return assemble(in, []layer{{l, "pause: /pause, /etc/passwd, /etc/group, /etc/shadow"}}, v1.Config{
		User:       pauseUser,
		Entrypoint: []string{"/pause"},
		Labels:     labels(in, "pgward test-cluster pause", "The sandbox container of pgward's one-node test cluster"),
	})
}

func labels(in Inputs, title, description string) map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":       title,
		"org.opencontainers.image.description": description,
		"org.opencontainers.image.version":     in.Version,
		"org.opencontainers.image.created":     in.Epoch.Format(time.RFC3339),
		"org.opencontainers.image.vendor":      "pgward",
	}
	if in.Revision != "" {
		l["org.opencontainers.image.revision"] = in.Revision
	}
	return l
}

type layer struct {
	l         v1.Layer
	createdBy string
}

// assemble stacks layers on an empty image and sets the config, every
// timestamp at the epoch. The image uses OCI media types (what an OCI
// layout and registries expect; the docker-archive tarball carries no media
// types, so tools that read it do not care).
func assemble(in Inputs, layers []layer, cfg v1.Config) (v1.Image, error) {
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	created := v1.Time{Time: in.Epoch}
	for _, l := range layers {
		var err error
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:     l.l,
			MediaType: types.OCILayer,
			History:   v1.History{Created: created, CreatedBy: l.createdBy, Author: "pgward"},
		})
		if err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture = "amd64"
	cf.OS = "linux"
	cf.Author = "pgward"
	cf.Config = cfg
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	return mutate.CreatedAt(img, created)
}

// file is one regular file of a layer: from src on disk, or data.
type file struct {
	path string
	src  string
	data []byte
	mode int64
}

// fileLayer makes an uncompressed-then-gzipped layer of files, root-owned
// with the given modes, with their parent directories (0755) first. Only
// the content of src enters the layer: not its owner, mode or time.
func fileLayer(epoch time.Time, files ...file) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	var dirList []string
	for _, f := range files {
		for d := path.Dir(f.path); d != "/"; d = path.Dir(d) {
			if !dirs[d] {
				dirs[d] = true
				dirList = append(dirList, d)
			}
		}
	}
	sort.Strings(dirList) // parents sort before their children
	hdr := func(name string, typ byte, mode, size int64) *tar.Header {
		return &tar.Header{
			Typeflag: typ, Name: name, Mode: mode, Size: size,
			ModTime: epoch, Uid: 0, Gid: 0, Uname: "root", Gname: "root", Format: tar.FormatPAX,
		}
	}
	for _, d := range dirList {
		if err := tw.WriteHeader(hdr(strings.TrimPrefix(d, "/")+"/", tar.TypeDir, 0o755, 0)); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		data := f.data
		if f.src != "" {
			var err error
			if data, err = os.ReadFile(f.src); err != nil {
				return nil, err
			}
		}
		if err := tw.WriteHeader(hdr(strings.TrimPrefix(f.path, "/"), tar.TypeReg, f.mode, int64(len(data)))); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	content := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(content)), nil
	})
}

func writeTarball(file, tag string, img v1.Image) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return err
	}
	tmp := file + ".tmp"
	if err := tarball.WriteToFile(tmp, ref, img); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

// WriteLayout writes the images into one OCI image layout, each annotated
// with its tag.
func WriteLayout(dir string, built []Built) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	for _, b := range built {
		if err := p.AppendImage(b.Image, layout.WithAnnotations(map[string]string{
			"org.opencontainers.image.ref.name": b.Tag,
		})); err != nil {
			return err
		}
	}
	return nil
}

// Control is an image with the faults the checks exist to catch: it runs as
// root, carries a setuid file, a private key and a cloud credentials file.
// `make image-check` expects Dockle and Check to refuse it, which shows the
// gates can fail.
func Control(in Inputs) (v1.Image, error) {
	l, err := fileLayer(in.Epoch,
		file{path: "/usr/bin/escalate", data: []byte("#!/bin/sh\n"), mode: 0o4755},
		file{path: "/root/.aws/credentials", data: []byte("[default]\naws_secret_access_key = x\n"), mode: 0o600},
		file{path: "/etc/ssl/private/server.key", data: []byte("-----BEGIN EC PRIVATE KEY-----\nx\n-----END EC PRIVATE KEY-----\n"), mode: 0o600},
	)
	if err != nil {
		return nil, err
	}
	return assemble(in, []layer{{l, "control image with known faults"}}, v1.Config{User: "0:0", Entrypoint: []string{"/usr/bin/escalate"}})
}
