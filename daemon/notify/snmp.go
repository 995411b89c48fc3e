package notify

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
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
	prefix config.OID
	server string
	role   func() string
	clock  clock.Clock
	log    *slog.Logger
	start  time.Time

	managers []*snmpManager
	ready    chan struct{}
	once     sync.Once

	mu       sync.Mutex
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
	cfg  config.Manager
	addr string
	tr   transport
	wake chan struct{} // capacity 1: something was queued

	mu    sync.Mutex
	queue []queued // oldest first
	seq   uint32
	stats ManagerStats
}

type queued struct {
	seq uint32
	n   notification
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
	s := &SNMP{prefix: prefix, server: serverName, role: role, clock: clk, start: clk.Now(),
		log: logger.With("component", "snmp"), ready: make(chan struct{}), commDown: map[hal.Serial]bool{}}
	var eng engine
	for _, m := range cfg.Managers {
		if m.Version == config.V3 && eng.id == nil {
			var err error
			if eng, err = loadEngine(cfg.EngineIDFile, prefix, rand.Reader); err != nil {
				return nil, err
			}
		}
	}
	uptime := func() time.Duration { return s.clock.Since(s.start) }
	for _, m := range cfg.Managers {
		addr := managerAddr(m)
		cred, err := readCredentials(m)
		if err != nil {
			return nil, fmt.Errorf("%w: manager %s: %v", ErrSNMP, addr, err)
		}
		tr, err := newGosnmpTransport(m, cred, eng, uptime)
		if err != nil {
			return nil, fmt.Errorf("%w: manager %s: %v", ErrSNMP, addr, err)
		}
		s.managers = append(s.managers, newSNMPManager(m, tr))
	}
	return s, nil
}

func newSNMPManager(m config.Manager, tr transport) *snmpManager {
	if m.Queue <= 0 {
		m.Queue = config.DefaultQueue
	}
	addr := managerAddr(m)
	return &snmpManager{cfg: m, addr: addr, tr: tr, wake: make(chan struct{}, 1),
		stats: ManagerStats{Address: addr, Reachable: true}}
}

func (s *SNMP) String() string { return "snmp" }

// Ready is closed once Run sends.
func (s *SNMP) Ready() <-chan struct{} { return s.ready }

// Run sends queued notifications until ctx ends. Notifications still
// queued then are lost (they are in the journal and the log).
func (s *SNMP) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, m := range s.managers {
		wg.Go(func() { m.run(ctx, s) })
	}
	s.once.Do(func() { close(s.ready) })
	wg.Wait()
	return nil
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
	for _, m := range s.managers {
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
	out := make([]ManagerStats, 0, len(s.managers))
	for _, m := range s.managers {
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
func (m *snmpManager) enqueue(n notification) {
	m.mu.Lock()
	m.seq++
	m.stats.LastSeq = m.seq
	if len(m.queue) >= m.cfg.Queue {
		m.queue = m.queue[1:]
		m.stats.Dropped++
	}
	m.queue = append(m.queue, queued{seq: m.seq, n: n})
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

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
			if m.delivered(q.seq) {
				s.log.Info("snmp manager reachable again", "manager", m.addr)
			}
			continue
		}
		inARow++
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
