package hapair

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/control/client"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/lab"
	"github.com/lockstep-io/lockstep/internal/privbus"
	"github.com/lockstep-io/lockstep/internal/relay"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// Options shape a Pair.
type Options struct {
	// Bin is the folder holding lockstepd.
	Bin string
	// Dir is the working folder (state, buses, logs, certificates).
	Dir string
	// Primaries: storage systems per site (default 2).
	Primaries int
	// CGTimeout of every LSS (default 10 s).
	CGTimeout time.Duration
	// Heartbeat is the [heartbeat] table of both servers' configuration
	// (default: 500 ms interval, 1 s detection window and request timeout).
	Heartbeat string
	// ReconnectInterval and ReconnectAttempts of [ha] (default 1 s, 10).
	ReconnectInterval string
	ReconnectAttempts int
	// Rogue gives the second server a certificate of another CA.
	Rogue bool
	// Names of the two servers (server.name; default "a" and "b").
	Names [2]string
	// Extra is appended to both servers' configuration, after [storage]
	// (more tables, such as [snmp]).
	Extra string
	// Strangers: names of other servers for which the pair's CA issues a
	// certificate too (Pair.Strangers): servers of the installation that
	// are not the partner.
	Strangers []string
	// HMCFront: storage systems the lab also puts behind a dual HMC
	// (HMCNames, on 127.0.0.91 and .92; user HMCUser, password in
	// HMCPasswordFile); none if empty.
	HMCFront []hal.Serial
	// ZOS puts the lab's z/OS host ZOSHost (sysplex ZOSSysplex) in front
	// of every storage system of the lab, and both servers in its
	// sysplex; ZOSSpec is its zos add.
	ZOS bool
	// MirrorLSSs, if set, are the only LSSs the lab's topology mirrors
	// (its Paths and Pairs: what DefineSession defines and the lab's
	// workload writes to); the systems have every LSS of
	// topology.DefaultLSSs all the same, free for other sessions.
	MirrorLSSs []hal.LSS
}

// The dual HMC of a lab with Options.HMCFront.
var HMCNames = [2]string{"LAB-HMC1", "LAB-HMC2"}

// HMCUser is the HMCs' user.
const HMCUser = "lockstep"

// HMCPasswordFile is where StartLabHMC wrote the HMCs' password.
func HMCPasswordFile(dir string) string { return filepath.Join(dir, "pw-hmc") }

// Pair is an emulated lab and two lockstepd processes ("a" and "b"),
// each with its own private D-Bus, its HA listener behind a relay that
// the test controls: every HA connection goes through the relays, so
// cutting them partitions the two servers.
type Pair struct {
	opt  Options
	Lab  *lab.Server
	A, B *Node
	// Strangers holds the TLS files of Options.Strangers.
	Strangers map[string]TLSFiles
	stops     []func()
}

// Node is one lockstepd process.
type Node struct {
	Name  string
	Dir   string
	Bus   string
	Relay *relay.Relay // in front of its HA listener; the partner dials it
	// Listen is its HA listener itself (host:port), behind the relay.
	Listen string

	mu     sync.Mutex // guards client and conn: a restart replaces them
	client *client.Client

	pair   *Pair
	conf   string
	cmd    *exec.Cmd
	exited chan struct{}
	conn   *dbus.Conn
	logf   *os.File
}

// New starts the lab and writes both servers' configuration; Start
// starts a server.
func New(ctx context.Context, opt Options) (*Pair, error) {
	if opt.Primaries == 0 {
		opt.Primaries = 2
	}
	if opt.CGTimeout == 0 {
		opt.CGTimeout = 10 * time.Second
	}
	if opt.Heartbeat == "" {
		opt.Heartbeat = "interval = \"500ms\"\ndetection_window = \"1s\"\nrequest_timeout = \"1s\"\npoll_interval = \"2s\"\nretry_interval = \"250ms\"\n"
	}
	if opt.ReconnectInterval == "" {
		opt.ReconnectInterval = "1s"
	}
	if opt.ReconnectAttempts == 0 {
		opt.ReconnectAttempts = 10
	}
	if opt.Names == [2]string{} {
		opt.Names = [2]string{"a", "b"}
	}
	p := &Pair{opt: opt}
	if err := p.startLab(ctx); err != nil {
		p.Close()
		return nil, err
	}
	a, b := opt.Names[0], opt.Names[1]
	pki, err := WritePKI(opt.Dir, "pair", append([]string{a, b}, opt.Strangers...)...)
	if err != nil {
		p.Close()
		return nil, err
	}
	p.Strangers = map[string]TLSFiles{}
	for _, s := range opt.Strangers {
		p.Strangers[s] = pki[s]
	}
	if opt.Rogue {
		rogue, err := WritePKI(opt.Dir, "rogue", b)
		if err != nil {
			p.Close()
			return nil, err
		}
		pki[b] = rogue[b]
	}
	if p.A, err = p.newNode(a, b, pki[a]); err == nil {
		p.B, err = p.newNode(b, a, pki[b])
	}
	if err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *Pair) startLab(ctx context.Context) error {
	srv, stop, err := startLab(ctx, p.opt.Dir, p.opt)
	if err != nil {
		return err
	}
	p.Lab = srv
	p.stops = append(p.stops, stop)
	return nil
}

// StartLab starts an emulated lab of primaries + primaries storage
// systems (topology.Standard) on loopback TLS, every LSS with the CG
// timeout cg, with its control socket, its CA (lab-ca.pem) and one
// password file per system (PasswordFile) in dir. stop ends it.
func StartLab(ctx context.Context, dir string, primaries int, cg time.Duration) (srv *lab.Server, stop func(), err error) {
	return StartLabHMC(ctx, dir, primaries, cg, nil)
}

// StartLabHMC is StartLab with the systems front also behind a dual HMC.
func StartLabHMC(ctx context.Context, dir string, primaries int, cg time.Duration, front []hal.Serial) (srv *lab.Server, stop func(), err error) {
	return startLab(ctx, dir, Options{Primaries: primaries, CGTimeout: cg, HMCFront: front})
}

// The z/OS host of a lab with Options.ZOS, its sysplex, and its user
// (password in ZOSPasswordFile).
const (
	ZOSHost    = "SYSA"
	ZOSSysplex = "PLEX1"
	ZOSUser    = "zosmgr"
)

// ZOSPasswordFile is where the lab of Options.ZOS wrote its z/OS host's
// password.
func ZOSPasswordFile(dir string) string { return filepath.Join(dir, "pw-zos") }

// startLab is StartLabHMC with the lab options of opt (Primaries,
// CGTimeout, HMCFront, ZOS, MirrorLSSs).
func startLab(ctx context.Context, dir string, opt Options) (srv *lab.Server, stop func(), err error) {
	var lsss []emu.LSSConfig
	for _, l := range topology.DefaultLSSs() {
		l.CGTimeout = opt.CGTimeout
		lsss = append(lsss, l)
	}
	topo := topology.Standard(opt.Primaries, lsss)
	if len(opt.MirrorLSSs) > 0 {
		topo.Paths = slices.DeleteFunc(topo.Paths, func(p hal.PathSpec) bool { return !slices.Contains(opt.MirrorLSSs, p.Source.LSS) })
		topo.Pairs = slices.DeleteFunc(topo.Pairs, func(p hal.VolumePair) bool {
			return !slices.Contains(opt.MirrorLSSs, p.Source.Volume.LSS())
		})
	}
	front := opt.HMCFront
	cfg := &lab.Config{Speed: 1, Topology: topo}
	for i, sc := range topo.Systems {
		eps, err := LabEndpoints(i)
		if err != nil {
			return nil, nil, err
		}
		cfg.Systems = append(cfg.Systems, lab.System{SystemConfig: sc, User: "lockstep",
			Password: "pw-" + string(sc.Serial), Endpoints: eps})
		if err := os.WriteFile(PasswordFile(dir, sc.Serial), []byte("pw-"+string(sc.Serial)+"\n"), 0o600); err != nil {
			return nil, nil, err
		}
	}
	if len(front) > 0 {
		for i, name := range HMCNames {
			cfg.HMCs = append(cfg.HMCs, lab.HMC{HMCConfig: emu.HMCConfig{Name: name, Systems: front,
				Processing: 200 * time.Microsecond, LinkLatency: 100 * time.Microsecond},
				User: HMCUser, Password: "pw-hmc", Endpoint: fmt.Sprintf("127.0.0.%d:0", 91+i)})
		}
		if err := os.WriteFile(HMCPasswordFile(dir), []byte("pw-hmc\n"), 0o600); err != nil {
			return nil, nil, err
		}
	}
	if opt.ZOS {
		// Every system online through channels of its own (the
		// secondaries' too: the host swaps to them); the address is the
		// one after the HMCs'.
		h := lab.ZOSHost{Name: ZOSHost, Sysplex: ZOSSysplex, Endpoint: "127.0.0.93:0", User: ZOSUser,
			Password: "pw-zos", ChannelLatency: lab.DefaultChannelLatency, LPARs: []string{ZOSHost + "1"}}
		for i, sc := range topo.Systems {
			h.Online = append(h.Online, lab.ZOSOnline{Serial: sc.Serial, Channels: []string{fmt.Sprintf("%02X", 0x40+i)},
				LPARs: h.LPARs})
		}
		cfg.ZOSHosts = []lab.ZOSHost{h}
		if err := os.WriteFile(ZOSPasswordFile(dir), []byte("pw-zos\n"), 0o600); err != nil {
			return nil, nil, err
		}
	}
	labCtx, cancel := context.WithCancel(ctx)
	srv, err = lab.Start(labCtx, cfg, lab.Options{ControlSocket: filepath.Join(dir, "lab.sock")})
	if err != nil {
		cancel()
		return nil, nil, err
	}
	stop = func() { cancel(); srv.Wait() }
	if err := os.WriteFile(CAFile(dir), srv.CAPEM(), 0o644); err != nil {
		stop()
		return nil, nil, err
	}
	return srv, stop, nil
}

// LabEndpoints are the listen addresses of the i-th (from 0) system of a
// lab's topology: an address of its own per cluster, 127.0.0.(10(i+1)+1)
// and +2 (the scheme of etc/lab.toml), so that the managers tell the systems' traps apart by
// address and each cluster has its own certificate.
func LabEndpoints(i int) ([2]string, error) {
	if i < 0 || i >= 25 {
		return [2]string{}, fmt.Errorf("hapair: system %d: a lab has at most 25 systems (12 primaries)", i)
	}
	n := 10 * (i + 1)
	return [2]string{fmt.Sprintf("127.0.0.%d:0", n+1), fmt.Sprintf("127.0.0.%d:0", n+2)}, nil
}

// CAFile is where StartLab wrote the lab's CA, for [storage] ca_file.
func CAFile(dir string) string { return filepath.Join(dir, "lab-ca.pem") }

// PasswordFile is where StartLab wrote the password of a system.
func PasswordFile(dir string, serial hal.Serial) string {
	return filepath.Join(dir, "pw-"+string(serial))
}

func (p *Pair) pwFile(serial hal.Serial) string { return PasswordFile(p.opt.Dir, serial) }

// freePort returns a loopback port that was free a moment ago.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// newNode writes the configuration of the server name, whose partner
// (the name its certificate carries) is partner.
func (p *Pair) newNode(name, partner string, tlsFiles TLSFiles) (*Node, error) {
	n := &Node{Name: name, Dir: filepath.Join(p.opt.Dir, name), pair: p}
	if err := os.MkdirAll(n.Dir, 0o755); err != nil {
		return nil, err
	}
	bus, stop, err := privbus.Start(n.Dir)
	if err != nil {
		return nil, err
	}
	n.Bus = bus
	p.stops = append(p.stops, stop)
	listen, err := freePort()
	if err != nil {
		return nil, err
	}
	n.Listen = listen
	if n.Relay, err = relay.New("127.0.0.1:0", listen); err != nil {
		return nil, err
	}
	p.stops = append(p.stops, func() { n.Relay.Close() })
	n.conf = filepath.Join(n.Dir, "lockstep.toml")
	sysplex := ""
	if p.opt.ZOS {
		sysplex = fmt.Sprintf("sysplex = %q\n", ZOSSysplex)
	}
	text := fmt.Sprintf(`[server]
name = %q
state_dir = %q
%s

[heartbeat]
%s
[ha]
listen = "tcp://%s"
advertise = "tcp://%s"
cert_file = %q
key_file = %q
ca_file = %q
reconnect_interval = %q
reconnect_attempts = %d
partner_name = %q

[control]
bus = %q

[log]
format = "text"
level = "debug"

[storage]
ca_file = %q
%s`, name, filepath.Join(n.Dir, "state"), sysplex, p.opt.Heartbeat, listen, n.Relay.Addr(), tlsFiles.Cert, tlsFiles.Key, tlsFiles.CA,
		p.opt.ReconnectInterval, p.opt.ReconnectAttempts, partner, bus, CAFile(p.opt.Dir), p.opt.Extra)
	return n, os.WriteFile(n.conf, []byte(text), 0o644)
}

// Addr is where the partner dials this node: its relay.
func (n *Node) Addr() string { return "tcp://" + n.Relay.Addr() }

// Log is what the node's processes logged so far.
func (n *Node) Log() string {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "lockstepd.log"))
	return string(b)
}

// Start runs lockstepd and waits until its admin API answers.
func (n *Node) Start(ctx context.Context) error {
	logf, err := os.OpenFile(filepath.Join(n.Dir, "lockstepd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "==== start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(filepath.Join(n.pair.opt.Bin, "lockstepd"), "--config", n.conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	n.cmd, n.logf, n.exited = cmd, logf, make(chan struct{})
	go func() { cmd.Wait(); close(n.exited) }()
	// A server replaying a long journal on a loaded machine takes as long
	// as it takes: it has not come up only once it stopped using the CPU
	// (blocked) for startStall, or after startLimit in all.
	const startStall, startLimit = 20 * time.Second, 5 * time.Minute
	began, cpu, progressed := time.Now(), cpuTime(cmd.Process.Pid), time.Now()
	for {
		if err := n.dial(ctx); err == nil {
			if _, err = n.Client().Status(ctx); err == nil {
				return nil
			}
		}
		select {
		case <-n.exited:
			return fmt.Errorf("lockstepd %s exited at start:\n%s", n.Name, tail(n.Log(), 40))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if c := cpuTime(cmd.Process.Pid); c != cpu {
			cpu, progressed = c, time.Now()
		}
		if time.Since(progressed) > startStall || time.Since(began) > startLimit {
			return fmt.Errorf("lockstepd %s did not come up (%v, the last %v without CPU time):\n%s", n.Name,
				time.Since(began).Round(time.Second), time.Since(progressed).Round(time.Second), tail(n.Log(), 40))
		}
	}
}

// cpuTime is the CPU time a process has used, in clock ticks (utime +
// stime of /proc/PID/stat); -1 when unknown.
func cpuTime(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The command name (field 2) may hold spaces: count from its end.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return -1
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return u + s
}

func (n *Node) dial(ctx context.Context) error {
	conn, err := client.Connect(n.Bus)
	if err != nil {
		return err
	}
	n.mu.Lock()
	old := n.conn
	n.conn, n.client = conn, client.New(conn)
	n.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// Client is the admin API client of the node's current process.
func (n *Node) Client() *client.Client {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.client
}

// Running reports whether the process runs (it may be stopped).
func (n *Node) Running() bool {
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// Signal sends sig to the process.
func (n *Node) Signal(sig syscall.Signal) error {
	if !n.Running() {
		return errors.New("not running")
	}
	return n.cmd.Process.Signal(sig)
}

// Kill is kill -9, waited for.
func (n *Node) Kill() {
	if !n.Running() {
		return
	}
	n.cmd.Process.Signal(syscall.SIGCONT) // a stopped process dies too, but be explicit
	n.cmd.Process.Kill()
	<-n.exited
	n.logf.Close()
}

// Stop is a clean stop (SIGTERM), waited for; SIGKILL after 15 s.
func (n *Node) Stop() {
	if !n.Running() {
		return
	}
	n.cmd.Process.Signal(syscall.SIGCONT)
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(15 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
	}
	n.logf.Close()
}

// Close stops both servers and the lab.
func (p *Pair) Close() {
	for _, n := range []*Node{p.A, p.B} {
		if n != nil {
			n.Stop()
			n.mu.Lock()
			if n.conn != nil {
				n.conn.Close()
			}
			n.mu.Unlock()
		}
	}
	for i := len(p.stops) - 1; i >= 0; i-- {
		p.stops[i]()
	}
}

// DefineSession defines every lab system on n, one failover/failback
// session "prod" over every pair, starts it and waits until Prepared,
// then switches the heartbeat on if heartbeat.
func (p *Pair) DefineSession(ctx context.Context, n *Node, heartbeat bool) error {
	c := n.Client()
	for _, st := range p.Lab.Status() {
		spec := api.StorageSpec{Serial: hal.Serial(st.Serial), Connections: []api.ConnectionSpec{{
			Name: "direct", Kind: api.Direct, Addresses: []string{st.Endpoints[0], st.Endpoints[1]},
			User: "lockstep", PasswordFile: p.pwFile(hal.Serial(st.Serial))}}}
		if _, err := c.StorageAdd(ctx, spec); err != nil {
			return fmt.Errorf("storage add %s: %w", st.Serial, err)
		}
	}
	if err := c.SessionCreate(ctx, "prod", api.MetroMirrorFailoverFailback, "prod-cg", api.HoldIO); err != nil {
		return err
	}
	for _, pr := range p.Lab.Topology().Pairs {
		if err := c.SessionAddCopySet(ctx, "prod", api.CopySet{H1: pr.Source, H2: pr.Target}); err != nil {
			return err
		}
	}
	if err := Eventually(ctx, 20*time.Second, func() error {
		_, err := c.SessionCommand(ctx, "prod", api.CmdStartH1H2)
		return err
	}); err != nil {
		return fmt.Errorf("start-h1-h2: %w", err)
	}
	if err := Eventually(ctx, 30*time.Second, func() error {
		doc, err := c.SessionCommand(ctx, "prod", api.CmdRefresh)
		if err != nil {
			return err
		}
		if doc.State != api.StatePrepared {
			return fmt.Errorf("session is %s", doc.State)
		}
		return nil
	}); err != nil {
		return err
	}
	if heartbeat {
		if _, err := c.HeartbeatSet(ctx, true); err != nil {
			return err
		}
	}
	return nil
}

// Pair makes a the active and b its standby (ha set-standby on a: b, a
// standalone server, becomes the standby of the active that links to it)
// and waits until both say Synchronized.
func (p *Pair) Pair(ctx context.Context) error {
	if err := p.A.Client().HASetStandby(ctx, p.B.Addr(), p.B.Name); err != nil {
		return fmt.Errorf("a: ha set-standby: %w", err)
	}
	return p.WaitState(ctx, 30*time.Second, "Synchronized", p.A, p.B)
}

// PairFromStandby is Pair done from the other side: ha set-as-standby on
// b; a, a standalone server, becomes the active of the standby that links
// to it.
func (p *Pair) PairFromStandby(ctx context.Context) error {
	if err := p.B.Client().HASetAsStandby(ctx, p.A.Addr(), p.A.Name); err != nil {
		return fmt.Errorf("b: ha set-as-standby: %w", err)
	}
	return p.WaitState(ctx, 30*time.Second, "Synchronized", p.A, p.B)
}

// WaitState waits until every node shows the HA state.
func (p *Pair) WaitState(ctx context.Context, within time.Duration, state string, nodes ...*Node) error {
	return Eventually(ctx, within, func() error {
		for _, n := range nodes {
			doc, err := n.Client().HAStatus(ctx)
			if err != nil {
				return fmt.Errorf("%s: %w", n.Name, err)
			}
			if doc.State != state {
				return fmt.Errorf("%s is %s/%s, want %s", n.Name, doc.Role, doc.State, state)
			}
		}
		return nil
	})
}

// Eventually retries f every 50 ms until it succeeds or within passed;
// the last error is returned.
func Eventually(ctx context.Context, within time.Duration, f func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}
