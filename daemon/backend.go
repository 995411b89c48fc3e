package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/lockstep-io/lockstep/daemon/config"
	"github.com/lockstep-io/lockstep/daemon/control"
	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/firewall"
	"github.com/lockstep-io/lockstep/daemon/notify"
	"github.com/lockstep-io/lockstep/daemon/registry"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/ha"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/secretfile"
	"github.com/lockstep-io/lockstep/persist"
)

var _ control.Backend = (*Server)(nil)

// errNotActing refuses a change on a server that does not act.
func (s *Server) errNotActing() error {
	st := s.ha.state()
	return fmt.Errorf("%w: this server is %s (HA state %s, epoch %d) and issues nothing: run the command on the active server",
		api.ErrRefused, st.Role, st.HAState(), st.Epoch)
}

// actingPeriod returns the duties of the current period, or the refusal
// for a change when the server does not act or cannot record the change
// (its journal cannot write: journalWritable).
func (s *Server) actingPeriod() (*duties, error) {
	if d := s.acting.current(); d != nil {
		if err := s.journalWritable(); err != nil {
			return nil, err
		}
		return d, nil
	}
	return nil, s.errNotActing()
}

func (s *Server) Status(ctx context.Context) (api.StatusDoc, error) {
	st := s.ha.state()
	doc := api.StatusDoc{Server: s.cfg.Load().Server.Name, Version: s.opt.Version, Role: st.Role.String(),
		HAState: st.HAState(), Epoch: s.registry().Epoch(), Heartbeat: s.registry().Heartbeat(),
		Journal: journalDoc(s.store.WriteHealth()), Degraded: s.acting.current().degradations()}
	doc.Sessions = api.SessionCounts(session.Count(s.db().Sessions()))
	for _, st := range s.storageDocs() {
		doc.Storage.Total++
		if st.Reachable {
			doc.Storage.Reachable++
		}
	}
	return doc, nil
}

func (s *Server) storageDocs() []api.StorageDoc {
	var out []api.StorageDoc
	for _, serial := range s.registry().Serials() {
		out = append(out, s.storageDoc(serial))
	}
	return out
}

func (s *Server) storageDoc(serial hal.Serial) api.StorageDoc {
	doc := api.StorageDoc{Serial: serial, Sessions: []string{}}
	d, running := s.drivers.get(serial)
	if running {
		doc.Via = d.via()
	}
	for _, c := range s.registry().Connections(serial) {
		cd := api.ConnectionDoc{Name: c.Name, Kind: c.Kind, Addresses: c.Addresses, HMC: c.HMC, ZOS: c.ZOS,
			Sysplex: c.Sysplex, Heartbeat: c.CarriesHeartbeat(), State: "unusable",
			Detail: s.drivers.unusableReason(c)}
		if cd.Detail == "" {
			cd.Detail = "not opened on this server"
		}
		if p, ok := d.partFor(c); running && ok {
			cd.State, cd.Detail = "connecting", ""
			if via := p.Via(); via != "" {
				cd.State, cd.Detail = "connected", via
				doc.Reachable = true
				doc.Heartbeat = doc.Heartbeat || c.CarriesHeartbeat()
			}
		}
		doc.Connections = append(doc.Connections, cd)
	}
	for _, se := range s.db().Sessions() {
		if slices.Contains(se.Serials(), serial) {
			doc.Sessions = append(doc.Sessions, se.Name)
		}
	}
	return doc
}

func (s *Server) StorageList(ctx context.Context) ([]api.StorageDoc, error) {
	return s.storageDocs(), nil
}

func (s *Server) StorageShow(ctx context.Context, serial hal.Serial) (api.StorageDoc, error) {
	if s.registry().Connections(serial) == nil {
		return api.StorageDoc{}, fmt.Errorf("%w: storage system %s", api.ErrNotFound, serial)
	}
	return s.storageDoc(serial), nil
}

func (s *Server) SessionList(ctx context.Context) ([]api.SessionDoc, error) {
	out := []api.SessionDoc{}
	for _, se := range s.db().Sessions() {
		out = append(out, control.NewSessionDoc(se))
	}
	return out, nil
}

func (s *Server) SessionShow(ctx context.Context, name string) (api.SessionDoc, error) {
	se, ok := s.db().Session(name)
	if !ok {
		return api.SessionDoc{}, fmt.Errorf("%w: session %s", api.ErrNotFound, name)
	}
	return control.NewSessionDoc(se), nil
}

func (s *Server) HeartbeatShow(ctx context.Context) (api.HeartbeatDoc, error) {
	doc := api.HeartbeatDoc{Enabled: s.registry().Heartbeat(), Interval: api.Duration(s.cfg.Load().Heartbeat.Interval),
		Groups: []api.HeartbeatGroupDoc{}, Warnings: s.registry().HeartbeatWarnings()}
	if w := heartbeatSkipsWarning(s.hyperSwapSessions()); w != "" && doc.Enabled {
		doc.Warnings = append(doc.Warnings, w)
	}
	d := s.acting.current()
	if d == nil {
		return doc, nil // no core runs on a server that does not act
	}
	groups, err := d.core.Status(ctx)
	if err != nil {
		return doc, err
	}
	for _, g := range groups {
		doc.Groups = append(doc.Groups, control.NewHeartbeatGroupDoc(g))
	}
	return doc, nil
}

func (s *Server) BackupList(ctx context.Context) ([]api.BackupDoc, error) {
	list, err := persist.ListBackups(s.cfg.Load().Server.StateDir)
	if err != nil {
		return nil, err
	}
	out := []api.BackupDoc{}
	for _, b := range list {
		out = append(out, backupDoc(b))
	}
	return out, nil
}

func backupDoc(b persist.BackupInfo) api.BackupDoc {
	return api.BackupDoc{Name: filepath.Base(b.Path), Created: b.Created, Size: b.Size,
		Version: fmt.Sprint(b.Version), Epoch: hal.Epoch(b.Epoch), LastIndex: b.LastIndex}
}

func (s *Server) FirewallHints(ctx context.Context, format api.FirewallFormat) (api.FirewallDoc, error) {
	var eps []firewall.Endpoint
	for _, serial := range s.registry().Serials() {
		for _, c := range s.registry().Connections(serial) {
			for _, a := range c.Addresses {
				eps = append(eps, firewall.Endpoint{Serial: string(serial), Addr: a})
			}
		}
	}
	f, err := firewall.ParseFormat(string(format))
	if err != nil {
		return api.FirewallDoc{}, fmt.Errorf("%w: %w", api.ErrInvalid, err)
	}
	rs, err := firewall.Hints{Config: s.cfg.Load()}.Rules(eps, s.ha.state().Peer.Addr)
	if err != nil {
		return api.FirewallDoc{}, err
	}
	var b strings.Builder
	if err := rs.Render(&b, f); err != nil {
		return api.FirewallDoc{}, err
	}
	return api.FirewallDoc{Format: format, Rules: b.String(), Hints: []api.FirewallHintDoc{}}, nil
}

func (s *Server) HAStatus(ctx context.Context) (api.HADoc, error) {
	cfg := s.cfg.Load()
	v := s.acting.selfView()
	st := v.st
	doc := api.HADoc{At: v.at, Edition: string(cfg.Server.Edition), Role: st.Role.String(), State: st.HAState(),
		Epoch: st.Epoch, Acting: v.acting, LastIndex: s.store.LastIndex(),
		Partner: st.Peer.String(), ReconnectAttempts: st.Reconnect.Attempts, ReconnectLimit: cfg.HA.ReconnectAttempts,
		NextReconnect: st.Reconnect.Next}
	doc.PartnerRole = s.ha.partnerRoleOf(st.Peer)
	doc.Readiness = s.drivers.readiness(s.registry())
	doc.Unreachable = serials(doc.Readiness)
	if st.Conn == ha.SyncPending && st.Role != ha.Standalone {
		doc.SyncPhase = st.Phase.String()
	}
	if s.ha.avail == nil {
		doc.Listen = cfg.HA.Listen.String()
	} else {
		doc.Unavailable = s.ha.avail.Error()
	}
	if lag, ok := s.ha.lag(); ok {
		doc.StandbyLag = &lag
	}
	return doc, nil
}

func (s *Server) proposeRegistry(ctx context.Context, r registry.Record) error {
	r.Version, r.At = registry.RecordVersion, s.clock.Now()
	err := s.store.ProposeRegistry(ctx, r)
	if err == nil {
		s.ha.waitReplicated(ctx, s.store.LastIndex())
	}
	switch {
	case errors.Is(err, registry.ErrExists):
		return fmt.Errorf("%w: %w", api.ErrRefused, err)
	case errors.Is(err, registry.ErrNotFound):
		return fmt.Errorf("%w: %w", api.ErrNotFound, err)
	}
	return err
}

func (s *Server) StorageAdd(ctx context.Context, spec api.StorageSpec) ([]string, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if s.roots == nil {
		return nil, fmt.Errorf("%w: %w: set it in [storage] of the configuration to the PEM file of the CA that signs "+
			"the storage systems' certificates, and restart lockstepd", api.ErrRefused, ErrNoStorageCA)
	}
	// The password file is read by this daemon, as itself, on every
	// (re)connection: it must be there and be a secret now, not fail
	// later on a connection left "connecting" (issue 12 §3). Checked
	// before anything is journaled.
	for _, c := range spec.Connections {
		if c.PasswordFile == "" {
			continue
		}
		if err := secretfile.Check(c.PasswordFile); err != nil {
			return nil, fmt.Errorf("%w: storage system %s, connection %q: %w", api.ErrRefused, spec.Serial, c.Name, err)
		}
	}
	d, err := s.actingPeriod()
	if err != nil {
		return nil, err
	}
	for _, c := range spec.Connections {
		if err := s.proposeRegistry(ctx, registry.Record{Kind: registry.KindStorageAdded, Serial: spec.Serial,
			Connection: &registry.Connection{Name: c.Name, Kind: c.Kind, Addresses: c.Addresses,
				Sysplex: c.Sysplex, User: c.User, PasswordFile: c.PasswordFile}}); err != nil {
			return nil, err
		}
	}
	// A new system is connected; a known one is opened again from all
	// its connections (composed, direct first).
	warnings := s.reconcileDrivers(ctx, d)
	if _, running := s.drivers.get(spec.Serial); !running {
		if why := s.drivers.reach.failed(spec.Serial); why != "" {
			warnings = append(warnings, why)
		}
	}
	s.sources.refresh()
	if s.registry().Heartbeat() {
		warnings = append(warnings, s.registry().HeartbeatWarnings()...)
	}
	s.emit(notify.ConfigChanged, fmt.Sprintf("storage system %s added", spec.Serial), "serial", string(spec.Serial))
	return orEmpty(warnings), nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// StorageRemove removes a connection or a whole storage system. The last
// TCP/IP connection of a system that sessions use cannot go while the
// heartbeat is on without force; with force, the sessions are suspended
// first (removeLastIP).
func (s *Server) StorageRemove(ctx context.Context, serial hal.Serial, connection string, force bool) ([]string, error) {
	d, err := s.actingPeriod()
	if err != nil {
		return nil, err
	}
	rm, err := s.registry().Remove(serial, connection, s.sessionsUsing(), force)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return nil, fmt.Errorf("%w: %w", api.ErrNotFound, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", api.ErrRefused, err)
	}
	warnings := append(rm.Warnings, s.suspendForRemoval(ctx, d, rm)...)
	if err := s.proposeRegistry(ctx, rm.Record); err != nil {
		return nil, removalNotRecorded(rm, err)
	}
	s.sources.refresh()
	// The driver goes with the connections it was opened from: opened
	// again from those left, if any.
	warnings = append(warnings, s.reconcileDrivers(ctx, d)...)
	return orEmpty(warnings), nil
}

func (s *Server) SessionCreate(ctx context.Context, name string, t session.Type, cg string, p session.Policy) error {
	d, err := s.actingPeriod()
	if err != nil {
		return err
	}
	if err := d.mgr.Create(ctx, name, t, cg, p); err != nil {
		return err
	}
	if t.HyperSwap() && s.registry().Heartbeat() {
		s.heartbeatSkips([]string{name})
	}
	return nil
}

// hyperSwapSessions names the HyperSwap sessions, in any state: the
// heartbeat covers none of them.
func (s *Server) hyperSwapSessions() []string {
	var out []string
	for _, se := range s.db().Sessions() {
		if se.Type.HyperSwap() {
			out = append(out, se.Name)
		}
	}
	return out
}

// heartbeatSkipsWarning is the warning of the heartbeat on beside the
// HyperSwap sessions names ("" for none).
func heartbeatSkipsWarning(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return fmt.Sprintf("the heartbeat does not cover the %s sessions %s: their z/OS hosts protect them, "+
		"and no heartbeat is sent for their LSS pairs", session.MetroMirrorHyperSwap.Label(), strings.Join(names, ", "))
}

// heartbeatSkips tells the log, the journal and the admin API that the
// heartbeat (on) leaves the named HyperSwap sessions out, and returns the
// warning for the admin.
func (s *Server) heartbeatSkips(names []string) string {
	w := heartbeatSkipsWarning(names)
	if w != "" {
		s.emit(notify.HeartbeatSkipsHyperSwap, w, "sessions", strings.Join(names, ","))
	}
	return w
}

func (s *Server) SessionAddCopySet(ctx context.Context, name string, cs session.CopySet) error {
	d, err := s.actingPeriod()
	if err != nil {
		return err
	}
	for _, v := range []hal.VolumeRef{cs.H1, cs.H2} {
		if s.registry().Connections(v.Serial) == nil {
			return fmt.Errorf("%w: storage system %s is not defined (lockstepctl storage add)", api.ErrRefused, v.Serial)
		}
	}
	return d.mgr.AddCopySet(ctx, name, cs)
}

func (s *Server) SessionCommand(ctx context.Context, name string, cmd session.Command) (api.SessionDoc, error) {
	d, err := s.actingPeriod()
	if err != nil {
		return api.SessionDoc{}, err
	}
	err = d.mgr.Command(ctx, name, cmd)
	defer s.updateStatus()
	if errors.Is(err, session.ErrNotAllowed) {
		return api.SessionDoc{}, err
	}
	if errors.Is(err, session.ErrVetoed) {
		// Refused before anything was recorded or sent: nothing happened.
		return api.SessionDoc{}, fmt.Errorf("%w: %w", api.ErrRefused, err)
	}
	se, ok := s.db().Session(name)
	if !ok {
		return api.SessionDoc{}, fmt.Errorf("%w: session %s", api.ErrNotFound, name)
	}
	doc := control.NewSessionDoc(se)
	if se.Type.HyperSwap() && (cmd == session.CmdStartH1H2 || cmd == session.CmdStartH2H1) && s.registry().Heartbeat() {
		doc.Warnings = append(doc.Warnings, s.heartbeatSkips([]string{name}))
	}
	s.emit(notify.SessionStateChanged, fmt.Sprintf("session %s: %s -> %s (%s)", name, cmd, se.State, se.Status),
		"session", name, "state", se.State.String(), "command", string(cmd))
	return doc, err
}

func (s *Server) SessionRemove(ctx context.Context, name string) error {
	d, err := s.actingPeriod()
	if err != nil {
		return err
	}
	if err := d.mgr.Remove(ctx, name); err != nil {
		return err
	}
	return d.engine.SyncGroups(ctx)
}

func (s *Server) HeartbeatSet(ctx context.Context, on bool) ([]string, error) {
	d, err := s.actingPeriod()
	if err != nil {
		return nil, err
	}
	if err := d.core.SetHeartbeat(ctx, on); err != nil {
		return nil, fmt.Errorf("%w: %w", api.ErrRefused, err)
	}
	if err := s.proposeRegistry(ctx, registry.Record{Kind: registry.KindHeartbeatSet, On: on}); err != nil {
		return nil, err
	}
	s.emit(notify.HeartbeatSwitched, "heartbeat "+map[bool]string{true: "on", false: "off"}[on], "on", fmt.Sprint(on))
	s.updateStatus()
	if on {
		db := s.registry()
		// One notification per storage system the heartbeat cannot reach,
		// naming it (the NMS gets its serial in lockstepStorageSerial).
		for _, serial := range db.Serials() {
			if !slices.ContainsFunc(db.Connections(serial), registry.Connection.CarriesHeartbeat) {
				s.emit(notify.HeartbeatNoIP, fmt.Sprintf("%s is reachable only through z/OS: the heartbeat does not work without an IP connection", serial),
					"serial", string(serial))
			}
		}
		warnings := db.HeartbeatWarnings()
		if w := s.heartbeatSkips(s.hyperSwapSessions()); w != "" {
			warnings = append(warnings, w)
		}
		return warnings, nil
	}
	return []string{}, nil
}

func (s *Server) BackupCreate(ctx context.Context) (api.BackupDoc, error) {
	b, err := s.store.CreateBackup(ctx, uint64(s.registry().Epoch()))
	if err != nil {
		return api.BackupDoc{}, err
	}
	s.emit(notify.BackupCreated, "backup "+filepath.Base(b.Path)+" created")
	return backupDoc(b), nil
}

// BackupRestore restores a backup in place: on a standalone server, and
// on a standby that is not linked (Disconnected or Disconnected
// Consistent, or a disconnected standby after a demotion), which keeps
// its role and does not act. The HA loop decides and runs it, so that no
// link comes up meanwhile; an active, and a standby while synchronized or
// synchronizing, are refused.
func (s *Server) BackupRestore(ctx context.Context, name string) error {
	if name != filepath.Base(name) || name == "" || name == "." || name == ".." {
		return fmt.Errorf("%w: backup name %q", api.ErrInvalid, name)
	}
	path := filepath.Join(s.cfg.Load().Server.StateDir, "backups", name)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: backup %s (lockstepctl backup list shows them)", api.ErrNotFound, name)
	}
	switch err := s.ha.loop.Do(ctx, ha.Restore{Backup: path}); {
	case err == nil:
	case errors.Is(err, ha.ErrWrongRole), errors.Is(err, ha.ErrSynchronized), errors.Is(err, ha.ErrSyncInProgress),
		errors.Is(err, ha.ErrConnecting), errors.Is(err, ha.ErrLoopStopped):
		return fmt.Errorf("%w: backup restore: %v", api.ErrRefused, err)
	default:
		return fmt.Errorf("backup restore %s: %w", name, err)
	}
	st := s.ha.state()
	s.emit(notify.BackupRestored, fmt.Sprintf("state restored from backup %s (%s, %s)", name, st.Role, st.HAState()))
	if d := s.acting.current(); d != nil {
		return d.engine.SyncGroups(ctx)
	}
	return nil
}

// haErr gives the HA refusals the admin API's error kinds.
func haErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, config.ErrHAUnavailable), errors.Is(err, ha.ErrBasicEdition):
		return fmt.Errorf("%w: %w", api.ErrUnavailable, err)
	case errors.Is(err, ha.ErrBadAddress), errors.Is(err, ha.ErrPartnerIdentity):
		return fmt.Errorf("%w: %w", api.ErrInvalid, err)
	}
	return fmt.Errorf("%w: %w", api.ErrRefused, err)
}

func (s *Server) HASetStandby(ctx context.Context, addr, name string) error {
	return haErr(s.ha.do(ctx, ha.SetStandby{Addr: addr, Name: name}))
}

func (s *Server) HASetAsStandby(ctx context.Context, addr, name string) error {
	return haErr(s.ha.do(ctx, ha.SetAsStandby{Addr: addr, Name: name}))
}

// HATakeover raises the epoch and makes this standby the active; it
// answers once every reachable storage system has seen the new epoch,
// with the ones that have not (the takeover readiness).
func (s *Server) HATakeover(ctx context.Context) (api.TakeoverDoc, error) {
	if err := s.ha.do(ctx, ha.Takeover{}); err != nil {
		return api.TakeoverDoc{}, haErr(err)
	}
	doc := api.TakeoverDoc{Epoch: s.ha.state().Epoch, Unreachable: []hal.Serial{}, Readiness: []api.ReadinessDoc{},
		Warnings: []string{}}
	d := s.acting.current()
	if d == nil {
		return doc, fmt.Errorf("%w: took over, then stopped acting at once (a higher epoch exists?): see ha status",
			api.ErrRefused)
	}
	select {
	case <-d.fenced:
	case <-ctx.Done():
		return doc, ctx.Err()
	}
	if d.superseded.Load() {
		return doc, fmt.Errorf("%w: a storage system knows an epoch above %d: another server took over; see ha status",
			api.ErrRefused, doc.Epoch)
	}
	doc.Readiness = append(doc.Readiness, d.unreachable...)
	doc.Unreachable = serials(doc.Readiness)
	for _, r := range d.unreachable {
		doc.Warnings = append(doc.Warnings, fmt.Sprintf("%s is not reachable (%s): this server cannot protect its sessions "+
			"until it can reach it, and a former active may still reach it", r.Serial, r.Reason))
	}
	return doc, nil
}

func (s *Server) HAReconnect(ctx context.Context) error {
	return haErr(s.ha.do(ctx, ha.ReconnectCommand{}))
}

func (s *Server) HARemoveStandby(ctx context.Context) error {
	return haErr(s.ha.do(ctx, ha.RemoveStandby{}))
}

func (s *Server) HARemoveActive(ctx context.Context) error {
	return haErr(s.ha.do(ctx, ha.RemoveActive{}))
}
