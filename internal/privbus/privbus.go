// Package privbus starts a private dbus-daemon (Debian package
// dbus-daemon) with a session-style policy: the bus of the demo and of
// the tests that run lockstepd as a process.
package privbus

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Start runs a dbus-daemon listening on a socket in dir and returns its
// address and the function that stops it.
func Start(dir string) (addr string, stop func(), err error) { return start(dir, "") }

// StartAnyUser is Start for a bus that every local user may connect to,
// whose policy lets anyone call anything: what a session or test bus
// can be, for the tests that lockstepd refuses an unprivileged caller
// itself. The users must be able to enter dir.
func StartAnyUser(dir string) (addr string, stop func(), err error) {
	return start(dir, "\n    <allow user=\"*\"/>")
}

func start(dir, extra string) (addr string, stop func(), err error) {
	sock := filepath.Join(dir, "bus")
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=`+sock+`</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>`+extra+`
  </policy>
</busconfig>
`), 0o644); err != nil {
		return "", nil, err
	}
	cmd := exec.Command("dbus-daemon", "--config-file="+conf, "--nofork", "--print-address")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("dbus-daemon (Debian package dbus-daemon): %w", err)
	}
	stop = func() { cmd.Process.Kill(); cmd.Wait() }
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("dbus-daemon gave no address: %w", err)
	}
	return strings.TrimSpace(line), stop, nil
}
