package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/workload"
)

// Request is one call of the lab control API.
type Request struct {
	Op       string         `json:"op"` // status | fault | workload | check | trap-register | commands
	Fault    *Fault         `json:"fault,omitempty"`
	Workload *WorkloadParam `json:"workload,omitempty"`
	Trap     *TrapParam     `json:"trap,omitempty"`
	Commands *CommandsParam `json:"commands,omitempty"` // nil: from the first record
}

// CommandsParam reads the record of the commands the storage systems
// judged (emu.Fabric.Commands).
type CommandsParam struct {
	After uint64 `json:"after"` // the records with a greater sequence number
	// Limit bounds the records of one answer (0 or more than
	// MaxCommandsPerAnswer: MaxCommandsPerAnswer); More says when some
	// were left for the next call.
	Limit int `json:"limit,omitempty"`
}

// MaxCommandsPerAnswer bounds the command records of one answer, which
// keeps it well under what Call reads (about 200 bytes a record).
const MaxCommandsPerAnswer = 4096

// TrapParam registers a receiver of the storage systems' SNMPv2c traps
// (suspend and heartbeat expiry events) for as long as the lab runs.
type TrapParam struct {
	Addr      string `json:"addr"` // host:port, udp
	Community string `json:"community,omitempty"`
	// Manager names the manager the traps are for: they are lost while
	// that manager's link faults leave no endpoint of the system up, as
	// pushed events are.
	Manager string `json:"manager,omitempty"`
	System  string `json:"system,omitempty"` // "" = every system of the lab
	// HMC, when set, makes that HMC send the traps of the systems it
	// fronts, from its own address, as a real HMC does (not with System).
	HMC string `json:"hmc,omitempty"`
}

// Fault is one injected fault.
type Fault struct {
	// Kind: paths (every path of System), lss-path (the LSS pair
	// Source->Target), manager (connection mode), latency, crash, restart.
	Kind    string `json:"kind"`
	System  string `json:"system,omitempty"`
	Source  string `json:"source,omitempty"` // SERIAL/LSS for lss-path
	Target  string `json:"target,omitempty"`
	Up      bool   `json:"up,omitempty"`      // paths, lss-path
	Mode    string `json:"mode,omitempty"`    // manager: up | down | blackhole
	Manager string `json:"manager,omitempty"` // manager: only this manager ("" = every manager)
	// Endpoint is 0 or 1 for one cluster, -1 for both (manager, latency).
	Endpoint int    `json:"endpoint"`
	Latency  string `json:"latency,omitempty"`
	// HMC names the HMC of the kinds hmc (Mode up, down or blackhole, or
	// Latency; with Manager, up or down for that manager only) and
	// hmc-link (System's private link: Up, or Mode up, down or
	// blackhole).
	HMC string `json:"hmc,omitempty"`
	// Host is the z/OS host of the kinds zos (Mode up, down or blackhole,
	// or Latency) and channel (System; Mode up or down).
	Host string `json:"host,omitempty"`
}

// WorkloadParam starts, stops or reads the workload.
type WorkloadParam struct {
	Action          string `json:"action"` // start | stop | status
	Chains          int    `json:"chains,omitempty"`
	VolumesPerChain int    `json:"volumes_per_chain,omitempty"`
	Think           string `json:"think,omitempty"`
	// ViaHost, on start, names a z/OS host of the lab file: the workload
	// writes through its I/O view (its device map and channels), so that
	// its HyperSwap moves the writes to H2, and check also holds the image
	// to the lost-write rule. Empty: the writes go straight to the
	// primaries.
	ViaHost string `json:"via_host,omitempty"`
}

// Response answers a Request.
type Response struct {
	OK       bool             `json:"ok"`
	Error    string           `json:"error,omitempty"`
	Systems  []SystemStatus   `json:"systems,omitempty"`
	HMCs     []HMCStatus      `json:"hmcs,omitempty"`
	CAPEM    string           `json:"ca_pem,omitempty"`
	ZOS      []ZOSStatus      `json:"zos,omitempty"`
	Workload *workload.Status `json:"workload,omitempty"`
	Report   *workload.Report `json:"report,omitempty"`
	// ViaHost is the z/OS host the workload writes through (workload,
	// check); empty when it writes straight to the primaries.
	ViaHost string `json:"via_host,omitempty"`
	// Commands answers the op commands, oldest first. Dropped counts the
	// records after the request's After that the bounded log no longer
	// held; More says that records beyond the last one returned remain.
	Commands []emu.CommandRecord `json:"commands,omitempty"`
	Dropped  uint64              `json:"dropped,omitempty"`
	More     bool                `json:"more,omitempty"`
}

// SystemStatus is what status says of one storage system.
type SystemStatus struct {
	Serial    string    `json:"serial"`
	Endpoints [2]string `json:"endpoints"`
	Crashed   bool      `json:"crashed"`
	Epoch     uint64    `json:"epoch"`
	Writes    uint64    `json:"host_writes"`
}

// maxRequest bounds what a control client may send.
const maxRequest = 64 << 10

func (s *Server) serveControl(ctx context.Context) {
	for {
		conn, err := s.control.Accept()
		if err != nil {
			return
		}
		s.wg.Go(func() {
			defer conn.Close()
			var req Request
			resp := Response{OK: true}
			if err := json.NewDecoder(io.LimitReader(conn, maxRequest)).Decode(&req); err != nil {
				resp = Response{Error: fmt.Sprintf("bad request: %v", err)}
			} else if err := s.handle(ctx, &req, &resp); err != nil {
				resp = Response{Error: err.Error()}
			}
			_ = json.NewEncoder(conn).Encode(resp)
		})
	}
}

func (s *Server) handle(ctx context.Context, req *Request, resp *Response) error {
	switch req.Op {
	case "status":
		resp.Systems, resp.HMCs, resp.CAPEM, resp.ZOS = s.Status(), s.HMCStatus(), string(s.caPEM), s.ZOSStatus()
		return nil
	case "fault":
		if req.Fault == nil {
			return errors.New("fault: missing fault")
		}
		return s.Inject(*req.Fault)
	case "workload":
		if req.Workload == nil {
			return errors.New("workload: missing action")
		}
		st, err := s.Workload(ctx, *req.Workload)
		resp.Workload, resp.ViaHost = st, s.viaHostName()
		return err
	case "check":
		rep, st, err := s.Check()
		resp.Report, resp.Workload, resp.ViaHost = rep, st, s.viaHostName()
		return err
	case "trap-register":
		if req.Trap == nil {
			return errors.New("trap-register: missing trap")
		}
		return s.RegisterTrapReceiver(ctx, *req.Trap)
	case "commands":
		var p CommandsParam
		if req.Commands != nil {
			p = *req.Commands
		}
		if p.Limit < 0 {
			return fmt.Errorf("commands: limit %d is negative", p.Limit)
		}
		resp.Commands, resp.Dropped, resp.More = s.Commands(p)
		return nil
	}
	return fmt.Errorf("unknown op %q (status, fault, workload, check, trap-register, commands)", req.Op)
}

// Commands returns the command records after p.After, at most p.Limit
// (bounded by MaxCommandsPerAnswer) of them, how many records after
// p.After the log no longer held, and whether more records remain.
func (s *Server) Commands(p CommandsParam) (recs []emu.CommandRecord, dropped uint64, more bool) {
	limit := p.Limit
	if limit <= 0 || limit > MaxCommandsPerAnswer {
		limit = MaxCommandsPerAnswer
	}
	recs, dropped = s.fabric.Commands(p.After)
	if len(recs) > limit {
		recs, more = recs[:limit:limit], true
	}
	return recs, dropped, more
}

// RegisterTrapReceiver makes the lab's systems (or one) send their events
// as SNMPv2c traps to p.Addr until ctx ends.
func (s *Server) RegisterTrapReceiver(ctx context.Context, p TrapParam) error {
	if p.HMC != "" {
		return s.registerHMCTraps(ctx, p)
	}
	var serials []hal.Serial
	if p.System != "" {
		if s.endpoints[hal.Serial(p.System)] == nil {
			return fmt.Errorf("trap-register: unknown storage system %q", p.System)
		}
		serials = []hal.Serial{hal.Serial(p.System)}
	} else {
		serials = slices.Sorted(maps.Keys(s.endpoints))
	}
	for _, serial := range serials {
		eps := s.endpoints[serial]
		// The lab's link faults are per endpoint: a trap leaves the
		// system while one of its endpoints is up for the manager. The
		// receiver has a manager link of its own in the emulator, which
		// the lab keeps down while no endpoint is up for that manager:
		// the emulator then drops the trap when it raises the event, as
		// it drops the pushed one, not when its sender gets to it.
		link := trapLink{serial: serial, manager: p.Manager, emuName: "snmp-trap:" + p.Addr + ":" + p.Manager}
		s.mu.Lock()
		s.trapLinks = append(s.trapLinks, link)
		s.mu.Unlock()
		s.syncTrapLinks(serial)
		r := emu.TrapReceiver{Addr: p.Addr, Community: p.Community, Manager: link.emuName}
		if ip := s.SourceIP(serial); ip != nil {
			r.LocalAddr = net.JoinHostPort(ip.String(), "0")
		}
		if err := eps[0].system.RegisterTrapReceiver(ctx, r); err != nil {
			return fmt.Errorf("trap-register: %w", err)
		}
	}
	s.log.Info("trap receiver registered", "addr", p.Addr, "manager", p.Manager, "systems", len(serials))
	return nil
}

// trapLink is a trap receiver's link to one system: up while an endpoint
// of that system is up for the receiver's manager.
type trapLink struct {
	serial  hal.Serial
	manager string // "": only faults for every manager touch it
	emuName string // its manager name in the emulator
}

// syncTrapLinks sets the emulator's link of every trap receiver of a
// system from the endpoints' modes.
func (s *Server) syncTrapLinks(serial hal.Serial) {
	eps := s.endpoints[serial]
	s.mu.Lock()
	links := slices.Clone(s.trapLinks)
	s.mu.Unlock()
	for _, l := range links {
		if l.serial != serial {
			continue
		}
		mode := emu.LinkUp
		if eps[0].modeFor(l.manager) != emu.LinkUp && eps[1].modeFor(l.manager) != emu.LinkUp {
			mode = emu.LinkDown
		}
		eps[0].system.SetManagerLink(l.emuName, mode)
	}
}

// Status lists the systems with their bound endpoints.
func (s *Server) Status() []SystemStatus {
	var out []SystemStatus
	for _, serial := range slices.Sorted(maps.Keys(s.endpoints)) {
		eps := s.endpoints[serial]
		sys := eps[0].system
		out = append(out, SystemStatus{Serial: string(serial), Endpoints: [2]string{eps[0].addr(), eps[1].addr()},
			Crashed: sys.Crashed(), Epoch: uint64(sys.Epoch()), Writes: sys.Stats().HostWrites})
	}
	return out
}

// Inject applies a fault.
func (s *Server) Inject(f Fault) error {
	switch f.Kind {
	case "hmc", "hmc-link":
		return s.injectHMC(f)
	case "zos", "channel":
		return s.injectZOS(f)
	}
	var eps *[2]*endpoint
	if f.Kind != "lss-path" {
		eps = s.endpoints[hal.Serial(f.System)]
		if eps == nil {
			return fmt.Errorf("fault %s: unknown storage system %q", f.Kind, f.System)
		}
	}
	selected := func() ([]*endpoint, error) {
		switch f.Endpoint {
		case -1:
			return eps[:], nil
		case 0, 1:
			return []*endpoint{eps[f.Endpoint]}, nil
		}
		return nil, fmt.Errorf("fault %s: endpoint %d is not 0, 1 or -1 (both)", f.Kind, f.Endpoint)
	}
	switch f.Kind {
	case "paths":
		s.fabric.SetSystemPaths(hal.Serial(f.System), f.Up)
	case "lss-path":
		src, err1 := parseLSSRef(f.Source)
		tgt, err2 := parseLSSRef(f.Target)
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("fault lss-path: %w", err)
		}
		s.fabric.SetPath(hal.LSSPair{Source: src, Target: tgt}, f.Up)
	case "manager":
		mode, ok := map[string]emu.LinkMode{"up": emu.LinkUp, "down": emu.LinkDown, "blackhole": emu.LinkBlackhole}[f.Mode]
		if !ok {
			return fmt.Errorf("fault manager: mode %q is not up, down or blackhole", f.Mode)
		}
		sel, err := selected()
		if err != nil {
			return err
		}
		for _, ep := range sel {
			ep.setMode(f.Manager, mode)
		}
		s.syncTrapLinks(hal.Serial(f.System))
	case "latency":
		d, err := time.ParseDuration(f.Latency)
		if err != nil || d < 0 {
			return fmt.Errorf("fault latency: %q is not a duration", f.Latency)
		}
		sel, err := selected()
		if err != nil {
			return err
		}
		for _, ep := range sel {
			ep.mu.Lock()
			ep.latency = d
			ep.mu.Unlock()
		}
	case "crash":
		eps[0].system.Crash()
		for _, ep := range eps {
			ep.dropAll()
		}
	case "restart":
		eps[0].system.Restart()
	default:
		return fmt.Errorf("unknown fault %q (paths, lss-path, manager, latency, crash, restart, hmc, hmc-link, zos, channel)", f.Kind)
	}
	s.log.Info("fault injected", "kind", f.Kind, "system", f.System, "up", f.Up, "mode", f.Mode,
		"endpoint", f.Endpoint, "manager", f.Manager)
	return nil
}

func parseLSSRef(s string) (hal.LSSRef, error) {
	serial, lss, ok := strings.Cut(s, "/")
	if !ok {
		return hal.LSSRef{}, fmt.Errorf("%q is not SERIAL/LSS", s)
	}
	id, err := hal.ParseLSS(lss)
	if err != nil {
		return hal.LSSRef{}, err
	}
	return hal.LSSRef{Serial: hal.Serial(serial), LSS: id}, nil
}

// Workload starts, stops or reads the dependent-write workload over the
// lab file's mirrors.
func (s *Server) Workload(ctx context.Context, p WorkloadParam) (*workload.Status, error) {
	switch p.Action {
	case "start":
		chains, per := p.Chains, p.VolumesPerChain
		if chains == 0 {
			chains = 16
		}
		if per == 0 {
			per = 8
		}
		var think time.Duration
		if p.Think != "" {
			d, err := time.ParseDuration(p.Think)
			if err != nil || d < 0 {
				return nil, fmt.Errorf("workload: think %q is not a duration", p.Think)
			}
			think = d
		}
		layout, err := workload.NewLayout(s.cfg.Topology.Pairs, chains, per)
		if err != nil {
			return nil, err
		}
		var host workload.Host = s.fabric
		var via *emu.Host
		if p.ViaHost != "" {
			if via, err = s.workloadHost(p.ViaHost, layout); err != nil {
				return nil, err
			}
			host = via
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.workload != nil && s.workload.Status().Running {
			return nil, errors.New("workload: already running (stop it first)")
		}
		// The workload outlives this control call: it runs until stopped
		// or until the lab stops.
		s.workload = workload.Start(context.WithoutCancel(ctx), host, layout, workload.Options{Clock: s.clock, Think: think})
		s.layout, s.via = layout, via
		st := s.workload.Status()
		return &st, nil
	case "stop":
		s.stopWorkload()
		fallthrough
	case "status":
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.workload == nil {
			return nil, errors.New("workload: never started")
		}
		st := s.workload.Status()
		return &st, nil
	}
	return nil, fmt.Errorf("workload: action %q is not start, stop or status", p.Action)
}

func (s *Server) stopWorkload() {
	s.mu.Lock()
	run := s.workload
	s.mu.Unlock()
	if run != nil {
		run.Stop()
	}
}

// Check runs the oracle over the secondary image of the last workload.
//
// A workload that wrote through a z/OS host is also held to the lost-write
// rule (workload.CheckAcked) for each chain the host swapped (every volume
// of the chain is on its H2 volume now): the application writes on H2
// then, so H2 must hold every write it was told is done. A chain the host
// did not swap still writes on H1, and H2 is a frozen or mirrored image
// that only the prefix rule judges.
func (s *Server) Check() (*workload.Report, *workload.Status, error) {
	s.mu.Lock()
	run, layout, via := s.workload, s.layout, s.via
	s.mu.Unlock()
	if run == nil {
		return nil, nil, errors.New("check: no workload has run: nothing to check")
	}
	// What the application was told before the image is read: every write
	// acknowledged by now must be in it.
	var acked []uint64
	if via != nil {
		acked = make([]uint64, layout.Chains())
		st := run.Status()
		swapped := 0
		for c := range layout.Chains() {
			if chainSwapped(via, layout.Chain(c)) {
				acked[c] = st.Acked[c]
				swapped++
			}
		}
		if swapped == 0 {
			acked = nil
		}
	}
	snap, err := s.fabric.Snapshot(layout.Targets())
	if err != nil {
		return nil, nil, err
	}
	img, err := workload.Capture(snap, layout)
	if err != nil {
		return nil, nil, err
	}
	var rep workload.Report
	if acked == nil {
		rep = workload.Check(layout, img)
	} else if rep, err = workload.CheckAcked(layout, img, acked); err != nil {
		return nil, nil, err
	}
	st := run.Status()
	return &rep, &st, nil
}

// chainSwapped: the host's I/O to every volume of the chain goes to the
// chain's H2 volume.
func chainSwapped(h *emu.Host, chain []hal.VolumePair) bool {
	for _, vp := range chain {
		if h.Device(vp.Source) != vp.Target {
			return false
		}
	}
	return len(chain) > 0
}

// workloadHost is the z/OS host a workload writes through; it must have
// every system of the layout online, or the writes to the others would
// fail for as long as the workload runs.
func (s *Server) workloadHost(name string, layout *workload.Layout) (*emu.Host, error) {
	h := s.zos[name]
	if h == nil {
		return nil, fmt.Errorf("workload: --via-host %q: the lab file defines no such z/OS host", name)
	}
	for _, vol := range slices.Concat(layout.Sources(), layout.Targets()) {
		if _, ok := h.online[vol.Serial]; !ok {
			return nil, fmt.Errorf("workload: --via-host %s: the host does not have %s online (the workload writes to it, or swaps to it)", name, vol.Serial)
		}
	}
	return h.io, nil
}

// viaHostName names the z/OS host the last workload writes through.
func (s *Server) viaHostName() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.via == nil {
		return ""
	}
	return s.via.Name()
}

// FetchCommands reads every command record after the sequence number
// after from a lab's control socket, a page at a time, and the number of
// records after it that the lab's bounded log no longer held.
func FetchCommands(ctx context.Context, socket string, after uint64) (recs []emu.CommandRecord, dropped uint64, err error) {
	for {
		resp, callErr := Call(ctx, socket, Request{Op: "commands", Commands: &CommandsParam{After: after}})
		if callErr != nil {
			return recs, dropped, callErr
		}
		recs = append(recs, resp.Commands...)
		dropped += resp.Dropped
		if !resp.More || len(resp.Commands) == 0 {
			return recs, dropped, nil
		}
		after = resp.Commands[len(resp.Commands)-1].Seq
	}
}

// Call sends one request to a lab's control socket.
func Call(ctx context.Context, socket string, req Request) (*Response, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("lab control %s: %w (is lockstep-lab run going?)", socket, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return nil, err
	}
	var resp Response
	if err := json.NewDecoder(io.LimitReader(conn, 16<<20)).Decode(&resp); err != nil {
		return nil, fmt.Errorf("lab control: bad answer: %w", err)
	}
	if !resp.OK {
		return &resp, errors.New(resp.Error)
	}
	return &resp, nil
}
