package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/emu"
	"github.com/lockstep-io/lockstep/hal/emu/lab"
	"github.com/lockstep-io/lockstep/hal/emu/topology"
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
	bus    string
	srv    *lab.Server
	cancel []func()
}

const demoServer = "lockstepd-a"

func runDaemonDemo(ctx context.Context, out io.Writer, bin string) (consistent bool, err error) {
	d := &daemonDemo{out: out, bin: bin}
	defer d.stop()
	if d.dir, err = os.MkdirTemp("", "lockstep-demo-"); err != nil {
		return false, err
	}
	defer os.RemoveAll(d.dir)
	steps := []func(context.Context) error{d.startBus, d.startLab, d.startDaemon, d.defineStorage,
		d.defineSession, d.startSession, d.heartbeatOn, d.runWorkload, d.s1Fault}
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

// ctl runs lockstepctl and shows the command and its answer.
func (d *daemonDemo) ctl(ctx context.Context, args ...string) (string, error) {
	full := append([]string{"--bus", d.bus}, args...)
	out, err := exec.CommandContext(ctx, filepath.Join(d.bin, "lockstepctl"), full...).CombinedOutput()
	return string(out), err
}

func (d *daemonDemo) show(ctx context.Context, args ...string) error {
	fmt.Fprintf(d.out, "$ lockstepctl %s\n", strings.Join(args, " "))
	out, err := d.ctl(ctx, args...)
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

// startBus starts a private dbus-daemon: the admin API's bus.
func (d *daemonDemo) startBus(ctx context.Context) error {
	addr, stop, err := privbus.Start(d.dir)
	if err != nil {
		return err
	}
	d.bus = addr
	d.cancel = append(d.cancel, stop)
	d.say("a private D-Bus for the admin API: %s", d.bus)
	return nil
}

func (d *daemonDemo) startLab(ctx context.Context) error {
	var lsss []emu.LSSConfig
	for _, l := range topology.DefaultLSSs() {
		l.CGTimeout = 10 * time.Second
		lsss = append(lsss, l)
	}
	topo := topology.Standard(4, lsss)
	cfg := &lab.Config{Speed: 1, Topology: topo}
	for _, sc := range topo.Systems {
		cfg.Systems = append(cfg.Systems, lab.System{SystemConfig: sc, User: "lockstep",
			Password: "pw-" + string(sc.Serial), Endpoints: [2]string{"127.0.0.1:0", "127.0.0.1:0"}})
		if err := os.WriteFile(d.pwFile(sc.Serial), []byte("pw-"+string(sc.Serial)+"\n"), 0o600); err != nil {
			return err
		}
	}
	labCtx, cancel := context.WithCancel(ctx)
	srv, err := lab.Start(labCtx, cfg, lab.Options{ControlSocket: filepath.Join(d.dir, "lab.sock")})
	if err != nil {
		cancel()
		return err
	}
	d.srv = srv
	d.cancel = append(d.cancel, func() { cancel(); srv.Wait() })
	if err := os.WriteFile(filepath.Join(d.dir, "lab-ca.pem"), srv.CAPEM(), 0o644); err != nil {
		return err
	}
	d.say("lockstep-lab serves 4 primary and 4 secondary storage systems on loopback (TLS, two clusters each);\n" +
		"# every LSS has a CG timeout of 10 s for this demo (60 s FB / 120 s CKD on real arrays)")
	return nil
}

func (d *daemonDemo) pwFile(serial hal.Serial) string {
	return filepath.Join(d.dir, "pw-"+string(serial))
}

func (d *daemonDemo) startDaemon(ctx context.Context) error {
	conf := filepath.Join(d.dir, "lockstep.toml")
	text := fmt.Sprintf(`[server]
name = %q
state_dir = %q

[heartbeat]
interval = "500ms"
detection_window = "1s"
request_timeout = "1s"
poll_interval = "2s"
retry_interval = "250ms"

[control]
bus = %q

[log]
format = "text"
`, demoServer, filepath.Join(d.dir, "state"), d.bus)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(d.dir, "lockstepd.log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(d.bin, "lockstepd"), "--config", conf,
		"--storage-ca", filepath.Join(d.dir, "lab-ca.pem"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	d.cancel = append(d.cancel, func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
	})
	d.say("lockstepd starts on that bus with its state in %s", filepath.Join(d.dir, "state"))
	for i := 0; ; i++ {
		if _, err := d.ctl(ctx, "status"); err == nil {
			break
		}
		if i == 100 {
			log, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("lockstepd did not come up:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return d.show(ctx, "status")
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
	d.say("FAULT S1: %s loses its replication paths and its connection to lockstepd at the same instant", p1)
	for _, f := range []lab.Fault{
		{Kind: "manager", System: p1, Endpoint: -1, Mode: "down", Manager: demoServer},
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

var errDemoInconsistent = errors.New("the demo's secondary image is inconsistent")
