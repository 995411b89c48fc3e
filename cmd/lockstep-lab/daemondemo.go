package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/emu/lab"
	"github.com/lockstep-io/lockstep/hal/emu/topology"
	"github.com/lockstep-io/lockstep/internal/hapair"
	"github.com/lockstep-io/lockstep/internal/privbus"
)

// daemonDemo is the administrator's tour: a private D-Bus, the lab's 4+4
// storage systems on loopback, one real lockstepd, and every step done
// with lockstepctl as an admin would type it. The lab's CG timeouts are
// 10 s (instead of 60/120 s) so that the whole story fits in a minute;
// lockstepd's heartbeat timings are shortened to match.
type daemonDemo struct {
	out    io.Writer
	bin    string // folder with lockstepd and lockstepctl
	dir    string
	bus    string // the bus lockstepctl talks to: the active's
	srv    *lab.Server
	cancel []func()

	// The HA pair: each server has its own bus (the admin API's name is
	// per bus), its HA listener, and its process.
	servers map[string]*demoServer
	pki     map[string]hapair.TLSFiles
	active  string
}

// demoServer is one lockstepd of the demo.
type demoServer struct {
	name, bus, listen, dir string
	cmd                    *exec.Cmd
	exited                 chan struct{}
}

const (
	serverA = "lockstepd-a"
	serverB = "lockstepd-b"
)

func runDaemonDemo(ctx context.Context, out io.Writer, bin string) (consistent bool, err error) {
	d := &daemonDemo{out: out, bin: bin, servers: map[string]*demoServer{}, active: serverA}
	defer d.stop()
	if d.dir, err = os.MkdirTemp("", "lockstep-demo-"); err != nil {
		return false, err
	}
	defer os.RemoveAll(d.dir)
	steps := []func(context.Context) error{d.startLab, d.startActive, d.defineStorage,
		d.defineSession, d.startSession, d.heartbeatOn, d.runWorkload, d.startStandby, d.takeover, d.s1Fault, d.oldActiveReturns}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return false, err
		}
	}
	rep, st, err := d.srv.Check()
	if err != nil {
		return false, err
	}
	d.say("the oracle reads every secondary volume after %d acknowledged writes:\n  %s", st.Writes, rep)
	return rep.Consistent, nil
}

func (d *daemonDemo) say(format string, a ...any) { fmt.Fprintf(d.out, "\n# "+format+"\n", a...) }

func (d *daemonDemo) stop() {
	for i := len(d.cancel) - 1; i >= 0; i-- {
		d.cancel[i]()
	}
}

// ctl runs lockstepctl against the active.
func (d *daemonDemo) ctl(ctx context.Context, args ...string) (string, error) {
	return d.ctlOn(ctx, d.bus, args...)
}

// ctlOn runs lockstepctl against the server on bus.
func (d *daemonDemo) ctlOn(ctx context.Context, bus string, args ...string) (string, error) {
	full := append([]string{"--bus", bus}, args...)
	out, err := exec.CommandContext(ctx, filepath.Join(d.bin, "lockstepctl"), full...).CombinedOutput()
	return string(out), err
}

// show runs lockstepctl against the active and shows the command and its
// answer.
func (d *daemonDemo) show(ctx context.Context, args ...string) error {
	return d.showOn(ctx, d.bus, args...)
}

func (d *daemonDemo) showOn(ctx context.Context, bus string, args ...string) error {
	host := serverA
	for name, sv := range d.servers {
		if sv.bus == bus {
			host = name
		}
	}
	fmt.Fprintf(d.out, "%s$ lockstepctl %s\n", host, strings.Join(args, " "))
	out, err := d.ctlOn(ctx, bus, args...)
	fmt.Fprint(d.out, indent(out))
	if err != nil {
		return fmt.Errorf("lockstepctl %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ") + "\n"
}

func (d *daemonDemo) startLab(ctx context.Context) error {
	srv, stop, err := hapair.StartLab(ctx, d.dir, 4, 10*time.Second)
	if err != nil {
		return err
	}
	d.srv = srv
	d.cancel = append(d.cancel, stop)
	d.say("lockstep-lab serves 4 primary and 4 secondary storage systems on loopback (TLS, two clusters each);\n" +
		"# every LSS has a CG timeout of 10 s for this demo (60 s FB / 120 s CKD on real arrays)")
	return nil
}

func (d *daemonDemo) pwFile(serial hal.Serial) string { return hapair.PasswordFile(d.dir, serial) }

// startServer starts a lockstepd with its own private D-Bus and an HA
// listener on loopback, and waits until its admin API answers. A server
// started before comes back with its bus, listener and state.
func (d *daemonDemo) startServer(ctx context.Context, name string) (*demoServer, error) {
	sv := d.servers[name]
	if sv == nil {
		var err error
		if sv, err = d.newServer(name); err != nil {
			return nil, err
		}
	}
	return sv, d.runServer(ctx, sv)
}

// newServer sets up a server: its bus, its listener port, its
// configuration.
func (d *daemonDemo) newServer(name string) (*demoServer, error) {
	if d.pki == nil {
		pki, err := hapair.WritePKI(d.dir, "demo", serverA, serverB)
		if err != nil {
			return nil, err
		}
		d.pki = pki
	}
	sv := &demoServer{name: name, dir: filepath.Join(d.dir, name)}
	if err := os.MkdirAll(sv.dir, 0o755); err != nil {
		return nil, err
	}
	bus, stopBus, err := privbus.Start(sv.dir)
	if err != nil {
		return nil, err
	}
	d.cancel = append(d.cancel, stopBus)
	sv.bus = bus
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	sv.listen = "tcp://" + l.Addr().String()
	l.Close()
	tf := d.pki[name]
	conf := filepath.Join(sv.dir, "lockstep.toml")
	text := fmt.Sprintf(`[server]
name = %q
state_dir = %q

[heartbeat]
interval = "500ms"
detection_window = "1s"
request_timeout = "1s"
poll_interval = "2s"
retry_interval = "250ms"

[ha]
listen = %q
cert_file = %q
key_file = %q
ca_file = %q
reconnect_interval = "1s"

[control]
bus = %q

[log]
format = "text"
`, name, filepath.Join(sv.dir, "state"), sv.listen, tf.Cert, tf.Key, tf.CA, sv.bus)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return nil, err
	}
	d.servers[name] = sv
	return sv, nil
}

// runServer starts its process and waits for the admin API.
func (d *daemonDemo) runServer(ctx context.Context, sv *demoServer) error {
	conf := filepath.Join(sv.dir, "lockstep.toml")
	logf, err := os.OpenFile(filepath.Join(sv.dir, "lockstepd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(d.bin, "lockstepd"), "--config", conf,
		"--storage-ca", filepath.Join(d.dir, "lab-ca.pem"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	sv.cmd, sv.exited = cmd, make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(sv.exited) }()
	d.cancel = append(d.cancel, func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-sv.exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-sv.exited
		}
	})
	for i := 0; ; i++ {
		if _, err := d.ctlOn(ctx, sv.bus, "status"); err == nil {
			return nil
		}
		if i == 100 {
			log, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("%s did not come up:\n%s", sv.name, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *daemonDemo) startActive(ctx context.Context) error {
	sv, err := d.startServer(ctx, serverA)
	if err != nil {
		return err
	}
	d.bus = sv.bus
	d.say("%s starts on its own private D-Bus (%s) with its state in %s", serverA, sv.bus, filepath.Join(sv.dir, "state"))
	return d.show(ctx, "status")
}

// startStandby starts the second server and pairs the two: the active
// ships its journal to the standby, which acknowledges every record after
// its own fsync.
func (d *daemonDemo) startStandby(ctx context.Context) error {
	b, err := d.startServer(ctx, serverB)
	if err != nil {
		return err
	}
	a := d.servers[serverA]
	d.say("a second server, %s, becomes the standby: it takes a backup, receives a snapshot, then every record", serverB)
	if err := d.showOn(ctx, b.bus, "ha", "set-as-standby", a.listen); err != nil {
		return err
	}
	d.say("%s links to %s, which becomes its active (the same as ha set-standby %s on %s)", serverB, serverA, b.listen, serverA)
	for i := 0; ; i++ {
		out, err := d.ctlOn(ctx, b.bus, "ha", "status")
		if err == nil && strings.Contains(out, "Synchronized") {
			break
		}
		if i == 100 {
			return fmt.Errorf("the pair did not synchronize: %s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := d.show(ctx, "ha", "status"); err != nil {
		return err
	}
	// The standby connects to the storage systems it learned of (it
	// issues nothing): its takeover readiness.
	for i := 0; i < 50; i++ {
		if out, err := d.ctlOn(ctx, b.bus, "ha", "status"); err == nil && !strings.Contains(out, "cannot reach") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.say("the standby reaches every storage system (it issues nothing to them): it is ready to take over")
	return d.showOn(ctx, b.bus, "ha", "status")
}

// takeover is S4: the active's host dies (kill -9) while the workload
// runs; the administrator takes over on the standby well within the
// heartbeat timeout: nothing freezes, and the new active keeps the
// heartbeat with its higher epoch.
func (d *daemonDemo) takeover(ctx context.Context) error {
	a, b := d.servers[serverA], d.servers[serverB]
	d.say("S4: %s dies (kill -9) while the workload runs", serverA)
	a.cmd.Process.Kill()
	<-a.exited
	time.Sleep(500 * time.Millisecond)
	d.say("the administrator takes over on %s within the heartbeat timeout", serverB)
	if err := d.showOn(ctx, b.bus, "ha", "takeover"); err != nil {
		return err
	}
	d.bus, d.active = b.bus, serverB
	time.Sleep(2 * time.Second)
	d.say("%s is the active now, with the higher epoch; its heartbeat is armed on every primary; nothing froze", serverB)
	if err := d.show(ctx, "heartbeat", "show"); err != nil {
		return err
	}
	return d.show(ctx, "session", "list")
}

func (d *daemonDemo) defineStorage(ctx context.Context) error {
	d.say("define the storage systems (credentials are read by lockstepd from a file)")
	for i, st := range d.srv.Status() {
		args := []string{"storage", "add", st.Serial, "--addr", st.Endpoints[0] + "," + st.Endpoints[1],
			"--user", "lockstep", "--password-file", d.pwFile(hal.Serial(st.Serial))}
		if i == 0 {
			if err := d.show(ctx, args...); err != nil {
				return err
			}
			continue
		}
		if out, err := d.ctl(ctx, args...); err != nil {
			return fmt.Errorf("storage add %s: %v: %s", st.Serial, err, out)
		}
	}
	fmt.Fprintln(d.out, "  ... (the 7 others alike)")
	time.Sleep(time.Second) // let the drivers connect
	return d.show(ctx, "storage", "list")
}

func (d *daemonDemo) defineSession(ctx context.Context) error {
	d.say("one Metro Mirror failover/failback session over all 64 volume pairs")
	if err := d.show(ctx, "session", "create", "prod", "--type", "mm-failover-failback", "--cg", "prod-cg"); err != nil {
		return err
	}
	for i, p := range d.srv.Topology().Pairs {
		args := []string{"session", "add-copyset", "prod", p.Source.String(), p.Target.String()}
		if i == 0 {
			if err := d.show(ctx, args...); err != nil {
				return err
			}
			continue
		}
		if out, err := d.ctl(ctx, args...); err != nil {
			return fmt.Errorf("add-copyset: %v: %s", err, out)
		}
	}
	fmt.Fprintln(d.out, "  ... (63 more)")
	return nil
}

func (d *daemonDemo) startSession(ctx context.Context) error {
	d.say("start mirroring H1 -> H2")
	if err := d.show(ctx, "session", "cmd", "prod", "start-h1-h2"); err != nil {
		return err
	}
	for i := 0; ; i++ {
		out, err := d.ctl(ctx, "session", "cmd", "prod", "refresh")
		if err == nil && strings.Contains(out, "Prepared") {
			break
		}
		if i == 50 {
			return fmt.Errorf("session never Prepared: %s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return d.show(ctx, "session", "list")
}

func (d *daemonDemo) heartbeatOn(ctx context.Context) error {
	d.say("switch the Metro Mirror heartbeat on")
	if err := d.show(ctx, "heartbeat", "on"); err != nil {
		return err
	}
	time.Sleep(time.Second)
	return d.show(ctx, "heartbeat", "show")
}

func (d *daemonDemo) runWorkload(ctx context.Context) error {
	d.say("the lab runs 16 chains of dependent writes across the 4 primaries")
	_, err := d.srv.Workload(ctx, lab.WorkloadParam{Action: "start", Chains: 16, VolumesPerChain: 8, Think: "10ms"})
	if err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	return nil
}

func (d *daemonDemo) s1Fault(ctx context.Context) error {
	p1 := string(topology.PrimarySerial(0))
	d.say("FAULT S1: %s loses its replication paths and its connection to the active (%s) at the same instant", p1, d.active)
	for _, f := range []lab.Fault{
		{Kind: "manager", System: p1, Endpoint: -1, Mode: "down", Manager: d.active},
		{Kind: "paths", System: p1},
	} {
		if err := d.srv.Inject(f); err != nil {
			return err
		}
	}
	time.Sleep(3 * time.Second)
	d.say("a few seconds later: lockstepd froze every primary it reaches; the silent one is not known frozen yet")
	if err := d.show(ctx, "session", "show", "prod"); err != nil {
		return err
	}
	d.say("...until its own heartbeat timer has certainly run out (last heartbeat + H + request timeout)")
	time.Sleep(8 * time.Second)
	if err := d.show(ctx, "session", "show", "prod"); err != nil {
		return err
	}
	if err := d.show(ctx, "events"); err != nil {
		return err
	}
	if _, err := d.srv.Workload(ctx, lab.WorkloadParam{Action: "stop"}); err != nil {
		return err
	}
	return nil
}

// oldActiveReturns restarts the server that died: it still believes it
// is the active with epoch 1, learns of epoch 2 from the storage systems
// (which refuse its commands) and from the new active, stops acting at
// once, and becomes the new active's standby: the demo ends with a pair.
func (d *daemonDemo) oldActiveReturns(ctx context.Context) error {
	d.say("%s comes back: it learns of the higher epoch, stops acting at once, and becomes the standby of %s", serverA, serverB)
	a, err := d.startServer(ctx, serverA)
	if err != nil {
		return err
	}
	for i := 0; ; i++ {
		out, err := d.ctlOn(ctx, a.bus, "ha", "status")
		if err == nil && strings.Contains(out, "Synchronized") && strings.Contains(out, "standby") {
			break
		}
		if i == 200 {
			return fmt.Errorf("%s did not become the standby: %s", serverA, out)
		}
		if i%20 == 19 {
			d.ctl(ctx, "ha", "reconnect") // the new active's single attempt may have come too early
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := d.showOn(ctx, a.bus, "ha", "status"); err != nil {
		return err
	}
	return d.show(ctx, "ha", "status")
}

var errDemoInconsistent = errors.New("the demo's secondary image is inconsistent")
