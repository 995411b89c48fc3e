package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"

	"github.com/lockstep-io/lockstep/cmd/lockstepctl/cli"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `usage: go run ./packaging [--version V] [--out DIR] [--tags TAGS] [--root DIR]

Builds lockstep_<version>_amd64.deb, lockstep-<version>.x86_64.rpm and the
same two for lockstep-lab into --out (default dist). The version is
--version if given (else $VERSION), else the highest vX.Y.Z tag reachable
from HEAD, else 0.0.0~git<commit date>.<short hash>.

Flags:
`

// options of one run.
type options struct {
	Root    string // the source tree (the module root)
	Out     string // where the packages go
	Version string // explicit version; empty: from git
	Tags    string // go build tags (the boot test's "bootcheck")
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("packaging", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage); fs.PrintDefaults() }
	var opt options
	fs.StringVar(&opt.Version, "version", os.Getenv("VERSION"), "package `VERSION` (digits, letters, '.', '+', '~')")
	fs.StringVar(&opt.Out, "out", "dist", "output `DIR`")
	fs.StringVar(&opt.Tags, "tags", "", "go build `TAGS` (comma-separated; test builds only)")
	fs.StringVar(&opt.Root, "root", ".", "the source tree, `DIR`")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return 0
	} else if err != nil || fs.NArg() != 0 {
		return 2
	}
	built, err := build(opt)
	if err != nil {
		fmt.Fprintf(stderr, "packaging: %v\n", err)
		if errors.Is(err, errVersion) {
			return 2
		}
		return 1
	}
	for _, p := range built {
		fmt.Fprintln(stdout, p)
	}
	return 0
}

// build makes the four packages and returns their paths.
func build(opt options) ([]string, error) {
	root, err := filepath.Abs(opt.Root)
	if err != nil {
		return nil, err
	}
	c, err := headCommit(root)
	if err != nil {
		return nil, err
	}
	version, err := packageVersion(opt.Version, c)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opt.Out, 0o755); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "lockstep-package-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	st := stage{Dir: dir}
	if err := goBuild(root, st.path("bin"), version, opt.Tags); err != nil {
		return nil, err
	}
	if st.Pages, err = manPages(root, st, manual{Version: version, Date: c.Time}); err != nil {
		return nil, err
	}
	for _, p := range st.Pages {
		z, err := gz(p.Roff)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(st.path("man"), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(st.path("man", p.file()+".gz"), z, 0o644); err != nil {
			return nil, err
		}
	}
	var comp bytes.Buffer
	if err := cli.New(nil, nil, nil).GenBashCompletionV2(&comp, true); err != nil {
		return nil, fmt.Errorf("packaging: bash completion: %w", err)
	}
	if err := os.WriteFile(st.path("lockstepctl.bash"), comp.Bytes(), 0o644); err != nil {
		return nil, err
	}
	subject, err := git(root, "log", "-1", "--format=%s")
	if err != nil {
		return nil, err
	}
	rpmChangelog := st.path("changelog.yml")
	if err := writeChangelogs(st, version, c, strings.TrimSpace(subject), rpmChangelog); err != nil {
		return nil, err
	}
	var built []string
	for _, f := range []format{debFormat, rpmFormat} {
		for _, info := range []struct {
			name string
			make func(format, string, stage, string, time.Time) *nfpm.Info
		}{{"lockstep", lockstepInfo}, {"lockstep-lab", labInfo}} {
			path := filepath.Join(opt.Out, f.fileName(info.name, version))
			if err := writePackage(f, info.make(f, root, st, version, c.Time), rpmChangelog, path); err != nil {
				return nil, err
			}
			built = append(built, path)
		}
	}
	return built, nil
}

// goBuild builds the three commands: position-independent (lintian's
// hardening check; the Go linker makes a static PIE), stripped, without
// cgo, with the version set.
func goBuild(root, out, version, tags string) error {
	args := []string{"build", "-trimpath", "-buildvcs=false", "-buildmode=pie",
		"-ldflags=-s -w -X github.com/lockstep-io/lockstep/internal/version.Version=" + version}
	if tags != "" {
		args = append(args, "-tags="+tags)
	}
	args = append(args, "-o", out+string(filepath.Separator), "./cmd/lockstepd", "./cmd/lockstepctl", "./cmd/lockstep-lab")
	cmd := exec.Command(goTool(), args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("packaging: go build: %w\n%s", err, errb.String())
	}
	return nil
}

// goTool is the go command that runs this program, else go on PATH.
func goTool() string {
	if p := filepath.Join(os.Getenv("GOROOT"), "bin", "go"); os.Getenv("GOROOT") != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "go"
}

// manPages generates every page: lockstepd(8) and lockstep-lab(1) from
// their --help, lockstepctl's from its command tree, lockstep.toml(5)
// from the reference configuration.
func manPages(root string, st stage, m manual) ([]page, error) {
	tmpl, err := readFile(filepath.Join(root, "packaging/files/lockstepd.8.in"))
	if err != nil {
		return nil, err
	}
	d, err := lockstepdPage(m, st.path("bin", "lockstepd"), string(tmpl))
	if err != nil {
		return nil, err
	}
	lab, err := labPage(m, st.path("bin", "lockstep-lab"))
	if err != nil {
		return nil, err
	}
	ref, err := readFile(filepath.Join(root, "etc/lockstep/lockstep.toml"))
	if err != nil {
		return nil, err
	}
	conf, _, err := configPage(m, ref, "/etc/lockstep/lockstep.toml")
	if err != nil {
		return nil, err
	}
	ctl, err := lockstepctlPages(m)
	if err != nil {
		return nil, err
	}
	return append([]page{d, lab, conf}, ctl...), nil
}

// writeChangelogs writes the Debian changelog of each package (a native
// package's changelog.gz) and the rpm changelog (chglog YAML, which nfpm
// turns into the %changelog header): one entry, for the commit packaged.
func writeChangelogs(st stage, version string, c commit, subject, rpmPath string) error {
	note := fmt.Sprintf("Packaged from commit %s: %s", c.Hash, subject)
	for _, pkg := range []string{"lockstep", "lockstep-lab"} {
		text := fmt.Sprintf("%s (%s) unstable; urgency=medium\n\n  * %s\n\n -- %s  %s\n",
			pkg, version, wrap(note, 72, "    "), maintainer, c.Time.Format("Mon, 02 Jan 2006 15:04:05 -0700"))
		z, err := gz([]byte(text))
		if err != nil {
			return err
		}
		if err := os.WriteFile(st.path("changelog-"+pkg+".gz"), z, 0o644); err != nil {
			return err
		}
	}
	type change struct {
		Commit string `json:"commit"`
		Note   string `json:"note"`
	}
	type entry struct {
		Semver   string    `json:"semver"`
		Date     time.Time `json:"date"`
		Packager string    `json:"packager"`
		Changes  []change  `json:"changes"`
	}
	// rpm's release is 1 (nfpm's default): the changelog names
	// version-release, as rpmlint checks.
	b, err := json.Marshal([]entry{{Semver: version + "-1", Date: c.Time, Packager: maintainer,
		Changes: []change{{Commit: c.Hash, Note: note}}}})
	if err != nil {
		return err
	}
	return os.WriteFile(rpmPath, b, 0o644) // JSON is YAML
}

// wrap folds text at width, continuing lines with indent.
func wrap(text string, width int, indent string) string {
	var b strings.Builder
	n := 0
	for i, w := range strings.Fields(text) {
		if i > 0 && n+1+len(w) > width-len(indent) {
			b.WriteString("\n" + indent)
			n = 0
		} else if i > 0 {
			b.WriteString(" ")
			n++
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}
