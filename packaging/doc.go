// Command packaging builds lockstep's Debian and RPM packages (make
// package): it owns what goes into them, where, and how they are checked.
//
//	go run ./packaging [--version V] [--out dist] [--tags TAGS]
//
// It writes lockstep_<version>_amd64.deb, lockstep-<version>.x86_64.rpm
// and the same two for lockstep-lab, with nfpm's library
// (github.com/goreleaser/nfpm/v2). Steps:
//
//  1. The version: --version (or $VERSION) if given, else the highest
//     vX.Y.Z tag reachable from HEAD, else 0.0.0~git<commit date
//     YYYYMMDD>.<short hash>, which dpkg and rpm both sort below 0.0.0.
//     Every file time in the packages is the commit's time, so a rebuild
//     of a commit gives the same packages.
//  2. The binaries: go build -trimpath -buildmode=pie with CGO_ENABLED=0
//     and the version in internal/version (--tags adds build tags: the
//     boot test's "bootcheck").
//  3. The manuals, generated so that they cannot drift from what they
//     describe: lockstepctl(8) and one page per verb from the command
//     tree that also prints --help (cmd/lockstepctl/cli, through
//     cobra/doc); lockstepd(8) and lockstep-lab(1) from the --help of the
//     binaries just built (with files/lockstepd.8.in around it);
//     lockstep.toml(5) from the reference configuration's comments
//     (etc/lockstep/lockstep.toml). The bash completion comes from the
//     same command tree.
//  4. The packages. lockstep: lockstepd and lockstepctl in /usr/bin, the
//     unit (/lib/systemd/system for Debian, /usr/lib/systemd/system for
//     rpm), the reference configuration as a conffile (%config(noreplace)),
//     sysusers.d and tmpfiles.d entries, the D-Bus policy, LOCKSTEP-MIB in
//     /usr/share/snmp/mibs, the manuals, the completion, copyright and
//     changelog; the maintainer scripts of scripts/. lockstep-lab:
//     the emulator and its manual.
//
// The maintainer scripts (scripts/deb-*, scripts/rpm-*) create the user
// through sysusers, always enable the unit (offline: deb-systemd-helper,
// or the rpm's preset), start or try-restart it only when systemd runs
// (/run/systemd/system), stop it on removal, and delete /var/lib/lockstep
// only on a Debian purge.
//
// The tests: version_test.go (the version rules and their order for dpkg
// and rpm), manpages_test.go (every key, verb and flag in the manuals),
// scripts_test.go (the scripts' calls, with stubs), guide_test.go
// (docs/operations.md), packages_test.go (lintian, rpmlint as an
// unprivileged user, rpm's queries and a scratch-root install, on the
// packages make package built: $LOCKSTEP_PACKAGES), and boot_test.go
// (make boot-test: the .deb in a minimal Debian booted with
// systemd-nspawn; $LOCKSTEP_BOOT_TEST).
package main
