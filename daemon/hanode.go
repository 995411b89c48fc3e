package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"time"

	"github.com/lockstep-io/lockstep/daemon/config"
	"github.com/lockstep-io/lockstep/daemon/firewall"
	"github.com/lockstep-io/lockstep/daemon/notify"
	"github.com/lockstep-io/lockstep/daemon/registry"
	"github.com/lockstep-io/lockstep/daemon/state"
	"github.com/lockstep-io/lockstep/daemon/transitions"
	"github.com/lockstep-io/lockstep/ha"
	"github.com/lockstep-io/lockstep/ha/link"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/persist"
)

// relationshipFile holds the HA role, the partner (its address and the
// name its certificate must carry), the highest epoch seen and the HA
// state a restart resumes from, in the state directory but outside the journal: the journal is
// the active's (a standby's is replaced by every synchronization), the
// relationship is this server's own.
const relationshipFile = "ha-relationship.json"

// haNode is the server's HA part: the ha.Loop, its Effects, the peer
// listener and the links (package link). It is given what it uses: the
// configuration, the store, the clock, the emitter, and the acting
// periods (which it starts and stops, and whose view its commits set).
type haNode struct {
	cfg    func() *config.Config
	store  *state.Store
	clock  clock.Clock
	em     *emitter
	acting *periods
	// reconcile opens and closes the drivers of a server that does not
	// act; status brings STATUS= up to date.
	reconcile func()
	status    func()
	// view is this server's connection status to its HMC endpoints, sent
	// to the partner (link.View).
	view func() link.View

	loop   *ha.Loop
	avail  error // why HA cannot be used (config.HAAvailable); nil: it can
	opts   link.Options
	srvLog *slog.Logger // the server's, for the loop and the links
	log    *slog.Logger // component=ha

	// ctx is Run's: the loop carries out its actions through Effects,
	// which take no context, so the node keeps the one its whole life
	// runs in. Every goroutine an action starts is in wg, which Run
	// waits for after ending ctx.
	ctx context.Context
	wg  sync.WaitGroup

	mu      sync.Mutex
	nextID  ha.LinkID
	links   map[ha.LinkID]*peerLink
	stopped bool   // Run is ending: a link that comes up now is closed
	backup  string // the backup taken before the synchronization under way
	// partner is the partner's role as last heard: announced in its
	// Hello, then the role the pair gives it while linked. It is kept here
	// beside the relationship, not in ha.State: the loop persists the
	// relationship whenever it changes, and the partner's role is the
	// partner's to know, not ours to persist.
	partner partnerRole
}

// partnerRole is what a server last heard of its partner's role.
type partnerRole struct {
	name string // the partner's server name ("": never heard)
	role ha.Role
}

// haDeps are what the HA part is given.
type haDeps struct {
	cfg       func() *config.Config
	store     *state.Store
	clock     clock.Clock
	log       *slog.Logger
	em        *emitter
	acting    *periods
	reconcile func()
	status    func()
	view      func() link.View
}

// peerLink is one link to the partner and what serves it.
type peerLink struct {
	conn     *link.Conn
	sender   *link.Sender   // as the active
	receiver *link.Receiver // as the standby
}

var _ ha.Effects = (*haNode)(nil)

// relationshipDoc is relationshipFile's content.
type relationshipDoc struct {
	Role     string `json:"role"`
	PeerAddr string `json:"peer_addr,omitempty"`
	PeerName string `json:"peer_name,omitempty"`
	// HAState is the HA state a restart resumes from (ha.Relationship's
	// Conn), as ha status shows it; absent (a file of an earlier
	// version): "Unknown", whose next synchronization is a full one.
	HAState string `json:"ha_state,omitempty"`
	// SeenEpoch is the highest epoch this server has heard of (absent in
	// files of earlier versions: the journal's epoch then).
	SeenEpoch uint64 `json:"seen_epoch,omitempty"`
}

func newHANode(d haDeps) (*haNode, error) {
	cfg := d.cfg()
	n := &haNode{cfg: d.cfg, store: d.store, clock: d.clock, em: d.em, acting: d.acting, reconcile: d.reconcile,
		status: d.status, view: d.view, srvLog: d.log, avail: cfg.HAAvailable(), log: d.log.With("component", "ha"),
		links: map[ha.LinkID]*peerLink{}}
	rel, err := loadRelationship(cfg.Server.StateDir)
	if err != nil {
		return nil, err
	}
	if n.avail == nil {
		creds, err := link.LoadCredentials(cfg.HA.TLS.CertFile, cfg.HA.TLS.KeyFile, cfg.HA.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("daemon: HA credentials: %w", err)
		}
		n.opts = link.Options{Credentials: creds, Hello: n.hello, Clock: d.clock, Logger: d.log,
			OnRefused: func(remote net.Addr, err error) {
				n.log.Warn("HA peer connection refused", "remote", remote.String(), "err", err)
			}}
		if p := cfg.HA.SourcePorts; p != nil {
			n.opts.SourcePorts = link.PortRange{First: p.First, Last: p.Last}
		}
	} else if rel.Role != ha.Standalone {
		// The configuration lost what HA needs: keep the role (a standby
		// must not start acting because a TLS file went missing), but no
		// link can come up.
		n.log.Error("this server has an HA relationship, but HA is not available: no link to the partner",
			"role", rel.Role.String(), "err", n.avail)
	}
	epoch := d.store.Registry().Epoch()
	n.loop = n.newLoop(ha.State{Role: rel.Role, Peer: rel.Peer, Epoch: epoch, Conn: rel.Conn, Seen: max(epoch, rel.Seen)}, n)
	return n, nil
}

// newLoop is the server's HA loop from initial, carrying out its actions
// with fx (n; a test interposes). The loop's commits are the server's
// view of itself (commitView).
func (n *haNode) newLoop(initial ha.State, fx ha.Effects) *ha.Loop {
	cfg := n.cfg()
	hcfg := ha.Config{Basic: cfg.Server.Edition == config.EditionBasic,
		ReconnectInterval: cfg.HA.ReconnectInterval, ReconnectAttempts: cfg.HA.ReconnectAttempts,
		PartnerName: cfg.HA.PartnerName, PartnerFingerprint: cfg.HA.PartnerFingerprint}
	n.acting.setView(initial)
	return ha.NewLoop(initial, hcfg, fx, ha.LoopOptions{Clock: n.clock, Logger: n.srvLog, OnCommit: n.acting.commitView})
}

func (n *haNode) String() string         { return "ha" }
func (n *haNode) Ready() <-chan struct{} { return n.loop.Ready() }

// Run listens for the partner (when HA is available) and runs the loop;
// it returns once every goroutine it or the loop's actions started has
// ended.
func (n *haNode) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n.ctx = ctx
	var l *link.Listener
	if n.avail == nil {
		var err error
		if l, err = link.Listen(n.cfg().HA.Listen.String(), n.opts); err != nil {
			return fmt.Errorf("HA listener: %w", err)
		}
		n.wg.Go(func() { n.accept(ctx, l) })
	}
	n.wg.Go(func() { n.watchStorage(ctx) })
	err := n.loop.Run(ctx)
	cancel()
	n.mu.Lock()
	links := n.links
	n.links = map[ha.LinkID]*peerLink{}
	n.stopped = true
	n.mu.Unlock()
	for _, pl := range links {
		pl.conn.Close(errors.New("lockstepd stopping"))
	}
	if l != nil {
		l.Close()
	}
	n.wg.Wait()
	return err
}

func (n *haNode) accept(ctx context.Context, l *link.Listener) {
	for {
		c, err := l.Accept(ctx)
		if err != nil {
			return
		}
		n.heard(c.PeerInfo())
		n.loop.Post(ha.LinkUp{Link: n.add(c), Peer: c.PeerInfo()})
	}
}

// storageWatch is how often a server that does not act connects its
// drivers to the storage systems its journal names: a standby learns of
// storage added on the active from the records it receives, and keeps a
// connection to each (no commands) so that ha status shows its takeover
// readiness before a takeover is needed.
const storageWatch = 2 * time.Second

func (n *haNode) watchStorage(ctx context.Context) {
	t := n.clock.NewTicker(storageWatch)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			if n.acting.current() == nil {
				n.reconcile()
			}
		}
	}
}

// state is the loop's state, or the initial one before it runs.
func (n *haNode) state() ha.State { return n.loop.State() }

// hello is this server's Hello, asked at each connection.
func (n *haNode) hello() link.Hello {
	st := n.loop.State()
	cfg := n.cfg()
	return link.Hello{Name: cfg.Server.Name, Listen: cfg.HA.HAAddress(),
		Role: st.Role, Epoch: st.Epoch, LastIndex: n.store.LastIndex()}
}

// add registers a link and reports its end to the loop; once Run is
// ending, the link is closed at once.
func (n *haNode) add(c *link.Conn) ha.LinkID {
	n.mu.Lock()
	n.nextID++
	id := n.nextID
	if n.stopped {
		n.mu.Unlock()
		c.Close(errors.New("lockstepd stopping"))
		return id
	}
	n.links[id] = &peerLink{conn: c}
	n.mu.Unlock()
	n.wg.Go(func() { n.sendViews(c) })
	n.wg.Go(func() {
		<-c.Done()
		n.mu.Lock()
		delete(n.links, id)
		n.mu.Unlock()
		n.loop.Post(ha.LinkDown{Link: id, Err: c.Err()})
	})
	return id
}

// sendViews sends this server's view of its HMC endpoints to the peer
// at once, then whenever it changed, checked every storageWatch, until
// the link ends.
func (n *haNode) sendViews(c *link.Conn) {
	if n.view == nil {
		return
	}
	t := n.clock.NewTicker(storageWatch)
	defer t.Stop()
	var last *link.View
	for {
		if v := n.view(); last == nil || !reflect.DeepEqual(v, *last) {
			if err := c.Send(n.ctx, v); err != nil {
				return
			}
			last = &v
		}
		select {
		case <-c.Done():
			return
		case <-n.ctx.Done():
			return
		case <-t.C():
		}
	}
}

// partnerView is the partner's view of its HMC endpoints, or why this
// server has none: no partner, no link to it, or none received yet.
func (n *haNode) partnerView() (link.View, string) {
	st := n.loop.State()
	if st.Role == ha.Standalone {
		return link.View{}, "no HA partner: this server is standalone"
	}
	pl := n.link(st.Link)
	if st.Link == 0 || pl == nil {
		return link.View{}, fmt.Sprintf("not connected (HA state %s): the partner's view is unknown", st.Conn)
	}
	v, ok := pl.conn.PeerView()
	if !ok {
		return link.View{}, "connected, but the partner has not reported its view yet"
	}
	return v, ""
}

func (n *haNode) link(id ha.LinkID) *peerLink {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.links[id]
}

// higherEpoch tells the loop that a higher epoch exists (a storage system
// answered fenced).
func (n *haNode) higherEpoch(e hal.Epoch, from string) {
	n.loop.Post(ha.HigherEpochSeen{Epoch: e, From: from})
}

// do runs an administrator's HA command; HA must be available.
func (n *haNode) do(ctx context.Context, ev ha.Event) error {
	if n.avail != nil {
		return n.avail
	}
	return n.loop.Do(ctx, ev)
}

// waitReplicated returns once the standby has made every record up to
// index durable, while the pair is synchronized; at once otherwise. A
// link lost meanwhile answers too: the pair is then Disconnected
// Consistent, and the operator sees it.
func (n *haNode) waitReplicated(ctx context.Context, index uint64) {
	st := n.loop.State()
	if st.Role != ha.Active || st.Conn != ha.Synchronized {
		return
	}
	pl := n.link(st.Link)
	if pl == nil || pl.sender == nil {
		return
	}
	if err := pl.sender.WaitAcked(ctx, index); err != nil && !errors.Is(err, link.ErrLinkDown) && ctx.Err() == nil {
		n.log.Warn("waiting for the standby's acknowledgement", "index", index, "err", err)
	}
}

// lag is how many records the standby has not acknowledged yet, when
// this server is an active with a link serving.
func (n *haNode) lag() (lag uint64, ok bool) {
	st := n.loop.State()
	pl := n.link(st.Link)
	if st.Role != ha.Active || pl == nil || pl.sender == nil {
		return 0, false
	}
	last, acked := n.store.LastIndex(), pl.sender.Acked()
	if acked >= last {
		return 0, true
	}
	return last - acked, true
}

// Effects.

func (n *haNode) PersistEpoch(ctx context.Context, e hal.Epoch) error {
	return n.store.ProposeRegistry(ctx, registry.Record{Version: registry.RecordVersion,
		Kind: registry.KindEpochSet, Epoch: e, At: n.clock.Now()})
}

func (n *haNode) PersistRelationship(_ context.Context, r ha.Relationship) error {
	return saveRelationship(n.cfg().Server.StateDir, r)
}

// RestoreFrom restores a backup in place (backup restore), in the loop:
// no link can come up meanwhile.
func (n *haNode) RestoreFrom(ctx context.Context, path string) error {
	_, err := n.store.RestoreBackup(ctx, path)
	return err
}

func (n *haNode) Connect(addr string) {
	n.wg.Go(func() {
		cfg := n.cfg()
		// The link bounds its handshake itself (and says so with
		// ErrHandshakeTimeout); this bounds the TCP connect, longer, so
		// that the handshake's own timeout is the one reported.
		ctx, cancel := clock.WithTimeout(n.ctx, n.clock, 2*link.DefaultHandshakeTimeout)
		defer cancel()
		c, err := link.Dial(ctx, addr, n.opts)
		if err != nil {
			if errors.Is(err, link.ErrHandshakeTimeout) || errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
				hint := firewall.Hints{Config: cfg}.PeerTimeoutHint(addr, firewall.NFT)
				notify.Log(n.log, notify.ConnectTimeoutHint, "connection to the HA peer timed out; a firewall may drop it",
					"addr", addr, "rule", hint)
			}
			n.loop.Post(ha.ConnectFailed{Addr: addr, Err: err})
			return
		}
		n.heard(c.PeerInfo())
		n.loop.Post(ha.LinkUp{Link: n.add(c), Peer: c.PeerInfo(), Dialed: true})
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (n *haNode) Disconnect(id ha.LinkID, why error) {
	if pl := n.link(id); pl != nil {
		n.wg.Go(func() { pl.conn.Close(why) })
	}
}

func (n *haNode) NotifyEpoch(id ha.LinkID, e hal.Epoch) {
	if pl := n.link(id); pl != nil {
		// Bounded: the former active must hear it before the link is
		// closed, but a hung peer must not hold the loop.
		ctx, cancel := clock.WithTimeout(n.ctx, n.clock, time.Second)
		defer cancel()
		if err := pl.conn.Send(ctx, link.EpochNotice{Epoch: e}); err != nil {
			n.log.Warn("epoch notice not sent", "epoch", uint64(e), "err", err)
		}
	}
}

func (n *haNode) Serve(id ha.LinkID, role ha.Role) {
	n.mu.Lock()
	defer n.mu.Unlock()
	pl := n.links[id]
	if pl == nil {
		return
	}
	if role == ha.Active {
		pl.sender = link.NewSender(pl.conn, n.store.Journal(), link.SenderOptions{Link: id, Report: n.loop.Post, Clock: n.clock})
		n.wg.Go(func() { _ = pl.sender.Run(n.ctx) })
		return
	}
	pl.receiver = link.NewReceiver(pl.conn, link.StoreSink{Store: n.store}, link.ReceiverOptions{Link: id, Report: n.loop.Post})
	n.wg.Go(func() { _ = pl.receiver.Run(n.ctx) })
}

// takeBackup writes the backup a synchronization starts with; without
// it, no synchronization starts.
func (n *haNode) takeBackup(id ha.LinkID, auto bool) {
	n.wg.Go(func() {
		b, err := n.store.CreateBackup(n.ctx, uint64(n.store.Registry().Epoch()))
		if err != nil {
			n.loop.Post(ha.BackupFailed{Link: id, Err: err})
			return
		}
		n.mu.Lock()
		n.backup = b.Path
		n.mu.Unlock()
		kind := map[bool]string{false: "backup", true: "autobackup"}[auto]
		n.em.emit(notify.BackupCreated, kind+" "+filepath.Base(b.Path)+" taken before a synchronization")
		n.loop.Post(ha.BackupTaken{Link: id})
	})
}

func (n *haNode) TakeBackup(id ha.LinkID)     { n.takeBackup(id, false) }
func (n *haNode) TakeAutobackup(id ha.LinkID) { n.takeBackup(id, true) }

func (n *haNode) RequestSync(id ha.LinkID, full bool) {
	pl := n.link(id)
	if pl == nil || pl.receiver == nil {
		return
	}
	n.wg.Go(func() {
		if err := pl.receiver.RequestSync(n.ctx, full); err != nil {
			n.loop.Post(ha.SyncFailed{Link: id, Err: err})
		}
	})
}

func (n *haNode) SendSnapshot(id ha.LinkID) {
	if pl := n.link(id); pl != nil && pl.sender != nil {
		pl.sender.SendSnapshot()
	}
}

func (n *haNode) StartStream(id ha.LinkID) {
	if pl := n.link(id); pl != nil && pl.sender != nil {
		pl.sender.StartStream()
	}
}

func (n *haNode) RestoreBackup() {
	n.mu.Lock()
	path := n.backup
	n.mu.Unlock()
	n.wg.Go(func() {
		if path == "" {
			n.loop.Post(ha.RestoreFailed{Err: errors.New("no backup was taken before this synchronization")})
			return
		}
		if _, err := n.store.RestoreBackup(n.ctx, path); err != nil {
			n.loop.Post(ha.RestoreFailed{Err: err})
			return
		}
		n.em.emit(notify.BackupRestored, "synchronization failed midway: state restored from "+filepath.Base(path))
	})
}

// StartActiveDuties starts an acting period; a takeover needs nothing
// more than any period: every period fences storage before it acts, and
// the TookOver notice comes from the loop.
func (n *haNode) StartActiveDuties(e hal.Epoch, _ bool) { n.acting.start(e) }
func (n *haNode) StopActiveDuties()                     { n.acting.stop() }

// heard records the role a partner announced in its Hello.
func (n *haNode) heard(p ha.PeerInfo) {
	n.mu.Lock()
	n.partner = partnerRole{name: p.Name, role: p.Role}
	n.mu.Unlock()
}

// partnerRoleOf is the role last heard of peer ("" when nothing was heard
// of that server).
func (n *haNode) partnerRoleOf(peer ha.Peer) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.partner.name == "" || peer.Addr == "" && peer.Name == "" || peer.Name != "" && peer.Name != n.partner.name {
		return ""
	}
	return n.partner.role.String()
}

func (n *haNode) Emit(no ha.Notice) {
	// Linked, the pair gives the partner its role: the one ours is not
	// (a standalone that was dialed is a standby from the link on).
	// The partner linked is the one whose Hello was heard last.
	if c := no.To.Conn; c == ha.SyncPending || c == ha.Synchronized {
		if r, ok := map[ha.Role]ha.Role{ha.Active: ha.Standby, ha.Standby: ha.Active}[no.To.Role]; ok {
			n.mu.Lock()
			if n.partner.name != "" {
				n.partner.role = r
			}
			n.mu.Unlock()
		}
	}
	kv := []string{"from", no.From.String(), "to", no.To.String(), "epoch", fmt.Sprint(uint64(no.Epoch)),
		"role", no.To.Role.String(), "ha_state", no.To.HAState()}
	if no.Err != nil {
		kv = append(kv, "why", no.Err.Error())
	}
	n.em.track.Changed(transitions.Server, "", transitions.ServerState(no.From.Role.String(), no.From.HAState()),
		transitions.ServerState(no.To.Role.String(), no.To.HAState()))
	switch no.Kind {
	case ha.StateChanged:
		n.em.emit(notify.HAStateChanged, "HA state "+no.From.String()+" -> "+no.To.String(), kv...)
	case ha.TookOver:
		n.em.emit(notify.Takeover, fmt.Sprintf("took over as active with epoch %d", no.Epoch), kv...)
	case ha.Demoted:
		n.em.emit(notify.Demoted, fmt.Sprintf("a higher epoch exists: stopped acting (epoch %d)", no.Epoch), kv...)
	case ha.ReconnectStopped:
		n.em.emit(notify.HAStateChanged, "automatic reconnection to the partner stopped: run lockstepctl ha reconnect", kv...)
	case ha.SyncAborted:
		n.em.emit(notify.HAStateChanged, "synchronization with the partner aborted", kv...)
	}
	n.status()
}

// loadRelationship reads the persisted relationship (standalone when
// there is none).
func loadRelationship(dir string) (ha.Relationship, error) {
	b, err := os.ReadFile(filepath.Join(dir, relationshipFile))
	if errors.Is(err, os.ErrNotExist) {
		return ha.Relationship{}, nil
	}
	if err != nil {
		return ha.Relationship{}, fmt.Errorf("daemon: %w", err)
	}
	var doc relationshipDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return ha.Relationship{}, fmt.Errorf("daemon: %s is damaged (%v): restore it, or remove it to start standalone",
			filepath.Join(dir, relationshipFile), err)
	}
	conn := ha.Unknown
	if doc.HAState != "" {
		var ok bool
		if conn, ok = parseConnState(doc.HAState); !ok {
			return ha.Relationship{}, fmt.Errorf("daemon: %s: unknown HA state %q", filepath.Join(dir, relationshipFile), doc.HAState)
		}
	}
	for r := ha.Role(0); r.Valid(); r++ {
		if r.String() == doc.Role {
			return ha.Relationship{Role: r, Peer: ha.Peer{Addr: doc.PeerAddr, Name: doc.PeerName}, Conn: conn,
				Seen: hal.Epoch(doc.SeenEpoch)}, nil
		}
	}
	return ha.Relationship{}, fmt.Errorf("daemon: %s: unknown role %q", filepath.Join(dir, relationshipFile), doc.Role)
}

// parseConnState reads an HA state by its name.
func parseConnState(name string) (ha.ConnState, bool) {
	for c := ha.Unknown; c <= ha.Disconnected; c++ {
		if c.String() == name {
			return c, true
		}
	}
	return 0, false
}

// saveRelationship writes it atomically and durably.
func saveRelationship(dir string, r ha.Relationship) error {
	doc := relationshipDoc{Role: r.Role.String(), PeerAddr: r.Peer.Addr, PeerName: r.Peer.Name,
		SeenEpoch: uint64(r.Seen)}
	if r.Conn != ha.Unknown {
		doc.HAState = r.Conn.String()
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	if err := persist.WriteFileAtomic(dir, relationshipFile, append(b, '\n')); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	return nil
}
