package notify

import (
	"context"
	"sync"

	"github.com/lockstep-io/lockstep/daemon/config"
)

// TestResult is what became of the test notification to one manager.
type TestResult struct {
	// Address is the manager's, udp://host:port.
	Address      string
	Version      config.SNMPVersion
	Notification config.Notification
	// Seq is the test notification's lockstepSequence for this manager.
	Seq uint32
	// Outcome: "acknowledged" (an inform the manager answered), "sent"
	// (a trap written to the network: nothing tells whether it arrived),
	// "failed" (the manager's retries were used up on it or on a
	// notification queued before it; Err says why; it stays queued and is
	// sent again, as every notification), or "pending" (queued behind others, or still being
	// retried, when ctx ended).
	Outcome string
	Err     error
}

// Test outcomes.
const (
	TestAcknowledged = "acknowledged"
	TestSent         = "sent"
	TestFailed       = "failed"
	TestPending      = "pending"
)

// Test queues the snmpTest notification for every manager, as any
// notification (numbered, behind what is already queued), with fields
// as its details, and waits until each is delivered or has used up its
// retries, or ctx ends. Results are in config order.
func (s *SNMP) Test(ctx context.Context, fields map[string]string) []TestResult {
	n := notification{event: SNMPTest, uptime: timeTicks(s.clock.Since(s.start)), role: s.role(),
		fields: formatFields(fields)}
	managers := s.current()
	out := make([]TestResult, len(managers))
	var wg sync.WaitGroup
	for i, m := range managers {
		done := make(chan error, 1)
		seq := m.enqueueWatched(n, done)
		out[i] = TestResult{Address: m.addr, Version: m.cfg.Version, Notification: m.cfg.Notification, Seq: seq}
		wg.Go(func() {
			select {
			case err := <-done:
				switch {
				case err != nil:
					out[i].Outcome, out[i].Err = TestFailed, err
				case m.cfg.Notification == config.Inform:
					out[i].Outcome = TestAcknowledged
				default:
					out[i].Outcome = TestSent
				}
			case <-ctx.Done():
				out[i].Outcome = TestPending
			}
		})
	}
	wg.Wait()
	return out
}

// enqueueWatched is enqueue with a channel for the outcome; it returns
// the sequence number given.
func (m *snmpManager) enqueueWatched(n notification, done chan error) uint32 {
	m.mu.Lock()
	m.seq++
	seq := m.seq
	m.stats.LastSeq = seq
	if len(m.queue) >= m.cfg.Queue {
		m.queue = m.queue[1:]
		m.stats.Dropped++
	}
	m.queue = append(m.queue, queued{seq: seq, n: n, done: done})
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
	return seq
}

// failWatchers tells every watched notification queued that the
// manager's retries are used up: the head failed, and what is behind it
// waits for the head.
func (m *snmpManager) failWatchers(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, q := range m.queue {
		tell(q.done, err)
	}
}

// tell sends an outcome without blocking: only the first one counts.
func tell(done chan error, err error) {
	if done == nil {
		return
	}
	select {
	case done <- err:
	default:
	}
}
