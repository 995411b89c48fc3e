package ha

import (
	"fmt"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

// Role is what a server does in its HA relationship. The numeric values
// are carried on the peer link (package link): never renumber them.
type Role uint8

const (
	// Standalone: no partner. The server acts (issues commands, runs the
	// heartbeat and the scheduled work).
	Standalone Role = 0
	// Active: the acting server of a relationship.
	Active Role = 1
	// Standby: holds a copy of the active's journal; issues nothing.
	Standby Role = 2
	// DisconnectedStandby: a former active that learned of a higher epoch.
	// It issues nothing, sends no heartbeat and runs no scheduled work
	// until it is synchronized as a standby or a takeover is issued on it.
	DisconnectedStandby Role = 3
)

var roleNames = [...]string{"standalone", "active", "standby", "disconnected-standby"}

func (r Role) String() string {
	if r.Valid() {
		return roleNames[r]
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// Valid reports a known role.
func (r Role) Valid() bool { return int(r) < len(roleNames) }

// Acting reports a role that issues commands to storage systems: Active
// and Standalone.
func (r Role) Acting() bool { return r == Active || r == Standalone }

// ConnState is the HA connection state, shown by both
// servers.
type ConnState uint8

const (
	// Unknown: a relationship exists but this server has not yet learned
	// the partner's state (at start, or right after the relationship was
	// set). Also the state of a standalone server.
	Unknown ConnState = iota
	// SyncPending: the link is up and a synchronization is under way
	// (standby backup, snapshot, records up to the active's last index).
	SyncPending
	// Synchronized: every record the active makes durable is shipped to
	// the standby, and counts as replicated once the standby fsynced it.
	Synchronized
	// DisconnectedConsistent: the link was lost while synchronized (or a
	// resynchronization failed and the standby restored its autobackup):
	// the standby holds a consistent prefix of the active's journal, and a
	// takeover is safe. The active reconnects on its own (NextReconnect).
	DisconnectedConsistent
	// Disconnected: the link was lost during a first synchronization, the
	// standby's backup failed, or the relationship was never synchronized
	// since a takeover. Reconnection is manual (ha reconnect).
	Disconnected
)

var connNames = [...]string{"Unknown", "Synchronization Pending", "Synchronized",
	"Disconnected Consistent", "Disconnected"}

// String is the state's name as ha status shows it (CSM's names).
func (c ConnState) String() string {
	if int(c) < len(connNames) {
		return connNames[c]
	}
	return fmt.Sprintf("conn-state(%d)", uint8(c))
}

// Phase is the progress of a synchronization (ConnState SyncPending).
type Phase uint8

const (
	// PhaseIdle: no synchronization under way.
	PhaseIdle Phase = iota
	// PhaseBackup: the standby takes its backup (or autobackup); the
	// active waits for the standby's sync request.
	PhaseBackup
	// PhaseSnapshot: the active sends (the standby installs) a snapshot.
	PhaseSnapshot
	// PhaseStream: records flow; the state becomes Synchronized once the
	// standby has fsynced every record the active held when the stream
	// began.
	PhaseStream
)

var phaseNames = [...]string{"idle", "backup", "snapshot", "stream"}

func (p Phase) String() string {
	if int(p) < len(phaseNames) {
		return phaseNames[p]
	}
	return fmt.Sprintf("phase(%d)", uint8(p))
}

// LinkID names one peer connection. The daemon numbers its links (from 1;
// 0 means none) so that reports about a link that has since been replaced
// are recognized and ignored.
type LinkID uint64

// Peer is the partner server.
type Peer struct {
	// Addr is where the partner listens: "tcp://host:port" or
	// "vsock://cid:port", as given to ha set-standby or set-as-standby, or
	// as the partner announced it.
	Addr string
	// Name is the partner's server name: given with ha set-standby or
	// set-as-standby (--name), or [ha] partner_name, or learned from the
	// Hello of a partner authenticated by a pinned fingerprint. Its
	// certificate must carry it (CertIdentity.Names) unless a fingerprint
	// is pinned.
	Name string
}

// IsZero reports no partner.
func (p Peer) IsZero() bool { return p == Peer{} }

func (p Peer) String() string {
	switch {
	case p.Name != "" && p.Addr != "":
		return p.Name + " (" + p.Addr + ")"
	case p.Name != "":
		return p.Name
	}
	return p.Addr
}

// PeerInfo is what the partner said about itself when the link came up
// (its Hello).
type PeerInfo struct {
	Name string
	// Addr is the partner's listener address as announced, made dialable
	// by the link (an unspecified host replaced by the connection's remote
	// address).
	Addr      string
	Role      Role
	Epoch     hal.Epoch
	LastIndex uint64
	// Cert is what the peer's verified certificate says: the only part
	// of PeerInfo that the peer cannot choose. Step checks it against
	// the configured partner before anything else of the Hello counts.
	Cert CertIdentity
}

// Relationship is what a server persists about its HA relationship, so
// that a restart keeps its role (a demoted server stays demoted) and
// resumes from the HA state it had (see State.Relationship).
type Relationship struct {
	Role Role
	Peer Peer
	// Conn is the HA state a restart resumes from: Unknown (never
	// synchronized since the relationship was set), Disconnected
	// Consistent (the standby holds a consistent prefix of the active's
	// journal) or Disconnected (it does not).
	Conn ConnState
	// Seen is State.Seen: a server that learned of a higher epoch and
	// restarts before its journal holds it (a synchronization cut short)
	// must not take over with an epoch another server acts with.
	Seen hal.Epoch
}

// Schedule is the state of automatic reconnection (see NextReconnect).
type Schedule struct {
	// Attempts made in the current series; a series starts when the link
	// is lost after a synchronization, and at a manual reconnect.
	Attempts int
	// Last is when the last attempt started, or when the link was lost
	// if that was later: the next attempt is at least one interval after.
	Last time.Time
	// Next is when the next automatic attempt is due; zero when none is.
	Next time.Time
}

// State is one server's HA state. The zero value is a standalone server at
// epoch 0. At start the daemon fills Role, Peer, Conn, Epoch and Seen
// from what it persisted (Relationship, the journal's epoch) and leaves
// the rest zero.
type State struct {
	Role Role
	Conn ConnState
	Peer Peer // zero when standalone
	// Epoch is the fencing token this server carries: raised by a
	// takeover; a standby carries its active's.
	Epoch hal.Epoch
	// Seen is the highest epoch this server has heard of (peer Hellos,
	// epoch notices, storage systems answering fenced). A takeover goes
	// above it.
	Seen hal.Epoch
	// Link is the peer connection in use, 0 when none.
	Link LinkID
	// Dialing: a Connect was issued and its outcome (LinkUp or
	// ConnectFailed) has not been reported yet.
	Dialing bool
	// Phase of the synchronization while Conn is SyncPending.
	Phase Phase
	// Resync: the synchronization under way is a resynchronization of a
	// consistent standby (one that starts from Synchronized, Disconnected
	// Consistent, or Unknown with the partner's name known): the standby
	// took an autobackup, and a failure brings the pair back to
	// DisconnectedConsistent.
	Resync bool
	// Reconnect is the automatic reconnection schedule (active only).
	Reconnect Schedule
}

// Relationship is the part of s a server persists, with the highest
// epoch it has seen. Its Conn is what s
// would leave behind if the server stopped now: a synchronized pair, or
// one resynchronizing (a failed resync restores the standby's
// autobackup), leaves a consistent standby; a first synchronization
// under way leaves an inconsistent one.
func (s State) Relationship() Relationship {
	return Relationship{Role: s.Role, Peer: s.Peer, Conn: restConn(s), Seen: s.Seen}
}

func restConn(s State) ConnState {
	switch {
	case s.Role == Standalone:
		return Unknown
	case s.Role == DisconnectedStandby:
		return Disconnected
	}
	switch s.Conn {
	case Synchronized, DisconnectedConsistent:
		return DisconnectedConsistent
	case SyncPending:
		if s.Resync {
			return DisconnectedConsistent
		}
		return Disconnected
	}
	return s.Conn
}

// HAState is the text shown for the HA state: the connection state's
// name, or "Standalone" for a server with no partner.
func (s State) HAState() string { return s.Status().HAState() }

// Status is the operator-visible part of a state.
type Status struct {
	Role Role
	Conn ConnState
}

// Status is s's role and connection state.
func (s State) Status() Status { return Status{Role: s.Role, Conn: s.Conn} }

// HAState is the text shown for the HA state (see State.HAState).
func (s Status) HAState() string {
	if s.Role == Standalone {
		return "Standalone"
	}
	return s.Conn.String()
}

func (s Status) String() string { return s.Role.String() + "/" + s.Conn.String() }

// Config is the HA policy. The daemon fills it from [ha] and
// [server].edition.
type Config struct {
	// Basic: the basic edition, which has no HA: every HA command is
	// refused with ErrBasicEdition and every link is closed.
	Basic bool
	// ReconnectInterval between automatic reconnection attempts (<= 0:
	// DefaultReconnectInterval). Attempts are never closer than this,
	// whatever the failure.
	ReconnectInterval time.Duration
	// ReconnectAttempts in one series; 0 means no automatic reconnection
	// (the daemon's configuration defaults it to
	// DefaultReconnectAttempts).
	ReconnectAttempts int
	// PartnerName is the partner's server name when the relationship
	// does not name it ([ha] partner_name): the name its certificate
	// must carry. A server that waits to be contacted needs it (or
	// PartnerFingerprint) to accept its partner at all.
	PartnerName string
	// PartnerFingerprint, if not zero, pins the partner's certificate
	// ([ha] partner_fingerprint): only that certificate is the partner,
	// whatever names it carries.
	PartnerFingerprint Fingerprint
}

// Defaults of the HA timings.
const (
	DefaultReconnectInterval = time.Minute
	DefaultReconnectAttempts = 10
)

// DefaultConfig is the full edition with the default reconnection policy.
func DefaultConfig() Config {
	return Config{ReconnectInterval: DefaultReconnectInterval, ReconnectAttempts: DefaultReconnectAttempts}
}

func (c Config) normalized() Config {
	if c.ReconnectInterval <= 0 {
		c.ReconnectInterval = DefaultReconnectInterval
	}
	if c.ReconnectAttempts < 0 {
		c.ReconnectAttempts = 0
	}
	return c
}
