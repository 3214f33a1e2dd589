// Command image builds a single-layer container image around one static
// binary and writes it as a docker-compatible tarball, with no docker engine
// and no registry. The layer mirrors distroless static nonroot: the binary,
// /etc/passwd and /etc/group with the nonroot user (65532), a CA bundle,
// /tmp and the user's home. `ctr images import` and `docker load` read the
// result.
//
//	go run . -binary ../../bin/tenantauth -ref localhost/tenantauth:dev -out ../../bin/images/tenantauth.tar
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// epoch is the modification time of every file in the layer, so the same
// binary always gives the same image digest.
var epoch = time.Unix(0, 0).UTC()

type options struct {
	binary     string
	ref        string
	out        string
	entrypoint string
	user       string
	caFile     string
	arch       string
	labels     string
}

func main() {
	var o options
	flag.StringVar(&o.binary, "binary", "", "static binary to put in the image (required)")
	flag.StringVar(&o.ref, "ref", "", "image reference written into the tarball, e.g. localhost/tenantauth:dev (required)")
	flag.StringVar(&o.out, "out", "", "tarball to write (required)")
	flag.StringVar(&o.entrypoint, "entrypoint", "", "path of the binary inside the image (default /<binary base name>)")
	flag.StringVar(&o.user, "user", "65532:65532", "uid:gid the container runs as")
	flag.StringVar(&o.caFile, "ca-file", "/etc/ssl/certs/ca-certificates.crt", "CA bundle copied to /etc/ssl/certs/ca-certificates.crt; empty to skip")
	flag.StringVar(&o.arch, "arch", "amd64", "image architecture")
	flag.StringVar(&o.labels, "labels", "", "comma-separated key=value image labels")
	flag.Parse()
	if o.binary == "" || o.ref == "" || o.out == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(o); err != nil {
		log.Fatalf("image: %v", err)
	}
}

func run(o options) error {
	ref, err := name.ParseReference(o.ref)
	if err != nil {
		return fmt.Errorf("parse reference %q: %w", o.ref, err)
	}
	if o.entrypoint == "" {
		o.entrypoint = "/" + path.Base(o.binary)
	}
	layerTar, err := buildLayer(o)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return fmt.Errorf("make layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return fmt.Errorf("append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = o.arch
	cf.Created = v1.Time{Time: epoch}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return fmt.Errorf("set platform: %w", err)
	}
	img, err = mutate.Config(img, v1.Config{
		Entrypoint: []string{o.entrypoint},
		User:       o.user,
		WorkingDir: "/",
		Env: []string{
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
		},
		Labels: parseLabels(o.labels),
	})
	if err != nil {
		return fmt.Errorf("set config: %w", err)
	}
	if err := os.MkdirAll(path.Dir(o.out), 0o755); err != nil {
		return err
	}
	tmp := o.out + ".tmp"
	if err := tarball.WriteToFile(tmp, ref, img); err != nil {
		return fmt.Errorf("write %s: %w", o.out, err)
	}
	if err := os.Rename(tmp, o.out); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s %s %s\n", ref.Name(), digest, o.out)
	return nil
}

func parseLabels(s string) map[string]string {
	if s == "" {
		return nil
	}
	labels := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		labels[k] = v
	}
	return labels
}

// buildLayer returns the uncompressed tar of the image's only layer.
func buildLayer(o options) ([]byte, error) {
	bin, err := os.ReadFile(o.binary)
	if err != nil {
		return nil, fmt.Errorf("read binary: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64, uid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid, ModTime: epoch})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	steps := []func() error{
		func() error { return dir("etc", 0o755, 0) },
		func() error {
			return file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/sbin/nologin\n"+
				"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"+
				"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"))
		},
		func() error {
			return file("etc/group", 0o644, []byte("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"))
		},
		func() error { return dir("home", 0o755, 0) },
		func() error { return dir("home/nonroot", 0o700, 65532) },
		func() error { return dir("tmp", 0o1777, 0) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	if o.caFile != "" {
		ca, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA bundle: %w", err)
		}
		for _, d := range []string{"etc/ssl", "etc/ssl/certs"} {
			if err := dir(d, 0o755, 0); err != nil {
				return nil, err
			}
		}
		if err := file("etc/ssl/certs/ca-certificates.crt", 0o644, ca); err != nil {
			return nil, err
		}
	}
	entry := strings.TrimPrefix(o.entrypoint, "/")
	for d := path.Dir(entry); d != "."; d = path.Dir(d) {
		if err := dir(d, 0o755, 0); err != nil {
			return nil, err
		}
	}
	if err := file(entry, 0o755, bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
