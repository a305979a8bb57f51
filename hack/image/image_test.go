package main

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// fixture writes a small root filesystem tarball and two "binaries".
func fixture(t *testing.T, dir string, binary []byte) Inputs {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0o755},
		{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644, Size: 5},
	} {
		h.ModTime = time.Unix(1700000000, 0)
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			if _, err := tw.Write([]byte("root\n")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	in := Inputs{
		Rootfs: filepath.Join(dir, "rootfs.tar"), Pgward: filepath.Join(dir, "pgward"), Pause: filepath.Join(dir, "pause"),
		Version: "1.2.3", Revision: "abc", Epoch: time.Unix(1795644047, 0).UTC(),
	}
	for f, data := range map[string][]byte{in.Rootfs: buf.Bytes(), in.Pgward: binary, in.Pause: []byte("pause")} {
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return in
}

func digests(t *testing.T, in Inputs) map[string]string {
	t.Helper()
	out := t.TempDir()
	built, err := BuildAll(in, out)
	if err != nil {
		t.Fatal(err)
	}
	d := map[string]string{}
	for _, b := range built {
		d[b.Tag] = b.Digest.String()
		content, err := os.ReadFile(b.File)
		if err != nil {
			t.Fatal(err)
		}
		d[b.Tag+" file"] = string(content)
	}
	return d
}

// The same inputs give the same digests and byte-identical tarballs, even
// from different directories, file modes and modification times.
func TestReproducible(t *testing.T) {
	a := fixture(t, t.TempDir(), []byte("binary v1"))
	b := fixture(t, t.TempDir(), []byte("binary v1"))
	if err := os.Chmod(b.Pgward, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(b.Pgward, time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	da, db := digests(t, a), digests(t, b)
	for k, v := range da {
		if db[k] != v {
			t.Errorf("%s differs between two builds of the same inputs", k)
		}
	}
	// And the digest does depend on the inputs.
	c := fixture(t, t.TempDir(), []byte("binary v2"))
	dc := digests(t, c)
	for _, tag := range []string{OperandTag, OperatorRep + ":1.2.3"} {
		if dc[tag] == da[tag] {
			t.Errorf("%s: a changed binary gave the same digest", tag)
		}
	}
	if dc[PauseTag] != da[PauseTag] {
		t.Errorf("%s changed although its inputs did not", PauseTag)
	}
	c.Epoch = c.Epoch.Add(time.Second)
	if digests(t, c)[PauseTag] == da[PauseTag] {
		t.Errorf("%s: another epoch gave the same digest", PauseTag)
	}
}

// What the configs promise: nobody runs as root, the entrypoints, and
// every file of pgward's layers root-owned and not writable by others.
func TestConfigs(t *testing.T) {
	in := fixture(t, t.TempDir(), []byte("binary"))
	for _, tc := range []struct {
		make func(Inputs) (v1.Image, error)
		user string
	}{
		{Operand, postgresUser},
		{Operator, nonrootUser},
		{Pause, pauseUser},
	} {
		img, err := tc.make(in)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Config.User != tc.user {
			t.Errorf("user %q, want %q", cf.Config.User, tc.user)
		}
		if !cf.Created.Equal(in.Epoch) {
			t.Errorf("created %v, want the epoch", cf.Created)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		last := layers[len(layers)-1]
		rc, err := last.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			if h.Uid != 0 || h.Gid != 0 || h.Mode&0o022 != 0 || h.Mode&0o6000 != 0 || !h.ModTime.Equal(in.Epoch) {
				t.Errorf("%s: uid %d gid %d mode %o mtime %v", h.Name, h.Uid, h.Gid, h.Mode, h.ModTime)
			}
		}
		_ = rc.Close()
	}
}

// Check finds each class of problem it claims to, and nothing in a clean
// image.
func TestCheck(t *testing.T) {
	in := fixture(t, t.TempDir(), []byte("binary"))
	clean, err := Operator(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := Check(clean, nonrootUser); len(got) != 0 {
		t.Fatalf("clean operator image: %v", got)
	}
	if got := Check(clean, postgresUser); len(got) != 1 {
		t.Errorf("wrong user not reported: %v", got)
	}
	bad, err := fileLayerWithHeaders(in.Epoch, []*tar.Header{
		{Typeflag: tar.TypeReg, Name: "usr/bin/su", Mode: 0o4755},
		{Typeflag: tar.TypeReg, Name: "usr/bin/wall", Mode: 0o2755},
		{Typeflag: tar.TypeReg, Name: "etc/open", Mode: 0o666},
		{Typeflag: tar.TypeDir, Name: "var/drop/", Mode: 0o777},
		{Typeflag: tar.TypeDir, Name: "var/tmp/", Mode: 0o1777},
		{Typeflag: tar.TypeReg, Name: "srv/app/key.txt", Mode: 0o600},
		{Typeflag: tar.TypeReg, Name: "var/lib/apt/lists/deb_Packages", Mode: 0o644},
		{Typeflag: tar.TypeReg, Name: "usr/share/doc/x/README", Mode: 0o644},
		{Typeflag: tar.TypeReg, Name: "usr/share/doc/x/copyright", Mode: 0o644},
		{Typeflag: tar.TypeReg, Name: "root/.aws/credentials", Mode: 0o600},
	}, map[string]string{"srv/app/key.txt": "x\n-----BEGIN EC PRIVATE KEY-----\nabc\n"}) // #nosec G101 -- not a key: what Check must find
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(clean, bad)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(Check(img, nonrootUser), "\n")
	for _, want := range []string{
		"/usr/bin/su: setuid", "/usr/bin/wall: setuid", "/etc/open: world-writable file",
		"/var/drop: world-writable directory", "/srv/app/key.txt: holds a private key",
		"/var/lib/apt/lists/deb_Packages: apt index", "/usr/share/doc/x/README: documentation",
		"/root/.aws/credentials: a file in a home directory",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing finding %q in:\n%s", want, got)
		}
	}
	for _, not := range []string{"/var/tmp", "copyright"} {
		if strings.Contains(got, not) {
			t.Errorf("false finding about %s in:\n%s", not, got)
		}
	}
	rootImg, err := mutate.Config(clean, v1.Config{User: "0:0"})
	if err != nil {
		t.Fatal(err)
	}
	if got := Check(rootImg, "0:0"); len(got) != 1 || !strings.Contains(got[0], "root") {
		t.Errorf("root user not reported: %v", got)
	}
}

func fileLayerWithHeaders(epoch time.Time, hdrs []*tar.Header, content map[string]string) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		h.ModTime = epoch
		data := content[h.Name]
		h.Size = int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write([]byte(data)); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

func TestControlFailsCheck(t *testing.T) {
	img, err := Control(Inputs{Epoch: time.Unix(1, 0).UTC()})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(Check(img, "0:0"), "\n")
	for _, want := range []string{"runs as root", "/usr/bin/escalate: setuid", "/root/.aws/credentials", "/etc/ssl/private/server.key: holds a private key"} {
		if !strings.Contains(got, want) {
			t.Errorf("control image: missing %q in:\n%s", want, got)
		}
	}
}

// The images are OCI images: manifest, config and layers.
func TestMediaTypes(t *testing.T) {
	img, err := Operand(fixture(t, t.TempDir(), []byte("binary")))
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("manifest %s, config %s", m.MediaType, m.Config.MediaType)
	}
	for _, l := range m.Layers {
		if l.MediaType != types.OCILayer {
			t.Errorf("layer %s", l.MediaType)
		}
	}
}
