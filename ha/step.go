package ha

import (
	"fmt"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

// Step is the HA state machine: the state after ev happened in s at now,
// and the actions that carry it out, in order. It does no I/O and reads
// no clock.
//
// Beside what each event does (doc.go has the table), every step ends the
// same way: PersistEpoch first if an acting server's epoch changed, then
// PersistRelationship if the role, the partner or the highest epoch seen
// changed, then the event's own actions, then an Emit of StateChanged if
// the role or the connection state changed.
func Step(s State, ev Event, now time.Time, cfg Config) (State, []Action) {
	cfg = cfg.normalized()
	if f, ok := ev.(ActionFailed); ok {
		n, acts := stepFailed(s, f, cfg)
		return n, finish(s, n, acts, false, f.Err)
	}
	n, acts := step(s, ev, now, cfg)
	return n, finish(s, n, acts, true, eventErr(ev))
}

// finish adds the persistence every step needs before its actions, and
// the state-change notice after them.
func finish(old, n State, acts []Action, persist bool, why error) []Action {
	var out []Action
	if persist {
		if n.Role.Acting() && n.Epoch != old.Epoch {
			out = append(out, PersistEpoch{Epoch: n.Epoch})
		}
		nr, or := n.Relationship(), old.Relationship()
		switch {
		case nr.Role != or.Role || nr.Peer != or.Peer || nr.Seen != or.Seen:
			// Durably, or not at all: a higher epoch seen that a restart
			// forgets could be taken over with again (two actives).
			out = append(out, PersistRelationship{Relationship: nr})
		case nr != or:
			// The fallible actions of the event (a restore) come first:
			// when one fails, nothing is recorded.
			lead := 0
			for lead < len(acts) && fallible(acts[lead]) {
				lead++
			}
			out = append(out, acts[:lead]...)
			acts = acts[lead:]
			out = append(out, PersistHAState{Relationship: nr})
		}
	}
	out = append(out, acts...)
	if n.Status() != old.Status() {
		out = append(out, Emit{Notice{Kind: StateChanged, From: old.Status(), To: n.Status(), Epoch: n.Epoch, Err: why}})
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// fallible reports the actions whose failure undoes their step.
func fallible(a Action) bool {
	switch a.(type) {
	case PersistEpoch, PersistRelationship, RestoreFrom:
		return true
	}
	return false
}

// eventErr is the error an event carries, for the state-change notice.
func eventErr(ev Event) error {
	switch e := ev.(type) {
	case LinkDown:
		return e.Err
	case ConnectFailed:
		return e.Err
	case SyncFailed:
		return e.Err
	case BackupFailed:
		return e.Err
	case RestoreFailed:
		return e.Err
	}
	return nil
}

func step(s State, ev Event, now time.Time, cfg Config) (State, []Action) {
	if cfg.Basic && isHACommand(ev) {
		return s, refuse(fmt.Errorf("%w: HA needs the full edition (server.edition = \"full\")", ErrBasicEdition))
	}
	switch e := ev.(type) {
	case Start:
		return start(s, now, cfg)
	case SetStandby:
		return setStandby(s, e, now, cfg)
	case SetAsStandby:
		return setAsStandby(s, e, cfg)
	case Restore:
		return restore(s, e)
	case RemoveStandby:
		return removeStandby(s)
	case RemoveActive:
		return removeActive(s)
	case ReconnectCommand:
		return reconnect(s, now, cfg)
	case Takeover:
		return takeover(s)
	case LinkUp:
		return linkUp(s, e, cfg)
	case LinkDown:
		if s.Link == 0 || e.Link != s.Link {
			return s, nil // a link since replaced
		}
		return linkLost(s, now, cfg, e.Err)
	case SyncFailed:
		if s.Link == 0 || e.Link != s.Link {
			return s, nil
		}
		n, acts := linkLost(s, now, cfg, e.Err)
		return n, append([]Action{Disconnect{Link: s.Link, Err: e.Err}}, acts...)
	case ConnectFailed:
		return connectFailed(s, e)
	case Tick:
		return tick(s, now, cfg)
	case SyncRequested:
		if !s.syncing(e.Link, Active, PhaseBackup) {
			return s, nil
		}
		n := s
		if e.Full {
			n.Phase = PhaseSnapshot
			return n, []Action{SendSnapshot{Link: e.Link}}
		}
		n.Phase = PhaseStream
		return n, []Action{StartStream{Link: e.Link}}
	case SnapshotSent:
		if !s.syncing(e.Link, Active, PhaseSnapshot) {
			return s, nil // also a fallback snapshot during a stream
		}
		n := s
		n.Phase = PhaseStream
		return n, []Action{StartStream{Link: e.Link}}
	case BackupTaken:
		if !s.syncing(e.Link, Standby, PhaseBackup) {
			return s, nil // the link it was for is gone
		}
		n := s
		n.Phase = PhaseSnapshot
		if s.Resync {
			n.Phase = PhaseStream // unless the active falls back on a snapshot
		}
		return n, []Action{RequestSync{Link: e.Link, Full: !s.Resync}}
	case BackupFailed:
		if !s.syncing(e.Link, Standby, PhaseBackup) {
			return s, nil
		}
		err := fmt.Errorf("the standby's backup failed, no synchronization started: %w", e.Err)
		n, acts := linkLost(s, now, cfg, err)
		return n, append([]Action{Disconnect{Link: s.Link, Err: err}}, acts...)
	case SnapshotInstalled:
		if !s.syncing(e.Link, Standby, PhaseSnapshot) && !s.syncing(e.Link, Standby, PhaseStream) {
			return s, nil
		}
		n := s
		n.Phase = PhaseStream
		return n, nil
	case StreamCaughtUp:
		if s.Link == 0 || e.Link != s.Link || s.Conn != SyncPending || s.Phase != PhaseStream {
			return s, nil
		}
		n := s
		n.Conn, n.Phase = Synchronized, PhaseIdle
		n.Reconnect = Schedule{} // the series succeeded
		return n, nil
	case RestoreFailed:
		n := s
		if n.Role == Standby && n.Conn == DisconnectedConsistent {
			n.Conn = Disconnected // its state is neither its own nor a prefix
		}
		return n, []Action{Emit{Notice{Kind: SyncAborted, From: s.Status(), To: n.Status(), Epoch: n.Epoch,
			Err: fmt.Errorf("restoring the backup after a failed synchronization: %w", e.Err)}}}
	case HigherEpochSeen:
		n := s
		n.Seen = max(n.Seen, e.Epoch)
		if n.Role.Acting() && e.Epoch > n.Epoch {
			return demote(n, e.Epoch, nil)
		}
		return n, nil
	}
	return s, nil
}

// syncing reports that s is role, synchronizing on link in phase.
func (s State) syncing(link LinkID, role Role, phase Phase) bool {
	return s.Link != 0 && link == s.Link && s.Role == role && s.Conn == SyncPending && s.Phase == phase
}

func refuse(err error) []Action { return []Action{Refuse{Err: err}} }

func demotedErr(s State) error {
	return fmt.Errorf("%w (epoch %d exists, this server has %d): it issues nothing until it is synchronized "+
		"as a standby (ha reconnect on the active) or taken over (ha takeover here)", ErrDemoted, max(s.Seen, s.Epoch), s.Epoch)
}

func start(s State, now time.Time, cfg Config) (State, []Action) {
	n := s
	n.Link, n.Dialing, n.Phase, n.Resync, n.Reconnect = 0, false, PhaseIdle, false, Schedule{}
	switch s.Role {
	case Standalone:
		n.Conn, n.Peer = Unknown, Peer{}
		return n, []Action{StartActiveDuties{Epoch: s.Epoch}}
	case Active:
		// The persisted state decides: a consistent standby (or a
		// relationship never synchronized) is connected at once and
		// then on the schedule; an inconsistent one waits for ha
		// reconnect, as after a failed first synchronization.
		n.Conn = restConn(s)
		acts := []Action{StartActiveDuties{Epoch: s.Epoch}}
		if s.Peer.Addr != "" && !cfg.Basic && n.Conn != Disconnected {
			n.Dialing = true
			schedule(&n, now, cfg)
			acts = append(acts, Connect{Addr: s.Peer.Addr})
		}
		return n, acts
	case Standby:
		n.Conn = restConn(s)
	case DisconnectedStandby:
		n.Conn = Disconnected
	}
	return n, nil
}

// partnerName is the name a new relationship gives the partner: the
// command's, else the configured one; a relationship needs a way to
// authenticate the partner (a name its certificate carries, or a pinned
// fingerprint).
func partnerName(name string, cfg Config) (string, error) {
	if name == "" {
		name = cfg.PartnerName
	}
	if name == "" {
		if cfg.PartnerFingerprint.IsZero() {
			return "", fmt.Errorf("%w: give the partner's server name (--name NAME), which its certificate must carry "+
				"as a DNS or URI subject alternative name, or set [ha] partner_name or partner_fingerprint", ErrPartnerIdentity)
		}
		return "", nil // learned from the Hello of the pinned certificate
	}
	return name, ValidName(name)
}

func setStandby(s State, e SetStandby, now time.Time, cfg Config) (State, []Action) {
	addr := e.Addr
	if addr == "" {
		return s, refuse(fmt.Errorf("%w: give the standby's address, tcp://host:port or vsock://cid:port", ErrBadAddress))
	}
	switch s.Role {
	case Active:
		return s, refuse(fmt.Errorf("%w: this server is already the active of %s: remove the standby first (ha remove-standby)",
			ErrSecondRelationship, s.Peer))
	case Standby:
		return s, refuse(fmt.Errorf("%w: this server is the standby of %s: remove the active first (ha remove-active)",
			ErrSecondRelationship, s.Peer))
	case DisconnectedStandby:
		return s, refuse(demotedErr(s))
	}
	name, err := partnerName(e.Name, cfg)
	if err != nil {
		return s, refuse(err)
	}
	n := s
	n.Role, n.Peer, n.Conn = Active, Peer{Addr: addr, Name: name}, Unknown
	n.Dialing = true
	schedule(&n, now, cfg)
	return n, []Action{Connect{Addr: addr}}
}

func setAsStandby(s State, e SetAsStandby, cfg Config) (State, []Action) {
	addr := e.Addr
	if addr == "" {
		return s, refuse(fmt.Errorf("%w: give the active's address, tcp://host:port or vsock://cid:port", ErrBadAddress))
	}
	switch s.Role {
	case Active:
		return s, refuse(fmt.Errorf("%w: this server is the active of %s: remove the standby first (ha remove-standby)",
			ErrSecondRelationship, s.Peer))
	case Standby:
		return s, refuse(fmt.Errorf("%w: this server is already the standby of %s: remove the active first (ha remove-active)",
			ErrSecondRelationship, s.Peer))
	case DisconnectedStandby:
		return s, refuse(demotedErr(s))
	}
	name, err := partnerName(e.Name, cfg)
	if err != nil {
		return s, refuse(err)
	}
	n := s
	n.Role, n.Peer, n.Conn = Standby, Peer{Addr: addr, Name: name}, Unknown
	n.Dialing, n.Reconnect = true, Schedule{}
	return n, []Action{StopActiveDuties{}, Connect{Addr: addr}}
}

func restore(s State, e Restore) (State, []Action) {
	n := s
	switch s.Role {
	case Active:
		return s, refuse(fmt.Errorf("%w: this server is the active of %s, whose standby holds its state: remove the standby first "+
			"(ha remove-standby), restore, then set the standby again", ErrWrongRole, s.Peer))
	case Standby:
		switch {
		case s.Conn == Synchronized:
			return s, refuse(fmt.Errorf("%w: the standby holds the active's state and receives its records: restore it "+
				"only while it is Disconnected or Disconnected Consistent (ha remove-standby on %s, or once the link is lost)",
				ErrSynchronized, s.Peer))
		case s.Conn == SyncPending:
			return s, refuse(fmt.Errorf("%w: wait until it ends (Synchronized or Disconnected); a standby is restored only while "+
				"Disconnected or Disconnected Consistent", ErrSyncInProgress))
		case s.Link != 0 || s.Dialing:
			return s, refuse(fmt.Errorf("%w to %s: a standby is restored only while Disconnected or Disconnected Consistent",
				ErrConnecting, s.Peer))
		}
		// Its state is no longer known to be a prefix of the active's
		// journal: the next synchronization is a full one, after a
		// backup of what was restored.
		n.Conn = Disconnected
	}
	return n, []Action{RestoreFrom{Backup: e.Backup}}
}

// standalone is s without its relationship.
func standalone(s State) State {
	n := s
	n.Role, n.Peer, n.Conn = Standalone, Peer{}, Unknown
	n.Link, n.Dialing, n.Phase, n.Resync, n.Reconnect = 0, false, PhaseIdle, false, Schedule{}
	return n
}

func removeStandby(s State) (State, []Action) {
	switch s.Role {
	case Standalone:
		return s, refuse(fmt.Errorf("%w: this server is standalone", ErrNoRelationship))
	case Standby:
		return s, refuse(fmt.Errorf("%w: this server is the standby: run ha remove-standby on the active (%s), or ha remove-active here",
			ErrWrongRole, s.Peer))
	case DisconnectedStandby:
		return s, refuse(demotedErr(s))
	}
	var acts []Action
	if s.Link != 0 {
		acts = append(acts, Disconnect{Link: s.Link, Err: ErrRemoved})
	}
	return standalone(s), acts
}

func removeActive(s State) (State, []Action) {
	switch s.Role {
	case Standalone:
		return s, refuse(fmt.Errorf("%w: this server is standalone", ErrNoRelationship))
	case Active:
		return s, refuse(fmt.Errorf("%w: this server is the active: run ha remove-standby here", ErrWrongRole))
	case DisconnectedStandby:
		return s, refuse(demotedErr(s))
	}
	switch s.Conn {
	case Synchronized:
		return s, refuse(fmt.Errorf("%w: remove the standby on the active instead (ha remove-standby on %s)", ErrSynchronized, s.Peer))
	case SyncPending:
		return s, refuse(fmt.Errorf("%w: wait until it ends (Synchronized or Disconnected), then remove the standby on the active (ha remove-standby on %s)",
			ErrSyncInProgress, s.Peer))
	}
	// The server acts on its own from now on: with an epoch of its own,
	// so that it and its former active never act with the same one.
	n := standalone(s)
	n.Epoch = max(s.Epoch, s.Seen) + 1
	n.Seen = n.Epoch
	var acts []Action
	if s.Link != 0 {
		acts = append(acts, Disconnect{Link: s.Link, Err: ErrRemoved})
	}
	return n, append(acts, StartActiveDuties{Epoch: n.Epoch})
}

func reconnect(s State, now time.Time, cfg Config) (State, []Action) {
	switch {
	case s.Role == Standalone:
		return s, refuse(fmt.Errorf("%w: this server is standalone: set a standby first (ha set-standby ADDR)", ErrNoRelationship))
	case s.Link != 0:
		return s, refuse(fmt.Errorf("%w to %s (HA state %s)", ErrConnected, s.Peer, s.Conn))
	case s.Dialing:
		return s, refuse(fmt.Errorf("%w to %s: wait for its outcome", ErrConnecting, s.Peer))
	case s.Peer.Addr == "":
		return s, refuse(fmt.Errorf("%w: the partner's address is not known: this server waits for the active to connect", ErrNoRelationship))
	}
	n := s
	n.Dialing = true
	if n.Role == Active {
		schedule(&n, now, cfg) // a new series
	}
	return n, []Action{Connect{Addr: s.Peer.Addr}}
}

func takeover(s State) (State, []Action) {
	switch s.Role {
	case Active, Standalone:
		return s, refuse(fmt.Errorf("%w: this server is already acting (%s): ha takeover runs on the standby", ErrWrongRole, s.Role))
	case Standby:
		if s.Conn == SyncPending {
			return s, refuse(fmt.Errorf("%w: the standby's state is incomplete: wait until it is Synchronized or Disconnected", ErrSyncInProgress))
		}
	}
	e := max(s.Epoch, s.Seen) + 1
	n := s
	n.Epoch, n.Seen = e, e
	n.Phase, n.Resync, n.Reconnect = PhaseIdle, false, Schedule{}
	var acts []Action
	if s.Link != 0 {
		acts = append(acts, NotifyEpoch{Link: s.Link, Epoch: e}, Disconnect{Link: s.Link, Err: ErrTookOver})
		n.Link = 0
	}
	acts = append(acts, StartActiveDuties{Epoch: e, Takeover: true})
	if s.Peer.Addr != "" {
		// Reach the former active at once: it learns of the new epoch
		// and becomes this server's standby.
		n.Role, n.Conn = Active, Disconnected
		if !s.Dialing {
			n.Dialing = true
			acts = append(acts, Connect{Addr: s.Peer.Addr})
		}
	} else {
		n = standalone(n)
	}
	return n, append(acts, Emit{Notice{Kind: TookOver, From: s.Status(), To: n.Status(), Epoch: e}})
}

// demote makes an acting server a disconnected standby at once, having
// seen epoch e. why, if not nil, is added to the notice (a persistence
// that failed).
func demote(s State, e hal.Epoch, why error) (State, []Action) {
	n := s
	n.Role, n.Conn = DisconnectedStandby, Disconnected
	n.Phase, n.Resync, n.Reconnect = PhaseIdle, false, Schedule{}
	acts := []Action{StopActiveDuties{}}
	if s.Link != 0 {
		acts = append(acts, Disconnect{Link: s.Link, Err: fmt.Errorf("%w: epoch %d is above ours (%d)", ErrDemoted, e, s.Epoch)})
		n.Link = 0
	}
	return n, append(acts, Emit{Notice{Kind: Demoted, From: s.Status(), To: n.Status(), Epoch: e, Err: why}})
}

// consistentBefore reports whether the standby's state at the start of a
// synchronization is a consistent prefix of the active's journal (a
// resynchronization), as far as s knows: after a synchronization, also
// across a restart (the persisted HA state). Unknown is a relationship
// never synchronized.
func consistentBefore(s State) bool {
	switch s.Conn {
	case Synchronized, DisconnectedConsistent:
		return true
	}
	return false
}

// learn fills the partner's name and address from its Hello.
func learn(p Peer, info PeerInfo) Peer {
	if p.Name == "" {
		p.Name = info.Name
	}
	if p.Addr == "" {
		p.Addr = info.Addr
	}
	return p
}

func linkUp(s State, e LinkUp, cfg Config) (State, []Action) {
	drop := func(n State, err error) (State, []Action) {
		return n, []Action{Disconnect{Link: e.Link, Err: err}}
	}
	if cfg.Basic {
		return drop(s, fmt.Errorf("%w: HA needs the full edition (server.edition = \"full\")", ErrBasicEdition))
	}
	// Nothing of the Hello counts (its epoch, role, name) before the
	// certificate behind it is the partner's: any holder of a
	// certificate of the CA could say anything.
	if err := authenticate(s, e.Peer, cfg); err != nil {
		if e.Dialed {
			n, acts := connectFailed(s, ConnectFailed{Addr: s.Peer.Addr, Err: err})
			return n, append([]Action{Disconnect{Link: e.Link, Err: err}}, acts...)
		}
		return drop(s, err)
	}
	n := s
	n.Seen = max(n.Seen, e.Peer.Epoch)
	if e.Dialed && s.Dialing {
		n.Dialing = false
	}
	// An acting server that meets a higher epoch stops acting first,
	// whatever becomes of the link: the partner, authenticated above,
	// knows of a takeover.
	var acts []Action
	if n.Role.Acting() && e.Peer.Epoch > n.Epoch {
		n, acts = demote(n, e.Peer.Epoch, nil)
	}
	drop = func(n State, err error) (State, []Action) {
		return n, append(acts, Disconnect{Link: e.Link, Err: err})
	}
	switch {
	case e.Dialed && !s.Dialing:
		return drop(n, fmt.Errorf("%w: a connection this server no longer waits for", ErrPeerConflict))
	case n.Link != 0: // a demotion just above dropped the old link
		return drop(n, fmt.Errorf("%w (link %d): the new connection is closed", ErrLinkInUse, n.Link))
	}
	sync := func(n State, role Role, resync bool) State {
		n.Role, n.Peer = role, learn(n.Peer, e.Peer)
		n.Link, n.Conn, n.Phase, n.Resync = e.Link, SyncPending, PhaseBackup, resync
		return n
	}
	becomeStandby := func(n State, resync bool) (State, []Action) {
		wasActing := n.Role.Acting()
		n = sync(n, Standby, resync)
		n.Epoch, n.Reconnect = e.Peer.Epoch, Schedule{}
		if wasActing {
			acts = append(acts, StopActiveDuties{})
		}
		acts = append(acts, Serve{Link: e.Link, Role: Standby})
		if resync {
			return n, append(acts, TakeAutobackup{Link: e.Link})
		}
		return n, append(acts, TakeBackup{Link: e.Link})
	}

	switch n.Role {
	case Standalone:
		switch {
		case e.Peer.Role == Standby:
			// ha set-as-standby on the partner.
			n.Reconnect = Schedule{}
			return sync(n, Active, false), append(acts, Serve{Link: e.Link, Role: Active})
		case e.Peer.Role == Active && e.Peer.Epoch == n.Epoch:
			// ha set-standby on the partner.
			return becomeStandby(n, false)
		case e.Peer.Role == Active:
			return drop(n, fmt.Errorf("%w: %s is active at epoch %d, below ours (%d): it stops acting when it sees ours",
				ErrStaleEpoch, e.Peer.Name, e.Peer.Epoch, n.Epoch))
		}
		return drop(n, fmt.Errorf("%w: %s (%s) and this standalone server have no relationship: set one (ha set-standby ADDR)",
			ErrNoRelationship, e.Peer.Name, e.Peer.Role))
	case Active:
		if e.Peer.Role == Active && e.Peer.Epoch == n.Epoch {
			return drop(n, fmt.Errorf("%w: both servers are active at epoch %d: remove the relationship on one of them (ha remove-standby) and set it again",
				ErrPeerConflict, n.Epoch))
		}
		// The partner becomes (or stays) the standby; a former active at
		// a lower epoch stops acting when it reads our Hello.
		return sync(n, Active, consistentBefore(s)), append(acts, Serve{Link: e.Link, Role: Active})
	case Standby:
		// A standalone server that this standby dialed (ha set-as-standby)
		// wrote its Hello before it read ours: it becomes our active as it
		// reads it (a standalone server meeting a standby), so the standby
		// synchronizes from it as from an active.
		dialedStandalone := e.Dialed && e.Peer.Role == Standalone
		if e.Peer.Role != Active && !dialedStandalone {
			return drop(n, fmt.Errorf("%w: %s is %s: a standby synchronizes from an active only", ErrPeerConflict, e.Peer.Name, e.Peer.Role))
		}
		if e.Peer.Epoch < n.Epoch {
			return drop(n, fmt.Errorf("%w: %s is active at epoch %d, below ours (%d)", ErrStaleEpoch, e.Peer.Name, e.Peer.Epoch, n.Epoch))
		}
		return becomeStandby(n, consistentBefore(s))
	case DisconnectedStandby:
		if e.Peer.Role == Active && e.Peer.Epoch >= n.Seen {
			// Synchronized as the standby of the active with the highest
			// epoch: the way out of this mode.
			return becomeStandby(n, false)
		}
		return drop(n, demotedErr(n))
	}
	return drop(n, fmt.Errorf("%w: unknown role %s", ErrPeerConflict, n.Role))
}

// linkLost is the end of the link (lost, or dropped after a local
// failure): what the pair holds decides the state.
func linkLost(s State, now time.Time, cfg Config, why error) (State, []Action) {
	n := s
	n.Link, n.Phase, n.Resync = 0, PhaseIdle, false
	var acts []Action
	consistent := s.Conn == Synchronized || s.Resync
	switch s.Role {
	case Active:
		switch {
		case s.Conn == Synchronized:
			n.Conn = DisconnectedConsistent
			schedule(&n, now, cfg)
		case consistent:
			n.Conn = DisconnectedConsistent
			reschedule(&n, now, cfg) // the attempt that connected counts
		default:
			n.Conn, n.Reconnect = Disconnected, Schedule{}
		}
		if reconnecting(n) && n.Reconnect.Next.IsZero() {
			acts = append(acts, reconnectStopped(s, n, why))
		}
	case Standby:
		n.Conn = Disconnected
		if consistent {
			n.Conn = DisconnectedConsistent
		}
		if s.Conn == SyncPending && s.Phase != PhaseBackup {
			// A synchronization failed midway: back to the state before.
			acts = append(acts, RestoreBackup{})
		}
	case DisconnectedStandby:
		n.Conn = Disconnected
	}
	if s.Conn == SyncPending {
		acts = append(acts, Emit{Notice{Kind: SyncAborted, From: s.Status(), To: n.Status(), Epoch: n.Epoch, Err: why}})
	}
	return n, acts
}

func reconnectStopped(old, n State, why error) Action {
	return Emit{Notice{Kind: ReconnectStopped, From: old.Status(), To: n.Status(), Epoch: n.Epoch,
		Err: fmt.Errorf("%w after %d attempts: run ha reconnect (last error: %v)", ErrReconnectStopped, n.Reconnect.Attempts, why)}}
}

func connectFailed(s State, e ConnectFailed) (State, []Action) {
	if !s.Dialing {
		return s, nil
	}
	n := s
	n.Dialing = false
	if reconnecting(n) && n.Reconnect.Next.IsZero() {
		return n, []Action{reconnectStopped(s, n, e.Err)}
	}
	return n, nil
}

func tick(s State, now time.Time, cfg Config) (State, []Action) {
	due, ok := Wakeup(s)
	if !ok || now.Before(due) {
		return s, nil
	}
	n := s
	n.Dialing = true
	n.Reconnect.Attempts++
	n.Reconnect.Last = now
	n.Reconnect.Next, _ = NextReconnect(n.Reconnect.Attempts, now, cfg)
	return n, []Action{Connect{Addr: s.Peer.Addr}}
}

// stopsActing reports whether ev makes the acting server s stop at once
// (a higher epoch), and the epoch.
func stopsActing(s State, ev Event, cfg Config) (hal.Epoch, bool) {
	if !s.Role.Acting() {
		return 0, false
	}
	switch e := ev.(type) {
	case HigherEpochSeen:
		return e.Epoch, e.Epoch > s.Epoch
	case LinkUp:
		return e.Peer.Epoch, !cfg.Basic && e.Peer.Epoch > s.Epoch && authenticate(s, e.Peer, cfg) == nil
	}
	return 0, false
}

// stepFailed handles a fallible action that failed: the step for the
// cause is undone (from s, the state before it), except that a server
// that had to stop acting stops anyway; a command is refused and a new
// link dropped.
func stepFailed(s State, f ActionFailed, cfg Config) (State, []Action) {
	err := fmt.Errorf("ha: %s failed: %w", f.Action, f.Err)
	n := s
	var acts []Action
	if e, ok := stopsActing(s, f.Cause, cfg); ok {
		n.Seen = max(n.Seen, e)
		n, acts = demote(n, e, err)
	}
	switch c := f.Cause.(type) {
	case LinkUp:
		if authenticate(s, c.Peer, cfg) == nil {
			n.Seen = max(n.Seen, c.Peer.Epoch)
		}
		if c.Dialed {
			n.Dialing = false
		}
		acts = append(acts, Disconnect{Link: c.Link, Err: err})
	case HigherEpochSeen:
		n.Seen = max(n.Seen, c.Epoch)
	default:
		if isCommand(f.Cause) {
			acts = append(acts, Refuse{Err: err})
		}
	}
	return n, acts
}
