package link

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/ha"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/persist"
)

// This file runs two HA state machines (ha.Loop) over real links: what
// the daemon will wire, in miniature. A node's Effects dial and accept
// links, serve them with a Sender or a Receiver, and report back with
// Loop.Post; its journal is a persist.Journal that a full sync resets.

// store is a node's journal: the Sender's Source and the Receiver's Sink.
// It installs only the empty state (the active in this test never
// snapshots), by starting a new journal.
type store struct {
	mu  sync.Mutex
	dir string
	j   *persist.Journal
}

func (s *store) journal() *persist.Journal {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.j
}

func (s *store) ReadFrom(i uint64) (*persist.Reader, error) { return s.journal().ReadFrom(i) }
func (s *store) LatestSnapshot() (persist.Snapshot, bool, error) {
	return s.journal().LatestSnapshot()
}
func (s *store) LastIndex() uint64 { return s.journal().LastIndex() }

func (s *store) Position(ctx context.Context) (Position, error) {
	return JournalPosition(ctx, s.journal())
}

func (s *store) InstallSnapshot(_ context.Context, index uint64, state []byte) error {
	if index != 0 || len(state) != 0 {
		return errors.New("store: only the empty state")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.j.Close(); err != nil {
		return err
	}
	if err := os.RemoveAll(s.dir); err != nil {
		return err
	}
	j, err := persist.Open(s.dir, persist.Options{})
	if err != nil {
		return err
	}
	s.j = j
	return nil
}

func (s *store) Append(ctx context.Context, first uint64, payloads [][]byte) error {
	return journalSink{s.journal()}.Append(ctx, first, payloads)
}

type nodeLink struct {
	c   *Conn
	snd *Sender
	rcv *Receiver
}

// node is one management server: a Loop, a listener, links, a store.
type node struct {
	t     *testing.T
	name  string
	store *store
	loop  *ha.Loop
	l     *Listener
	opts  Options
	ctx   context.Context

	mu       sync.Mutex
	nextID   ha.LinkID
	links    map[ha.LinkID]*nodeLink
	acting   bool
	duties   []string
	backups  []string
	restores int
	notices  []ha.Notice
	rel      ha.Relationship
	epoch    hal.Epoch
}

var _ ha.Effects = (*node)(nil)

// newNode starts the server name, whose partner is named partner ([ha]
// partner_name).
func newNode(t *testing.T, name, partner string, pki *testPKI, clk *clock.Fake) *node {
	t.Helper()
	dir := t.TempDir()
	j, err := persist.Open(dir, persist.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{t: t, name: name, store: &store{dir: dir, j: j}, links: map[ha.LinkID]*nodeLink{}, ctx: ctx}
	n.opts = Options{Credentials: pki.creds(t, name), Clock: clk, Hello: n.hello}
	n.l, err = Listen("tcp://127.0.0.1:0", n.opts)
	if err != nil {
		t.Fatal(err)
	}
	n.loop = ha.NewLoop(ha.State{Epoch: 1, Seen: 1}, ha.Config{ReconnectInterval: time.Minute, ReconnectAttempts: 3, PartnerName: partner},
		n, ha.LoopOptions{Clock: clk})
	done := make(chan struct{})
	go func() {
		n.loop.Run(ctx)
		close(done)
	}()
	go n.acceptLoop()
	t.Cleanup(func() {
		cancel()
		<-done
		n.l.Close()
		n.mu.Lock()
		links := n.links
		n.mu.Unlock()
		for _, lk := range links {
			lk.c.Close(nil)
		}
		n.store.journal().Close()
	})
	<-n.loop.Ready()
	return n
}

func (n *node) addr() string { return "tcp://" + n.l.Addr().String() }

func (n *node) hello() Hello {
	s := n.loop.State()
	return Hello{Name: n.name, Listen: n.addr(), Role: s.Role, Epoch: s.Epoch, LastIndex: n.store.LastIndex()}
}

func (n *node) add(c *Conn) ha.LinkID {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.nextID++
	n.links[n.nextID] = &nodeLink{c: c}
	return n.nextID
}

func (n *node) link(id ha.LinkID) *nodeLink {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.links[id]
}

func (n *node) acceptLoop() {
	for {
		c, err := n.l.Accept(n.ctx)
		if err != nil {
			return
		}
		n.loop.Post(ha.LinkUp{Link: n.add(c), Peer: c.PeerInfo()})
	}
}

func (n *node) PersistEpoch(_ context.Context, e hal.Epoch) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.epoch = e
	return nil
}

func (n *node) PersistRelationship(_ context.Context, r ha.Relationship) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.rel = r
	return nil
}

func (n *node) RestoreFrom(context.Context, string) error { return errors.New("no backups here") }

func (n *node) Connect(addr string) {
	go func() {
		ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
		defer cancel()
		c, err := Dial(ctx, addr, n.opts)
		if err != nil {
			n.loop.Post(ha.ConnectFailed{Addr: addr, Err: err})
			return
		}
		n.loop.Post(ha.LinkUp{Link: n.add(c), Peer: c.PeerInfo(), Dialed: true})
	}()
}

func (n *node) Disconnect(id ha.LinkID, why error) {
	if lk := n.link(id); lk != nil {
		go lk.c.Close(why)
	}
}

func (n *node) NotifyEpoch(id ha.LinkID, e hal.Epoch) {
	if lk := n.link(id); lk != nil {
		ctx, cancel := context.WithTimeout(n.ctx, time.Second)
		defer cancel()
		lk.c.Send(ctx, EpochNotice{Epoch: e})
	}
}

func (n *node) Serve(id ha.LinkID, role ha.Role) {
	lk := n.link(id)
	if lk == nil {
		return
	}
	run := func(f func(context.Context) error) {
		go func() { n.loop.Post(ha.LinkDown{Link: id, Err: f(n.ctx)}) }()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if role == ha.Active {
		lk.snd = NewSender(lk.c, n.store, SenderOptions{Link: id, Report: n.loop.Post})
		run(lk.snd.Run)
	} else {
		lk.rcv = NewReceiver(lk.c, n.store, ReceiverOptions{Link: id, Report: n.loop.Post})
		run(lk.rcv.Run)
	}
}

func (n *node) backup(id ha.LinkID, kind string) {
	n.mu.Lock()
	n.backups = append(n.backups, kind)
	n.mu.Unlock()
	n.loop.Post(ha.BackupTaken{Link: id})
}

func (n *node) TakeBackup(id ha.LinkID)     { n.backup(id, "backup") }
func (n *node) TakeAutobackup(id ha.LinkID) { n.backup(id, "autobackup") }

func (n *node) RequestSync(id ha.LinkID, full bool) {
	lk := n.link(id)
	n.mu.Lock()
	rcv := lk.rcv
	n.mu.Unlock()
	go func() {
		if err := rcv.RequestSync(n.ctx, full); err != nil {
			n.loop.Post(ha.SyncFailed{Link: id, Err: err})
		}
	}()
}

func (n *node) sender(id ha.LinkID) *Sender {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.links[id].snd
}

func (n *node) SendSnapshot(id ha.LinkID) { n.sender(id).SendSnapshot() }
func (n *node) StartStream(id ha.LinkID)  { n.sender(id).StartStream() }

func (n *node) RestoreBackup() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.restores++
}

func (n *node) StartActiveDuties(e hal.Epoch, takeover bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.acting = true
	n.duties = append(n.duties, fmt.Sprintf("start epoch %d takeover %t", e, takeover))
}

func (n *node) StopActiveDuties() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.acting = false
	n.duties = append(n.duties, "stop")
}

func (n *node) Emit(no ha.Notice) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.notices = append(n.notices, no)
}

// propose appends a record on the active and returns once the standby
// has it durable: what the daemon does before answering a client while
// synchronized.
func (n *node) propose(t *testing.T, payload string) {
	t.Helper()
	index, err := n.store.journal().Append(context.Background(), []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	s := n.loop.State()
	if s.Conn != ha.Synchronized {
		t.Fatalf("%s not synchronized: %s", n.name, s.Status())
	}
	if err := n.sender(s.Link).WaitAcked(context.Background(), index); err != nil {
		t.Fatal(err)
	}
}

func (n *node) waitState(t *testing.T, role ha.Role, conn ha.ConnState) {
	t.Helper()
	waitFor(t, func() bool {
		s := n.loop.State()
		return s.Role == role && s.Conn == conn
	})
}

func (n *node) records(t *testing.T) []string {
	t.Helper()
	var out []string
	j := n.store.journal()
	all := readAll(t, j, 1)
	for i := uint64(1); i <= j.LastIndex(); i++ {
		out = append(out, string(all[i]))
	}
	return out
}

func sameRecords(t *testing.T, a, b *node) {
	t.Helper()
	ra, rb := a.records(t), b.records(t)
	if len(ra) != len(rb) {
		t.Fatalf("%s holds %d records, %s %d", a.name, len(ra), b.name, len(rb))
	}
	for i := range ra {
		if ra[i] != rb[i] {
			t.Fatalf("record %d: %s has %q, %s %q", i+1, a.name, ra[i], b.name, rb[i])
		}
	}
}

// TestHAOverLinks: set-standby, full synchronization, replicated
// proposals, a cut link and the automatic reconnection (autobackup,
// catch-up), a takeover on the standby, the old active demoted by the
// epoch notice and synchronized as the new standby.
func TestHAOverLinks(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	clk := clock.NewFake(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	a, b := newNode(t, "db1", "db2", pki, clk), newNode(t, "db2", "db1", pki, clk)
	for i := range 20 {
		a.store.journal().Append(context.Background(), fmt.Appendf(nil, "a's state %d", i))
	}
	for i := range 5 {
		b.store.journal().Append(context.Background(), fmt.Appendf(nil, "b's own, to be replaced %d", i))
	}

	// ha set-standby on db1: db2 becomes its standby, backs up, and gets
	// db1's state.
	if err := a.loop.Do(context.Background(), ha.SetStandby{Addr: b.addr()}); err != nil {
		t.Fatal(err)
	}
	a.waitState(t, ha.Active, ha.Synchronized)
	b.waitState(t, ha.Standby, ha.Synchronized)
	sameRecords(t, a, b)
	for i := range 30 {
		a.propose(t, fmt.Sprintf("proposal %d", i))
	}
	sameRecords(t, a, b)

	// The cable is cut: both sides are Disconnected Consistent; one
	// interval later the active reconnects, the standby takes an
	// autobackup and catches up.
	a.propose(t, "before the cut")
	lk := b.link(b.loop.State().Link)
	lk.c.end(errors.New("cable cut"), "")
	a.waitState(t, ha.Active, ha.DisconnectedConsistent)
	b.waitState(t, ha.Standby, ha.DisconnectedConsistent)
	a.store.journal().Append(context.Background(), []byte("written while disconnected"))
	clk.Advance(time.Minute)
	a.waitState(t, ha.Active, ha.Synchronized)
	b.waitState(t, ha.Standby, ha.Synchronized)
	sameRecords(t, a, b)
	b.mu.Lock()
	backups := fmt.Sprint(b.backups)
	b.mu.Unlock()
	if backups != "[backup autobackup]" {
		t.Errorf("db2's backups: %s", backups)
	}

	// ha takeover on db2: epoch 2; db1 hears it on the link, stops acting,
	// and becomes db2's standby.
	if err := b.loop.Do(context.Background(), ha.Takeover{}); err != nil {
		t.Fatal(err)
	}
	a.waitState(t, ha.Standby, ha.Synchronized)
	b.waitState(t, ha.Active, ha.Synchronized)
	for i := range 5 {
		b.propose(t, fmt.Sprintf("after the takeover %d", i))
	}
	sameRecords(t, a, b)

	sa, sb := a.loop.State(), b.loop.State()
	if sb.Epoch != 2 || sa.Epoch != 2 {
		t.Errorf("epochs: db1 %d, db2 %d; want 2", sa.Epoch, sb.Epoch)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	if a.acting || !b.acting {
		t.Errorf("acting: db1 %t, db2 %t", a.acting, b.acting)
	}
	if got := fmt.Sprint(b.duties); got != "[start epoch 1 takeover false stop start epoch 2 takeover true]" {
		t.Errorf("db2's duties: %s", got)
	}
	if got := fmt.Sprint(a.duties); got != "[start epoch 1 takeover false stop]" {
		t.Errorf("db1's duties: %s", got)
	}
	if b.epoch != 2 || b.rel.Role != ha.Active || a.rel.Role != ha.Standby || a.rel.Peer.Name != "db2" {
		t.Errorf("persisted: db1 %+v, db2 %+v epoch %d", a.rel, b.rel, b.epoch)
	}
	demoted := false
	for _, no := range a.notices {
		demoted = demoted || no.Kind == ha.Demoted
	}
	if !demoted {
		t.Error("db1 did not emit Demoted")
	}
}

// stranger dials n as a server of the installation (a certificate of the
// pair's CA, issued for certName) whose Hello says hello.
func stranger(t *testing.T, n *node, pki *testPKI, certName string, hello Hello, clk *clock.Fake) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, n.addr(), Options{Credentials: pki.creds(t, certName), Clock: clk, Hello: func() Hello { return hello }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(nil) })
	return c
}

// TestStrangerChangesNothing: the HA CA signed a certificate for another
// server. Its holder says epoch 99 to the active, then calls itself the
// standby to get the journal: neither changes anything, and the real
// partner still links.
func TestStrangerChangesNothing(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	clk := clock.NewFake(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	a, b := newNode(t, "db1", "db2", pki, clk), newNode(t, "db2", "db1", pki, clk)
	for i := range 5 {
		a.store.journal().Append(context.Background(), fmt.Appendf(nil, "secret %d", i))
	}
	if err := a.loop.Do(context.Background(), ha.SetStandby{Addr: b.addr(), Name: "db2"}); err != nil {
		t.Fatal(err)
	}
	a.waitState(t, ha.Active, ha.Synchronized)
	b.waitState(t, ha.Standby, ha.Synchronized)
	lk := b.link(b.loop.State().Link)
	lk.c.end(errors.New("cable cut"), "")
	a.waitState(t, ha.Active, ha.DisconnectedConsistent)
	before := a.loop.State()

	// "Epoch 99, I am the active": no demotion, the link is closed.
	c := stranger(t, a, pki, "mallory", Hello{Name: "mallory", Role: ha.Active, Epoch: 99}, clk)
	if _, err := c.Recv(context.Background()); err == nil || !strings.Contains(err.Error(), "not the configured partner") {
		t.Fatalf("the stranger's link: %v", err)
	}
	// "I am db2, the standby": no journal. The stranger asks for it at
	// once; the link must end without a record or a snapshot.
	c = stranger(t, a, pki, "mallory", Hello{Name: "db2", Role: ha.Standby, Epoch: 1}, clk)
	c.Send(context.Background(), SyncRequest{Full: true})
	for {
		m, err := c.Recv(context.Background())
		if err != nil {
			if !strings.Contains(err.Error(), "not the configured partner") {
				t.Fatalf("the impostor's link ended with %v", err)
			}
			break
		}
		t.Fatalf("the impostor was served %s", m.Type())
	}
	settle := func(n *node) { n.loop.Do(context.Background(), ha.Tick{}) }
	settle(a)
	after := a.loop.State()
	if after.Role != ha.Active || after.Conn != ha.DisconnectedConsistent || after.Seen != before.Seen || after.Epoch != before.Epoch {
		t.Fatalf("the strangers changed the active: %+v, was %+v", after, before)
	}
	a.mu.Lock()
	acting, notices := a.acting, fmt.Sprint(a.notices)
	a.mu.Unlock()
	if !acting || strings.Contains(notices, "demoted") {
		t.Fatalf("acting %t, notices %s", acting, notices)
	}

	// The real partner links at the next attempt.
	clk.Advance(time.Minute)
	a.waitState(t, ha.Active, ha.Synchronized)
	b.waitState(t, ha.Standby, ha.Synchronized)
	sameRecords(t, a, b)
}
