package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// runScript runs a maintainer script with every command it calls
// replaced by a stub that logs its arguments, and the two paths it looks
// at (/run/systemd/system, /var/lib/lockstep) moved into a temp dir, so
// that both branches run here. It returns the calls, in order, and
// whether the state directory survived.
func runScript(t *testing.T, script string, running, wasEnabled bool, args ...string) (calls []string, stateKept bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("scripts", script))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	run, state := filepath.Join(dir, "run-systemd-system"), filepath.Join(dir, "var-lib-lockstep")
	if running {
		if err := os.Mkdir(run, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(state, "journal"), 0o755); err != nil {
		t.Fatal(err)
	}
	text := string(b)
	if !strings.Contains(text, "/run/systemd/system") {
		t.Fatalf("%s does not look at /run/systemd/system", script)
	}
	text = strings.ReplaceAll(text, "/run/systemd/system", run)
	text = strings.ReplaceAll(text, "/var/lib/lockstep", state)
	path := filepath.Join(dir, script)
	if err := os.WriteFile(path, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "calls")
	enabled := "1"
	if wasEnabled {
		enabled = "0"
	}
	for _, name := range []string{"systemd-sysusers", "systemd-tmpfiles", "systemctl", "deb-systemd-helper", "deb-systemd-invoke"} {
		stub := "#!/bin/sh\necho \"" + name + " $*\" >> " + log + "\n"
		if name == "deb-systemd-helper" {
			stub += "[ \"$2\" = was-enabled ] && exit " + enabled + "\n"
		}
		stub += "exit 0\n"
		if err := os.WriteFile(filepath.Join(bin, name), []byte(stub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	// As rpm and dpkg run them: sh SCRIPT ARGS (the deb scripts set -e
	// themselves).
	cmd := exec.Command(sh, append([]string{path}, args...)...)
	cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", script, args, err, out)
	}
	logged, _ := os.ReadFile(log)
	for _, l := range strings.Split(strings.TrimSpace(string(logged)), "\n") {
		if l != "" {
			calls = append(calls, l)
		}
	}
	_, err = os.Stat(state)
	return calls, err == nil
}

func TestMaintainerScripts(t *testing.T) {
	t.Parallel()
	const (
		sysusersDeb = "systemd-sysusers lockstep.conf"
		tmpfilesDeb = "systemd-tmpfiles --create lockstep.conf"
		wasEnabled  = "deb-systemd-helper --quiet was-enabled lockstepd.service"
		enable      = "deb-systemd-helper enable lockstepd.service"
		reloadUnits = "systemctl --system daemon-reload"
		reloadBus   = "deb-systemd-invoke reload dbus.service"
		sysusersRPM = "systemd-sysusers /usr/lib/sysusers.d/lockstep.conf"
		tmpfilesRPM = "systemd-tmpfiles --create /usr/lib/tmpfiles.d/lockstep.conf"
	)
	for _, tc := range []struct {
		name       string
		script     string
		args       []string
		running    bool // /run/systemd/system exists
		wasEnabled bool // deb-systemd-helper was-enabled
		want       []string
		stateGone  bool
	}{
		{name: "deb install in a container", script: "deb-postinst", args: []string{"configure", ""}, wasEnabled: true,
			want: []string{sysusersDeb, tmpfilesDeb, wasEnabled, enable}},
		{name: "deb install on a running system", script: "deb-postinst", args: []string{"configure", ""}, running: true, wasEnabled: true,
			want: []string{sysusersDeb, tmpfilesDeb, wasEnabled, enable, reloadUnits, reloadBus, "deb-systemd-invoke start lockstepd.service"}},
		{name: "deb upgrade", script: "deb-postinst", args: []string{"configure", "0.1.0"}, running: true, wasEnabled: true,
			want: []string{sysusersDeb, tmpfilesDeb, wasEnabled, enable, reloadUnits, reloadBus, "deb-systemd-invoke try-restart lockstepd.service"}},
		{name: "deb upgrade of a unit disabled by hand", script: "deb-postinst", args: []string{"configure", "0.1.0"}, running: true,
			want: []string{sysusersDeb, tmpfilesDeb, wasEnabled, "deb-systemd-helper update-state lockstepd.service",
				reloadUnits, reloadBus, "deb-systemd-invoke try-restart lockstepd.service"}},
		{name: "deb abort-upgrade", script: "deb-postinst", args: []string{"abort-upgrade", "0.1.1"}, running: true, wasEnabled: true,
			want: []string{wasEnabled, enable, reloadUnits, reloadBus, "deb-systemd-invoke try-restart lockstepd.service"}},
		{name: "deb remove stops", script: "deb-prerm", args: []string{"remove"}, running: true,
			want: []string{"deb-systemd-invoke stop lockstepd.service"}},
		{name: "deb remove in a container", script: "deb-prerm", args: []string{"remove"}},
		{name: "deb upgrade does not stop", script: "deb-prerm", args: []string{"upgrade", "0.1.1"}, running: true},
		{name: "deb removed", script: "deb-postrm", args: []string{"remove"}, running: true, want: []string{reloadUnits}},
		{name: "deb purged", script: "deb-postrm", args: []string{"purge"}, running: true,
			want: []string{"deb-systemd-helper purge lockstepd.service"}, stateGone: true},
		{name: "deb upgraded", script: "deb-postrm", args: []string{"upgrade", "0.1.1"}, running: true},

		{name: "rpm install in an image build", script: "rpm-post", args: []string{"1"},
			want: []string{sysusersRPM, tmpfilesRPM, "systemctl --no-reload preset lockstepd.service"}},
		{name: "rpm install on a running system", script: "rpm-post", args: []string{"1"}, running: true,
			want: []string{sysusersRPM, tmpfilesRPM, "systemctl --no-reload preset lockstepd.service", "systemctl daemon-reload",
				"systemctl reload dbus.service", "systemctl start lockstepd.service"}},
		{name: "rpm upgrade, new post", script: "rpm-post", args: []string{"2"}, running: true,
			want: []string{sysusersRPM, tmpfilesRPM, "systemctl daemon-reload", "systemctl reload dbus.service"}},
		{name: "rpm erase", script: "rpm-preun", args: []string{"0"}, running: true,
			want: []string{"systemctl stop lockstepd.service", "systemctl --no-reload disable lockstepd.service"}},
		{name: "rpm erase in an image", script: "rpm-preun", args: []string{"0"},
			want: []string{"systemctl --no-reload disable lockstepd.service"}},
		{name: "rpm upgrade, old preun", script: "rpm-preun", args: []string{"1"}, running: true},
		{name: "rpm upgrade, old postun", script: "rpm-postun", args: []string{"1"}, running: true,
			want: []string{"systemctl daemon-reload", "systemctl try-restart lockstepd.service"}},
		{name: "rpm erased: state kept", script: "rpm-postun", args: []string{"0"}, running: true,
			want: []string{"systemctl daemon-reload"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			calls, kept := runScript(t, tc.script, tc.running, tc.wasEnabled, tc.args...)
			// Redirections and "|| true" are the script's; compare the
			// commands.
			if !slices.Equal(calls, tc.want) {
				t.Errorf("%s %q calls\n\t%q\nwant\n\t%q", tc.script, tc.args, calls, tc.want)
			}
			if kept == tc.stateGone {
				t.Errorf("%s %q: state directory kept=%v, want %v", tc.script, tc.args, kept, !tc.stateGone)
			}
		})
	}
}
