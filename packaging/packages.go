package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	"github.com/goreleaser/nfpm/v2/rpm"
)

const (
	maintainer = "lockstep maintainers <maintainers@lockstep-io.github.io>"
	homepage   = "https://github.com/lockstep-io/lockstep"
	// license is the rpm License tag; see files/copyright.
	license = "LicenseRef-lockstep-not-yet-licensed"
)

// format is deb or rpm: where each puts what, and its file name.
type format struct {
	Name string // "deb" or "rpm"
	// UnitDir: Debian bookworm's systemd looks in /lib/systemd/system
	// (lintian wants it there); rpm distributions use /usr/lib.
	UnitDir string
}

var (
	debFormat = format{Name: "deb", UnitDir: "/lib/systemd/system"}
	rpmFormat = format{Name: "rpm", UnitDir: "/usr/lib/systemd/system"}
)

// fileName is the package's name in dist/: lockstep_<version>_amd64.deb,
// lockstep-<version>.x86_64.rpm.
func (f format) fileName(pkg, version string) string {
	if f.Name == "deb" {
		return fmt.Sprintf("%s_%s_amd64.deb", pkg, version)
	}
	return fmt.Sprintf("%s-%s.x86_64.rpm", pkg, version)
}

// stage is the folder of generated inputs: the binaries in bin/, the
// man pages (gzipped) in man/, the completion, the changelogs.
type stage struct {
	Dir   string
	Pages []page
}

func (s stage) path(parts ...string) string {
	return filepath.Join(append([]string{s.Dir}, parts...)...)
}

// content is one file of a package.
func content(src, dst string, mode os.FileMode) *files.Content {
	return &files.Content{Source: src, Destination: dst, FileInfo: &files.ContentFileInfo{Mode: mode}}
}

// lockstepInfo is the lockstep package: the daemon and its command line,
// with everything an administrator needs to run them under systemd.
func lockstepInfo(f format, root string, st stage, version string, mtime time.Time) *nfpm.Info {
	src := func(p string) string { return filepath.Join(root, p) }
	c := files.Contents{
		content(st.path("bin", "lockstepd"), "/usr/bin/lockstepd", 0o755),
		content(st.path("bin", "lockstepctl"), "/usr/bin/lockstepctl", 0o755),
		content(src("systemd/lockstepd.service"), f.UnitDir+"/lockstepd.service", 0o644),
		content(src("systemd/lockstep.sysusers"), "/usr/lib/sysusers.d/lockstep.conf", 0o644),
		content(src("systemd/lockstep.tmpfiles"), "/usr/lib/tmpfiles.d/lockstep.conf", 0o644),
		content(src("systemd/org.lockstep.Manager1.conf"), "/usr/share/dbus-1/system.d/org.lockstep.Manager1.conf", 0o644),
		content(src("etc/mib/LOCKSTEP-MIB.txt"), "/usr/share/snmp/mibs/LOCKSTEP-MIB.txt", 0o644),
		content(st.path("lockstepctl.bash"), "/usr/share/bash-completion/completions/lockstepctl", 0o644),
		{Source: src("etc/lockstep/lockstep.toml"), Destination: "/etc/lockstep/lockstep.toml", Type: files.TypeConfigNoReplace,
			FileInfo: &files.ContentFileInfo{Mode: 0o644}},
	}
	for _, p := range st.Pages {
		if p.Name != "lockstep-lab" {
			c = append(c, manContent(f, st, p))
		}
	}
	c = append(c, docs(f, root, st, "lockstep")...)
	info := &nfpm.Info{
		Name: "lockstep", Arch: "amd64", Platform: "linux", Version: version, VersionSchema: "none",
		Section: "admin", Priority: "optional", Maintainer: maintainer, Homepage: homepage, License: license,
		Vendor: "lockstep", MTime: mtime,
		Description: `Metro Mirror consistency manager (freeze, heartbeat, HA)
lockstepd manages Metro Mirror (synchronous PPRC) sessions across many
storage systems. When any volume pair of a session stops mirroring it
freezes every other pair of the session before dependent writes reach the
secondary site; with the Metro Mirror heartbeat on, a storage system that
loses contact with the manager freezes its own volumes. Two servers form
an active/standby pair over mutual TLS.
This package holds the daemon (a systemd service), lockstepctl, the admin
command line over D-Bus, the reference configuration, the D-Bus policy
and LOCKSTEP-MIB for SNMP managers.`,
		Overridables: nfpm.Overridables{
			Contents: c,
			// procps: the unit reloads with /bin/kill -HUP (systemd 252
			// cannot send the signal itself), and a minimal Debian has no
			// /bin/kill without it.
			Depends:  []string{"systemd-sysusers", "systemd-tmpfiles", "default-dbus-system-bus | dbus-system-bus", "procps"},
			Suggests: []string{"snmpd"},
		},
	}
	if f.Name == "deb" {
		info.Scripts = nfpm.Scripts{
			PostInstall: src("packaging/scripts/deb-postinst"),
			PreRemove:   src("packaging/scripts/deb-prerm"),
			PostRemove:  src("packaging/scripts/deb-postrm"),
		}
	} else {
		info.Depends = []string{"systemd", "dbus", "/usr/bin/kill"}
		info.Contents = append(info.Contents,
			content(src("packaging/files/lockstep.preset"), "/usr/lib/systemd/system-preset/90-lockstep.preset", 0o644))
		info.Scripts = nfpm.Scripts{
			PostInstall: src("packaging/scripts/rpm-post"),
			PreRemove:   src("packaging/scripts/rpm-preun"),
			PostRemove:  src("packaging/scripts/rpm-postun"),
		}
	}
	return info
}

// labInfo is the lockstep-lab package: the emulator, for laboratories
// and tests.
func labInfo(f format, root string, st stage, version string, mtime time.Time) *nfpm.Info {
	c := files.Contents{content(st.path("bin", "lockstep-lab"), "/usr/bin/lockstep-lab", 0o755)}
	for _, p := range st.Pages {
		if p.Name == "lockstep-lab" {
			c = append(c, manContent(f, st, p))
		}
	}
	c = append(c, docs(f, root, st, "lockstep-lab")...)
	return &nfpm.Info{
		Name: "lockstep-lab", Arch: "amd64", Platform: "linux", Version: version, VersionSchema: "none",
		Section: "admin", Priority: "optional", Maintainer: maintainer, Homepage: homepage, License: license,
		Vendor: "lockstep", MTime: mtime,
		Description: `Emulated Metro Mirror storage systems for lockstep
lockstep-lab emulates the storage systems lockstep manages: Metro Mirror
pairs, paths, consistency groups, freeze and heartbeat timers, served over
the storage control protocol. It injects faults, runs a dependent-write
workload and checks with an oracle that the secondary image is consistent.
A laboratory and test tool: no real storage system is involved.`,
		Overridables: nfpm.Overridables{
			Contents: c,
			Suggests: []string{"lockstep"},
		},
	}
}

// manContent is a man page; rpm marks it documentation (%doc), so that
// an install with --excludedocs leaves it out.
func manContent(f format, st stage, p page) *files.Content {
	c := content(st.path("man", p.file()+".gz"), "/usr/share/man/man"+p.Section+"/"+p.file()+".gz", 0o644)
	if f.Name == "rpm" {
		c.Type = files.TypeRPMDoc
	}
	return c
}

// docs are the copyright and changelog: /usr/share/doc/PKG/ for deb (a
// native package's changelog.gz), and the license and rpm changelog
// header for rpm.
func docs(f format, root string, st stage, pkg string) files.Contents {
	copyright := filepath.Join(root, "packaging/files/copyright")
	if f.Name == "deb" {
		return files.Contents{
			content(copyright, "/usr/share/doc/"+pkg+"/copyright", 0o644),
			content(st.path("changelog-"+pkg+".gz"), "/usr/share/doc/"+pkg+"/changelog.gz", 0o644),
			content(filepath.Join(root, "packaging/files/"+pkg+".lintian-overrides"), "/usr/share/lintian/overrides/"+pkg, 0o644),
		}
	}
	return files.Contents{
		{Source: copyright, Destination: "/usr/share/licenses/" + pkg + "/copyright", Type: files.TypeRPMLicense,
			FileInfo: &files.ContentFileInfo{Mode: 0o644}},
	}
}

// writePackage builds one package file.
func writePackage(f format, info *nfpm.Info, changelog, path string) error {
	info.Target = path
	info.RPM.BuildHost = "lockstep-build" // not the building machine's name: reproducible
	info.RPM.Group = "Applications/System"
	info.RPM.Summary = strings.SplitN(info.Description, "\n", 2)[0]
	if f.Name == "rpm" {
		info.Changelog = changelog
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.Validate(info); err != nil {
		return fmt.Errorf("packaging: %s: %w", filepath.Base(path), err)
	}
	var b bytes.Buffer
	var err error
	if f.Name == "deb" {
		err = deb.Default.Package(info, &b)
	} else {
		err = rpm.DefaultRPM.Package(info, &b)
	}
	if err != nil {
		return fmt.Errorf("packaging: %s: %w", filepath.Base(path), err)
	}
	return writeAtomic(path, b.Bytes(), 0o644)
}

// gz is gzip -9n: best compression (lintian checks), no name and no time
// in the header (reproducible).
func gz(b []byte) ([]byte, error) {
	var out bytes.Buffer
	w, err := gzip.NewWriterLevel(&out, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// writeAtomic writes a file through a temporary name in the same folder.
func writeAtomic(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("packaging: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("packaging: %w", err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("packaging: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("packaging: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("packaging: %w", err)
	}
	return nil
}
