// Command image assembles pgward's container images without a container
// engine (`make images`) and checks them (`make image-check`): the operand
// pgward/postgresql:15 (a Debian root filesystem with PostgreSQL, plus pgward
// as the instance manager), the operator pgward/pgward:<version> (the static
// binary and a passwd file, nothing else) and the pause image of the test
// cluster. Each is written as a docker-archive tarball (what
// `ctr images import`, Dockle and syft read), and with -oci also into one
// OCI image layout.
//
// The images are reproducible: every timestamp comes from -epoch, every
// file's owner and mode is fixed here, and nothing of the build machine
// (paths, user names, the time) enters a layer or the config. The same
// inputs give the same digests (image_test.go).
//
//	image build -out DIR -rootfs R -pgward B -pause P -version V -epoch N [-revision R] [-oci]
//	image check -user UID:GID IMAGE.tar
//	image control -out FILE.tar   an image with known faults, for the gates' negative test
//	image plain -out FILE.tar -rootfs R -epoch N   PostgreSQL 15 without pgward, for the user-image test
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "build":
		build(os.Args[2:])
	case "check":
		check(os.Args[2:])
	case "control":
		control(os.Args[2:])
	case "plain":
		plain(os.Args[2:])
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: image build [flags] | image check -user UID:GID IMAGE.tar")
	os.Exit(2)
}

func build(args []string) {
	fs := flag.NewFlagSet("build", flag.ExitOnError)
	var (
		out, rootfs, pgward, pause, version, revision string
		epoch                                         int64
		oci                                           bool
	)
	fs.StringVar(&out, "out", "", "directory for the tarballs and images.json")
	fs.StringVar(&rootfs, "rootfs", "", "the operand's root filesystem tarball (hack/rootfs.sh)")
	fs.StringVar(&pgward, "pgward", "", "the static pgward binary")
	fs.StringVar(&pause, "pause", "", "the static pause binary")
	fs.StringVar(&version, "version", "", "pgward's version: the operator image's tag")
	fs.StringVar(&revision, "revision", "", "the source revision, recorded as a label")
	fs.Int64Var(&epoch, "epoch", 0, "timestamp of every file and of the images (SOURCE_DATE_EPOCH)")
	fs.BoolVar(&oci, "oci", false, "also write an OCI image layout holding the three images")
	_ = fs.Parse(args)
	for flagName, v := range map[string]string{"-out": out, "-rootfs": rootfs, "-pgward": pgward, "-pause": pause, "-version": version} {
		if v == "" {
			fail(fmt.Errorf("%s is required", flagName))
		}
	}
	if epoch <= 0 {
		fail(fmt.Errorf("-epoch is required"))
	}
	in := Inputs{
		Rootfs: rootfs, Pgward: pgward, Pause: pause,
		Version: version, Revision: revision, Epoch: time.Unix(epoch, 0).UTC(),
	}
	if err := os.MkdirAll(out, 0o750); err != nil {
		fail(err)
	}
	built, err := BuildAll(in, out)
	if err != nil {
		fail(err)
	}
	if oci {
		if err := WriteLayout(filepath.Join(out, "oci"), built); err != nil {
			fail(err)
		}
	}
	summary, err := json.MarshalIndent(Summaries(built), "", "  ")
	if err != nil {
		fail(err)
	}
	for _, b := range built {
		fmt.Printf("%-28s %s  %s\n", b.Tag, b.Digest, b.File)
	}
	if err := os.WriteFile(filepath.Join(out, "images.json"), append(summary, '\n'), 0o600); err != nil {
		fail(err)
	}
}

func check(args []string) {
	fs := flag.NewFlagSet("check", flag.ExitOnError)
	user := fs.String("user", "", "the user the image must run as (UID:GID)")
	_ = fs.Parse(args)
	if fs.NArg() != 1 || *user == "" {
		usage()
	}
	findings := CheckFile(fs.Arg(0), *user)
	for _, f := range findings {
		fmt.Fprintf(os.Stderr, "%s: %s\n", fs.Arg(0), f)
	}
	if len(findings) > 0 {
		os.Exit(1)
	}
	fmt.Printf("%s: no finding\n", fs.Arg(0))
}

func control(args []string) {
	fs := flag.NewFlagSet("control", flag.ExitOnError)
	out := fs.String("out", "", "the tarball to write")
	_ = fs.Parse(args)
	if *out == "" {
		usage()
	}
	img, err := Control(Inputs{Epoch: time.Unix(1, 0).UTC()})
	if err != nil {
		fail(err)
	}
	if err := writeTarball(*out, "pgward.local/control:1", img); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "image:", err)
	os.Exit(1)
}

// plain writes PlainTag: the operand's root filesystem without pgward,
// standing for a user's image (CloudNativePG's, say) in test/kube: its
// pods must run from the pgward binary their init container copies in.
func plain(args []string) {
	fs := flag.NewFlagSet("plain", flag.ExitOnError)
	out := fs.String("out", "", "the tarball to write")
	rootfs := fs.String("rootfs", "", "the operand's root filesystem tarball (hack/rootfs.sh)")
	epoch := fs.Int64("epoch", 0, "timestamp of the image (SOURCE_DATE_EPOCH)")
	_ = fs.Parse(args)
	if *out == "" || *rootfs == "" || *epoch <= 0 {
		usage()
	}
	img, err := Plain(Inputs{Rootfs: *rootfs, Epoch: time.Unix(*epoch, 0).UTC()})
	if err != nil {
		fail(err)
	}
	if err := writeTarball(*out, PlainTag, img); err != nil {
		fail(err)
	}
	fmt.Printf("%s  %s\n", PlainTag, *out)
}
