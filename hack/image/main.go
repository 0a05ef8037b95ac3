// Command image builds, inspects and pushes the marketplace-etl container image without a container
// engine: one layer holding the static binary, the time zone database and the CA roots, plus the
// config (user 65532, entrypoint = the binary). It is its own Go module so that the product's
// go.mod does not carry go-containerregistry.
//
//	image build   --binary bin/marketplace-etl --version v1.2.3 --oci-layout DIR [--tarball FILE --tag REF]
//	image inspect --oci-layout DIR [--extract-entrypoint FILE]
//	image push    --oci-layout DIR --tag REF   (credentials from ~/.docker/config.json)
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	entrypoint = "/usr/local/bin/marketplace-etl"
	user       = "65532:65532"
	caBundle   = "/etc/ssl/certs/ca-certificates.crt"
	zoneinfo   = "/usr/share/zoneinfo"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: image build|inspect|push [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "build":
		err = buildCommand(os.Args[2:])
	case "inspect":
		err = inspectCommand(os.Args[2:])
	case "push":
		err = pushCommand(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: expected build, inspect or push", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func buildCommand(args []string) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	binary := fs.String("binary", "bin/marketplace-etl", "static linux binary to use as the entrypoint")
	version := fs.String("version", "dev", "image version (org.opencontainers.image.version)")
	revision := fs.String("revision", "unknown", "source revision (org.opencontainers.image.revision)")
	ociDir := fs.String("oci-layout", "", "write the image as an OCI image layout into this directory (replaced)")
	tarFile := fs.String("tarball", "", "also write a `docker load`-able tarball to this file (needs --tag)")
	tag := fs.String("tag", "", "image reference recorded in the tarball")
	zoneDir := fs.String("zoneinfo", zoneinfo, "time zone database to copy into the image")
	certs := fs.String("ca-bundle", caBundle, "CA certificates bundle to copy into the image")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *ociDir == "" {
		return errors.New("build: --oci-layout is required")
	}
	if *tarFile != "" && *tag == "" {
		return errors.New("build: --tarball needs --tag (the reference `docker load` gives the image)")
	}
	files, err := imageFiles(*binary, *zoneDir, *certs)
	if err != nil {
		return err
	}
	img, err := buildImage(files, *version, *revision)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(*ociDir); err != nil {
		return fmt.Errorf("clearing %s: %w", *ociDir, err)
	}
	p, err := layout.Write(*ociDir, empty.Index)
	if err != nil {
		return fmt.Errorf("creating the OCI layout %s: %w", *ociDir, err)
	}
	annotations := map[string]string{"org.opencontainers.image.version": *version}
	if *tag != "" {
		annotations["org.opencontainers.image.ref.name"] = *tag
	}
	if err := p.AppendImage(img, layout.WithAnnotations(annotations)); err != nil {
		return fmt.Errorf("writing the image into %s: %w", *ociDir, err)
	}
	if *tarFile != "" {
		ref, err := name.ParseReference(*tag)
		if err != nil {
			return fmt.Errorf("build: --tag=%q: %w", *tag, err)
		}
		if err := tarball.WriteToFile(*tarFile, ref, img); err != nil {
			return fmt.Errorf("writing the tarball %s: %w", *tarFile, err)
		}
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("built %s (%s) into %s\n", digest, *version, *ociDir)
	return nil
}

// file is one regular file or directory of the image's only layer.
type file struct {
	path string // absolute path in the image
	mode int64
	data []byte // nil for a directory or a symlink
	link string // symlink target
}

// imageFiles reads what goes into the layer: a directory tree like distroless static's, with the
// nonroot user in /etc/passwd so that tools showing the user find a name.
func imageFiles(binary, zoneDir, certs string) ([]file, error) {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return nil, fmt.Errorf("reading the binary (run make build first): %w", err)
	}
	if !bytes.HasPrefix(bin, []byte("\x7fELF")) {
		return nil, fmt.Errorf("%s is not a Linux ELF binary", binary)
	}
	ca, err := os.ReadFile(certs)
	if err != nil {
		return nil, fmt.Errorf("reading the CA bundle (Debian: apt-get install ca-certificates): %w", err)
	}
	files := []file{
		{path: "/etc", mode: 0o755}, {path: "/etc/ssl", mode: 0o755}, {path: "/etc/ssl/certs", mode: 0o755},
		{path: caBundle, mode: 0o644, data: ca},
		{path: "/etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{path: "/etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{path: "/home", mode: 0o755}, {path: "/home/nonroot", mode: 0o700},
		{path: "/tmp", mode: 0o1777},
		{path: "/usr", mode: 0o755}, {path: "/usr/local", mode: 0o755}, {path: "/usr/local/bin", mode: 0o755},
		{path: entrypoint, mode: 0o755, data: bin},
		{path: "/usr/share", mode: 0o755},
	}
	n := 0
	err = filepath.WalkDir(zoneDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(zoneDir, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(zoneinfo, rel)
		switch {
		case rel == "right" || rel == "localtime":
			// leap-second zones nobody here uses; localtime points out of the tree
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		case d.IsDir():
			files = append(files, file{path: dst, mode: 0o755})
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			// Debian links aliases (posix/, Etc/UTC...) to their zones: kept as links
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			files = append(files, file{path: dst, mode: 0o777, link: target})
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files = append(files, file{path: dst, mode: 0o644, data: data})
		n++
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the time zone database %s (Debian: apt-get install tzdata): %w", zoneDir, err)
	}
	if n == 0 {
		return nil, fmt.Errorf("no time zone files under %s", zoneDir)
	}
	return files, nil
}

// epoch is every file's and the image's time, so that the same inputs give the same digest.
var epoch = time.Unix(0, 0).UTC()

func buildImage(files []file, version, revision string) (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: strings.TrimPrefix(f.path, "/"), Mode: f.mode, ModTime: epoch, Format: tar.FormatPAX}
		switch {
		case f.link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.link
		case f.data == nil:
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if f.path == "/home/nonroot" || f.path == "/tmp" {
			h.Uid, h.Gid = 65532, 65532
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("making the layer: %w", err)
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: epoch}, CreatedBy: "hack/image build", Comment: "marketplace-etl " + version,
	}})
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.Architecture, cfg.OS = "amd64", "linux"
	cfg.Created = v1.Time{Time: epoch}
	cfg.Config = v1.Config{
		User:       user,
		Entrypoint: []string{entrypoint},
		Cmd:        []string{"run"},
		WorkingDir: "/home/nonroot",
		Env: []string{
			"PATH=/usr/local/bin:/usr/bin:/bin",
			"SSL_CERT_FILE=" + caBundle,
			"ZONEINFO=" + zoneinfo,
		},
		Labels: map[string]string{
			"org.opencontainers.image.title":       "marketplace-etl",
			"org.opencontainers.image.description": "Loads marketplace purchase lines from an HTTP API into PostgreSQL, keeps analytics marts, provisions Metabase dashboards",
			"org.opencontainers.image.source":      "https://github.com/marketplace-etl/marketplace-etl",
			"org.opencontainers.image.version":     version,
			"org.opencontainers.image.revision":    revision,
		},
	}
	return mutate.ConfigFile(img, cfg)
}

func layoutImage(dir string) (v1.Image, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("opening the OCI layout %s (run make image first): %w", dir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(m.Manifests) != 1 {
		return nil, fmt.Errorf("%s holds %d images, expected 1", dir, len(m.Manifests))
	}
	return idx.Image(m.Manifests[0].Digest)
}

// inspectCommand checks what the chart and Kubernetes rely on (user, entrypoint, files) and prints
// a summary; --extract-entrypoint writes the entrypoint binary out so that it can be run.
func inspectCommand(args []string) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	ociDir := fs.String("oci-layout", "", "OCI image layout written by build")
	extract := fs.String("extract-entrypoint", "", "write the entrypoint binary to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	img, err := layoutImage(*ociDir)
	if err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	var problems []string
	if cfg.Config.User != user {
		problems = append(problems, fmt.Sprintf("user is %q, expected %q (runAsNonRoot needs a numeric uid)", cfg.Config.User, user))
	}
	if len(cfg.Config.Entrypoint) != 1 || cfg.Config.Entrypoint[0] != entrypoint {
		problems = append(problems, fmt.Sprintf("entrypoint is %q, expected [%q]", cfg.Config.Entrypoint, entrypoint))
	}
	contents, err := layerFiles(img)
	if err != nil {
		return err
	}
	for _, want := range []string{entrypoint, caBundle, zoneinfo + "/Europe/Moscow", zoneinfo + "/UTC", "/etc/passwd"} {
		if _, ok := contents[want]; !ok {
			problems = append(problems, "missing file "+want)
		}
	}
	if h, ok := contents[entrypoint]; ok && h.mode&0o111 == 0 {
		problems = append(problems, fmt.Sprintf("%s is not executable (mode %o)", entrypoint, h.mode))
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	size, err := imageSize(img)
	if err != nil {
		return err
	}
	fmt.Printf("image %s: user %s, entrypoint %q, cmd %q, %d files, %.1f MiB compressed\n",
		digest, cfg.Config.User, cfg.Config.Entrypoint, cfg.Config.Cmd, len(contents), float64(size)/(1<<20))
	if len(problems) > 0 {
		sort.Strings(problems)
		return fmt.Errorf("image check failed: %s", strings.Join(problems, "; "))
	}
	if *extract != "" {
		if err := os.WriteFile(*extract, contents[entrypoint].data, 0o755); err != nil {
			return fmt.Errorf("extracting the entrypoint: %w", err)
		}
	}
	return nil
}

type entry struct {
	mode int64
	data []byte
}

func layerFiles(img v1.Image) (map[string]entry, error) {
	rc := mutate.Extract(img)
	defer rc.Close()
	out := map[string]entry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading the image's files: %w", err)
		}
		p := "/" + strings.TrimSuffix(h.Name, "/")
		e := entry{mode: h.Mode}
		if p == entrypoint {
			if e.data, err = io.ReadAll(tr); err != nil {
				return nil, err
			}
		}
		out[p] = e
	}
}

func imageSize(img v1.Image) (int64, error) {
	layers, err := img.Layers()
	if err != nil {
		return 0, err
	}
	var total int64
	for _, l := range layers {
		s, err := l.Size()
		if err != nil {
			return 0, err
		}
		total += s
	}
	return total, nil
}

func pushCommand(args []string) error {
	fs := flag.NewFlagSet("push", flag.ContinueOnError)
	ociDir := fs.String("oci-layout", "", "OCI image layout written by build")
	tag := fs.String("tag", "", "where to push, e.g. ghcr.io/marketplace-etl/marketplace-etl:v1.2.3")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ref, err := name.ParseReference(*tag)
	if err != nil {
		return fmt.Errorf("push: --tag=%q: %w", *tag, err)
	}
	img, err := layoutImage(*ociDir)
	if err != nil {
		return err
	}
	if err := remote.Write(ref, img, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return fmt.Errorf("pushing %s: %w", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("pushed %s@%s\n", ref.Context().Name(), digest)
	return nil
}
