package local

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/pgward/pgward/internal/secrets"
)

// maxReportFile bounds each file copied into a report (logs keep their
// end, where a problem usually is).
const maxReportFile = 4 << 20

// WriteReport writes a zip a user can attach to a bug report: the stored
// manifest, state, planner memory, status, the logs and the rendered
// configuration of every instance, and a listing of the secrets (names,
// keys, sizes, modes: never their content). Every file is redacted: each
// value of every secret pgward holds (passwords, keys, pgpass lines, URIs)
// is replaced wherever it appears, and so are private-key PEM blocks,
// SCRAM verifiers and pg_hba secrets (ldapbindpasswd, radiussecrets),
// whatever their source. out must not exist.
func WriteReport(ctx context.Context, l Layout, out string, now time.Time) (int, error) {
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) // #nosec G304 -- the user's path
	if err != nil {
		return 0, err
	}
	zw := zip.NewWriter(f)
	r := &reporter{zw: zw, now: now}
	r.redact, err = newRedactor(l)
	if err == nil {
		err = r.collect(ctx, l)
	}
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(out)
		return 0, err
	}
	return r.files, nil
}

type reporter struct {
	zw     *zip.Writer
	now    time.Time
	redact func([]byte) []byte
	files  int
}

func (r *reporter) add(name string, data []byte) error {
	w, err := r.zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: r.now})
	if err != nil {
		return err
	}
	if _, err := w.Write(r.redact(data)); err != nil {
		return err
	}
	r.files++
	return nil
}

// addFile copies a file of the state directory, its last maxReportFile
// bytes; a missing one is skipped.
func (r *reporter) addFile(l Layout, rel string) error {
	b, err := os.ReadFile(filepath.Join(l.Dir, rel)) // #nosec G304 -- inside the state directory
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return r.add(rel+".error", []byte(err.Error()))
	}
	if len(b) > maxReportFile {
		b = b[len(b)-maxReportFile:]
	}
	return r.add(rel, b)
}

func (r *reporter) collect(ctx context.Context, l Layout) error {
	for _, rel := range []string{"cluster.yaml", "state.json", "plan.json", filepath.Join("log", "controller.log")} {
		if err := r.addFile(l, rel); err != nil {
			return err
		}
	}
	instances, _ := filepath.Glob(filepath.Join(l.Dir, "instances", "*"))
	sort.Strings(instances)
	for _, dir := range instances {
		name := filepath.Base(dir)
		for _, rel := range []string{"config.json", "instance.log", "postgres.log", "conf/postgresql.conf", "conf/pg_hba.conf",
			"conf/pg_ident.conf", "conf/instance-state.json", "conf/applied-cluster.yaml"} {
			if err := r.addFile(l, filepath.Join("instances", name, rel)); err != nil {
				return err
			}
		}
	}
	if cs, err := Observe(ctx, l); err == nil {
		b, _ := json.MarshalIndent(cs, "", "  ")
		if err := r.add("status.json", b); err != nil {
			return err
		}
	} else if err := r.add("status.error", []byte(err.Error())); err != nil {
		return err
	}
	listing, err := secretListing(l)
	if err != nil {
		listing = []byte(err.Error())
	}
	return r.add("secrets-listing.txt", listing)
}

// secretListing names each secret and key with its size and mode.
func secretListing(l Layout) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# secrets: names, keys, sizes and modes only; no content\n")
	err := filepath.WalkDir(l.SecretsDir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(l.SecretsDir(), p)
		fmt.Fprintf(&b, "%v %8d %s\n", fi.Mode(), fi.Size(), rel)
		return nil
	})
	return b.Bytes(), err
}

// newRedactor returns a function that removes every secret pgward holds
// for the cluster from a text, and the shapes of secrets whatever their
// source (secrets.Redactor).
func newRedactor(l Layout) (func([]byte) []byte, error) {
	var r secrets.Redactor
	entries, err := os.ReadDir(l.SecretsDir())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	store := secrets.DirStore{Root: l.SecretsDir()}
	for _, e := range entries {
		data, err := store.Get(e.Name())
		if err != nil {
			return nil, fmt.Errorf("reading secret %q to redact it: %w", e.Name(), err)
		}
		for key, v := range data {
			// Certificates are public; everything else is a secret, and so
			// is each line of a multi-line value (a pgpass line).
			if strings.HasSuffix(key, ".crt") {
				continue
			}
			r.Add(v)
		}
	}
	return r.Redact, nil
}
