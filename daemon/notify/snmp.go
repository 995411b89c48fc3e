package notify

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/lockstep-io/lockstep/daemon/config"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// ErrSNMP reports an SNMP configuration that cannot be used (a key file
// missing or empty, say).
var ErrSNMP = errors.New("notify: snmp")

// maxRetryDelay bounds the wait between two attempts to reach a manager.
const maxRetryDelay = time.Minute

// SNMP sends the catalogue's notifications (events with Trap set) to the
// managers of [[snmp.manager]]. Send never blocks: each manager has its
// own bounded queue, drained by its own goroutine while Run runs, so a
// slow or unreachable manager delays nobody else.
//
// A notification that cannot be delivered — a trap that cannot be
// written, an inform that is not acknowledged within the manager's
// timeout — stays at the head of its queue and is sent again after
// retryDelay on the injected clock. After the manager's retries have
// failed in a row it counts as unreachable (logged once); its
// notifications keep queueing and are resent, at most a minute apart,
// until one gets through. A full queue drops its oldest notification:
// the manager sees the gap in lockstepSequence.
type SNMP struct {
	prefix     config.OID
	engineFile string
	server     string
	role       func() string
	clock      clock.Clock
	log        *slog.Logger
	start      time.Time
	ready      chan struct{}
	once       sync.Once
	workers    sync.WaitGroup
	setting    sync.Mutex // one SetManagers at a time

	mu       sync.Mutex
	managers []*snmpManager
	engine   engine              // loaded with the first v3 manager
	runCtx   context.Context     // while Run runs: where workers start
	commDown map[hal.Serial]bool // storage systems whose failure was sent, until recovered
}

// ManagerStats are one manager's counters.
type ManagerStats struct {
	Address   string // udp://host:port
	Queued    int    // waiting, including one being retried
	Sent      uint64 // traps written, informs acknowledged
	Dropped   uint64 // dropped, oldest first, from a full queue
	Failures  uint64 // attempts that failed (not written, not acknowledged)
	LastSeq   uint32 // sequence number of the last notification queued
	Reachable bool   // false from the failure that used up the retries until a success
}

type snmpManager struct {
	cfg    config.Manager
	cred   credentials
	addr   string
	tr     transport
	wake   chan struct{}      // capacity 1: something was queued
	cancel context.CancelFunc // stops the worker; set when it starts

	mu    sync.Mutex
	queue []queued // oldest first
	seq   uint32
	stats ManagerStats
}

type queued struct {
	seq uint32
	n   notification
	// done, if not nil, hears the outcome of the first attempt that
	// delivers it, or of the attempt that used up the manager's retries
	// (Test waits for it); capacity 1, never blocks the worker.
	done chan error
}

// NewSNMP reads the managers' key files and, when a v3 manager is
// configured, the engine ID (created on first use). serverName and role
// go into every notification; role is asked at each Send, so the role
// at the time of the event is sent. A nil clock is real time.
func NewSNMP(cfg config.SNMP, serverName string, role func() string, clk clock.Clock, logger *slog.Logger) (*SNMP, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if role == nil {
		role = func() string { return "unknown" }
	}
	prefix := cfg.EnterpriseOID
	if len(prefix) == 0 {
		prefix, _ = config.ParseOID(config.DefaultEnterpriseOID)
	}
	clk = clock.OrReal(clk)
	s := &SNMP{prefix: prefix, engineFile: cfg.EngineIDFile, server: serverName, role: role, clock: clk,
		start: clk.Now(), log: logger.With("component", "snmp"), ready: make(chan struct{}),
		commDown: map[hal.Serial]bool{}}
	if err := s.SetManagers(cfg.Managers); err != nil {
		return nil, err
	}
	return s, nil
}

// SetManagers applies a new [[snmp.manager]] list (SIGHUP). A manager
// whose entry and key files are unchanged keeps its queue, its sequence
// numbers and its connection; a removed one stops and its queue is lost;
// a new or changed one starts from sequence number 1. On error nothing
// changes.
func (s *SNMP) SetManagers(list []config.Manager) error {
	s.setting.Lock()
	defer s.setting.Unlock()
	s.mu.Lock()
	old, eng := s.managers, s.engine
	s.mu.Unlock()
	uptime := func() time.Duration { return s.clock.Since(s.start) }
	var next []*snmpManager
	kept := map[*snmpManager]bool{}
	for _, m := range list {
		addr := managerAddr(m)
		cred, err := readCredentials(m)
		if err != nil {
			return fmt.Errorf("%w: manager %s: %v", ErrSNMP, addr, err)
		}
		if i := slices.IndexFunc(old, func(o *snmpManager) bool { return o.cfg == m && o.cred == cred && !kept[o] }); i >= 0 {
			kept[old[i]] = true
			next = append(next, old[i])
			continue
		}
		if m.Version == config.V3 && eng.id == nil {
			if eng, err = loadEngine(s.engineFile, s.prefix, rand.Reader); err != nil {
				return err
			}
		}
		tr, err := newGosnmpTransport(m, cred, eng, uptime)
		if err != nil {
			return fmt.Errorf("%w: manager %s: %v", ErrSNMP, addr, err)
		}
		next = append(next, newSNMPManager(m, cred, tr))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.engine = eng
	for _, o := range old {
		if !kept[o] && o.cancel != nil {
			o.cancel()
		}
	}
	s.managers = next
	if s.runCtx != nil {
		for _, m := range next {
			if !kept[m] {
				s.startLocked(m)
			}
		}
	}
	return nil
}

func newSNMPManager(m config.Manager, cred credentials, tr transport) *snmpManager {
	if m.Queue <= 0 {
		m.Queue = config.DefaultQueue
	}
	addr := managerAddr(m)
	return &snmpManager{cfg: m, cred: cred, addr: addr, tr: tr, wake: make(chan struct{}, 1),
		stats: ManagerStats{Address: addr, Reachable: true}}
}

// startLocked starts a manager's worker under Run's context.
func (s *SNMP) startLocked(m *snmpManager) {
	ctx, cancel := context.WithCancel(s.runCtx)
	m.cancel = cancel
	s.workers.Go(func() { m.run(ctx, s) })
}

func (s *SNMP) String() string { return "snmp" }

// Ready is closed once Run sends.
func (s *SNMP) Ready() <-chan struct{} { return s.ready }

// Run sends queued notifications until ctx ends. Notifications still
// queued then are lost (they are in the journal and the log).
func (s *SNMP) Run(ctx context.Context) error {
	s.mu.Lock()
	s.runCtx = ctx
	for _, m := range s.managers {
		s.startLocked(m)
	}
	s.mu.Unlock()
	s.once.Do(func() { close(s.ready) })
	<-ctx.Done()
	s.mu.Lock()
	s.runCtx = nil
	s.mu.Unlock()
	s.workers.Wait()
	return nil
}

// current is the manager list.
func (s *SNMP) current() []*snmpManager {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.managers
}

// Send queues the event for every manager; events without Trap are not
// notifications and are ignored. fields are the event's details; a
// "serial" field also goes out as lockstepStorageSerial.
func (s *SNMP) Send(e Event, fields map[string]string) {
	if !e.Trap {
		return
	}
	n := notification{event: e, uptime: timeTicks(s.clock.Since(s.start)), role: s.role(),
		fields: formatFields(fields), serial: fields["serial"]}
	for _, m := range s.current() {
		m.enqueue(n)
	}
}

// CommFailure sends storageCommFailure for a storage system, once per
// outage: it reports false, sending nothing, while the failure of the
// same system was sent and no CommRecovered followed. timeout tells a
// request that timed out from one that failed.
func (s *SNMP) CommFailure(serial hal.Serial, timeout bool, detail string) bool {
	s.mu.Lock()
	if s.commDown[serial] {
		s.mu.Unlock()
		return false
	}
	s.commDown[serial] = true
	s.mu.Unlock()
	cause := "error"
	if timeout {
		cause = "timeout"
	}
	s.Send(StorageCommFailure, map[string]string{"serial": string(serial), "cause": cause, "detail": detail})
	return true
}

// CommRecovered sends storageCommRecovered if a failure of the system was
// sent, and reports whether it did.
func (s *SNMP) CommRecovered(serial hal.Serial) bool {
	s.mu.Lock()
	if !s.commDown[serial] {
		s.mu.Unlock()
		return false
	}
	delete(s.commDown, serial)
	s.mu.Unlock()
	s.Send(StorageCommRecovered, map[string]string{"serial": string(serial)})
	return true
}

// Stats returns every manager's counters, in config order.
func (s *SNMP) Stats() []ManagerStats {
	managers := s.current()
	out := make([]ManagerStats, 0, len(managers))
	for _, m := range managers {
		m.mu.Lock()
		st := m.stats
		st.Queued = len(m.queue)
		m.mu.Unlock()
		out = append(out, st)
	}
	return out
}

// enqueue numbers the notification for this manager and queues it,
// dropping the oldest when the queue is full.
func (m *snmpManager) enqueue(n notification) { m.enqueueWatched(n, nil) }

// head is the oldest queued notification.
func (m *snmpManager) head() (queued, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.queue) == 0 {
		return queued{}, false
	}
	return m.queue[0], true
}

// delivered removes a sent notification, unless a full queue already
// dropped it, and reports whether the manager was unreachable until now.
func (m *snmpManager) delivered(seq uint32) (wasUnreachable bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.queue) > 0 && m.queue[0].seq == seq {
		m.queue = m.queue[1:]
	}
	m.stats.Sent++
	wasUnreachable = !m.stats.Reachable
	m.stats.Reachable = true
	return wasUnreachable
}

// failed counts a failed attempt; after retries+1 failures in a row the
// manager becomes unreachable, which failed reports once.
func (m *snmpManager) failed(inARow int) (nowUnreachable bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stats.Failures++
	if inARow > m.cfg.Retries && m.stats.Reachable {
		m.stats.Reachable = false
		return true
	}
	return false
}

func (m *snmpManager) run(ctx context.Context, s *SNMP) {
	defer m.tr.close()
	inARow := 0
	for {
		q, ok := m.head()
		if !ok {
			select {
			case <-m.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		err := m.tr.send(ctx, q.n.varbinds(s.prefix, s.server, q.seq))
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			inARow = 0
			tell(q.done, nil)
			if m.delivered(q.seq) {
				s.log.Info("snmp manager reachable again", "manager", m.addr)
			}
			continue
		}
		inARow++
		if inARow > m.cfg.Retries {
			m.failWatchers(err) // what waits behind it is not delivered either
		}
		if m.failed(inARow) {
			s.log.Warn("snmp manager unreachable: notifications stay queued and are sent again",
				"manager", m.addr, "notification", string(m.cfg.Notification), "attempts", inARow, "err", err)
		} else {
			s.log.Debug("snmp send failed", "manager", m.addr, "seq", q.seq, "err", err)
		}
		if clock.Sleep(ctx, s.clock, retryDelay(m.cfg.Timeout, inARow)) != nil {
			return
		}
	}
}

// retryDelay is the wait after the n-th failed attempt in a row (n >= 1):
// the manager's timeout, doubled at each failure, at most maxRetryDelay.
func retryDelay(timeout time.Duration, n int) time.Duration {
	if timeout <= 0 {
		timeout = config.DefaultTimeout
	}
	d := timeout
	for i := 1; i < n && d < maxRetryDelay; i++ {
		d *= 2
	}
	return min(d, maxRetryDelay)
}
