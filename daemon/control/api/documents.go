package api

import (
	"fmt"
	"strings"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

// The documents below are the API contract: every read method returns one
// of them (or a list) as JSON, and StorageAdd takes a StorageSpec as JSON.
// Fields are only ever added; a client ignores fields it does not know.
// Times are RFC 3339, durations Go duration strings ("55s"); a zero time
// is left out.

// StatusDoc is the answer to Status: the one-screen summary.
type StatusDoc struct {
	// Server is this server's name (its host name unless configured).
	Server  string `json:"server"`
	Version string `json:"version"`
	// Role is "active", "standby" or "disconnected-standby".
	Role string `json:"role"`
	// HAState is the HA connection state (ha/doc.go): "Unknown",
	// "Synchronization Pending", "Synchronized", "Disconnected
	// Consistent", "Disconnected", or "Standalone" without a partner.
	HAState   string        `json:"ha_state"`
	Epoch     hal.Epoch     `json:"epoch"`
	Heartbeat bool          `json:"heartbeat"`
	Sessions  SessionCounts `json:"sessions"`
	Storage   StorageCounts `json:"storage"`
	// Degraded lists what the acting server cannot protect as configured,
	// one sentence each naming the consistency group and the reason: a
	// group the heartbeat (on) does not protect, a group out of contact
	// with a storage system longer than its lowest CG timeout. Empty when
	// all is well.
	Degraded []string `json:"degraded"`
	// Journal says whether this server can record changes.
	Journal JournalDoc `json:"journal"`
	// Started is when the daemon started: every Transitions counter of
	// the other documents counts from then (their discontinuity time).
	Started time.Time `json:"started,omitzero"`
}

// JournalLine is j for a person: "writable", or that it cannot write,
// since when, why, and that changes are refused.
func JournalLine(j JournalDoc) string {
	if j.Writable {
		return "writable"
	}
	return fmt.Sprintf("CANNOT WRITE since %s, changes are refused: %s",
		j.Since.UTC().Format(time.RFC3339), j.Error)
}

// JournalDoc is the state journal's health in a StatusDoc.
type JournalDoc struct {
	// Writable is false while the journal cannot write (its file system
	// is full): every change is refused until it is true again.
	Writable bool `json:"writable"`
	// Error says why it cannot write; empty while it can.
	Error string `json:"error,omitempty"`
	// Since is when Writable last changed (the daemon's start if never).
	Since time.Time `json:"since,omitzero"`
}

// SessionCounts counts sessions by status.
type SessionCounts struct {
	Total       int `json:"total"`
	Inactive    int `json:"inactive"`
	Normal      int `json:"normal"`
	Warning     int `json:"warning"`
	Severe      int `json:"severe"`
	Recoverable int `json:"recoverable"`
}

// StorageCounts counts storage systems.
type StorageCounts struct {
	Total     int `json:"total"`
	Reachable int `json:"reachable"`
}

// StorageDoc is a storage system as StorageList and StorageShow show it.
type StorageDoc struct {
	Serial hal.Serial `json:"serial"`
	// Reachable: some connection works.
	Reachable bool `json:"reachable"`
	// Heartbeat: some working connection can carry the heartbeat.
	Heartbeat bool `json:"heartbeat"`
	// Via names the connection and endpoint that carry commands now
	// ("direct d1: cluster 0", "hmc HMCS: HMC LAB-HMC1 (host:port)"); ""
	// while none does.
	Via         string          `json:"via"`
	Connections []ConnectionDoc `json:"connections"`
	// Sessions names the sessions with volumes on this storage system.
	Sessions []string `json:"sessions"`
	// LastChange is when Reachable last changed, and Transitions how
	// often it did, since the daemon started (zero: not since then).
	LastChange  time.Time `json:"last_change,omitzero"`
	Transitions uint64    `json:"transitions"`
}

// ConnectionDoc is one connection of a StorageDoc.
type ConnectionDoc struct {
	Name      string         `json:"name"`
	Kind      ConnectionKind `json:"kind"`
	Addresses []string       `json:"addresses"`
	Sysplex   string         `json:"sysplex,omitempty"`
	// HMC names the HMC connection (hmc add) this one is; empty for the
	// connections added with storage add.
	HMC string `json:"hmc,omitempty"`
	// ZOS names the z/OS connection (zos add) this one is; empty for the
	// others.
	ZOS string `json:"zos,omitempty"`
	// Heartbeat: the connection kind can carry the heartbeat.
	Heartbeat bool `json:"heartbeat"`
	// State is "connected", "connecting", "disconnected", or "unusable"
	// (a z/OS connection from a server outside its sysplex).
	State string `json:"state"`
	// Detail says why the connection is not connected; empty otherwise.
	Detail string `json:"detail,omitempty"`
}

// SessionDoc is a session as SessionList, SessionShow and SessionCommand
// show it. Its value types are this package's (session.go): the words of
// the wire, not the daemon's model.
type SessionDoc struct {
	Name   string        `json:"name"`
	Type   SessionType   `json:"type"`
	CG     string        `json:"cg"`
	Policy SuspendPolicy `json:"policy"`
	// State and Status are in their kebab form ("target-available");
	// Label gives the words of the documentation ("Target Available").
	State       SessionState  `json:"state"`
	Status      SessionStatus `json:"status"`
	Recoverable bool          `json:"recoverable"`
	Copying     bool          `json:"copying"`
	Error       bool          `json:"error"`
	IOHeld      bool          `json:"io_held"`
	// ActiveSite is the production site, H1 or H2.
	ActiveSite        Site             `json:"active_site"`
	Direction         Direction        `json:"direction"`
	CopySets          []CopySet        `json:"copy_sets"`
	AvailableCommands []SessionCommand `json:"available_commands"`
	Reason            string           `json:"reason"`
	LastChange        time.Time        `json:"last_change,omitzero"`
	// Transitions counts the changes of State, Status or Recoverable
	// since the daemon started, flaps between two reads included.
	Transitions uint64 `json:"transitions"`
	// Warnings, in the answer to a command only: what the operator
	// should know of it (a HyperSwap session started while the heartbeat
	// is on: the heartbeat does not cover it).
	Warnings []string `json:"warnings,omitempty"`
}

// HeartbeatDoc is the answer to HeartbeatShow.
type HeartbeatDoc struct {
	// Enabled is the server-wide switch.
	Enabled  bool     `json:"enabled"`
	Interval Duration `json:"interval"`
	// Groups are the consistency groups the freeze core watches.
	Groups []HeartbeatGroupDoc `json:"groups"`
	// Warnings name storage systems the heartbeat cannot reach (z/OS
	// connections only, TCP/IP down).
	Warnings []string `json:"warnings"`
}

// HeartbeatGroupDoc is one consistency group of the freeze core.
type HeartbeatGroupDoc struct {
	Name string `json:"name"`
	// Phase is "mirroring", "freezing", "partial", "frozen" or "thawed".
	Phase  string    `json:"phase"`
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since,omitzero"`
	// H is the storage-side heartbeat timeout of the group.
	H Duration `json:"h"`
	// Unprotected says why the heartbeat, though on, does not protect
	// the group: it is not heartbeat-armed, and frozen on every other sign.
	Unprotected string               `json:"unprotected,omitempty"`
	Systems     []HeartbeatSystemDoc `json:"systems"`
	// LastChange is when Phase last changed and Transitions how often it
	// did, LastFreeze when the group's last freeze began, all since the
	// daemon started (zero: not since then).
	LastChange  time.Time `json:"last_change,omitzero"`
	Transitions uint64    `json:"transitions"`
	LastFreeze  time.Time `json:"last_freeze,omitzero"`
}

// HeartbeatSystemDoc is one source storage system of a group.
type HeartbeatSystemDoc struct {
	Serial hal.Serial `json:"serial"`
	// LSSPairs are the system's LSS pairs in the group, as
	// "SOURCE/LSS->TARGET/LSS": the scope a freeze of the group covers there.
	LSSPairs  []string  `json:"lss_pairs"`
	Armed     bool      `json:"armed"`
	Acked     bool      `json:"acked"`
	LastSent  time.Time `json:"last_sent,omitzero"`
	LastReply time.Time `json:"last_reply,omitzero"`
	// Unreachable is the last failure to reach it while its group
	// mirrors, with LastContact the last time it answered.
	Unreachable string    `json:"unreachable,omitempty"`
	LastContact time.Time `json:"last_contact,omitzero"`
}

// BackupDoc is one backup zip (persist/doc.go).
type BackupDoc struct {
	// Name is what BackupRestore takes.
	Name    string    `json:"name"`
	Created time.Time `json:"created,omitzero"`
	Size    int64     `json:"size"`
	// Version is the lockstepd version that wrote it.
	Version   string    `json:"version"`
	Epoch     hal.Epoch `json:"epoch"`
	LastIndex uint64    `json:"last_index"`
	// Auto: taken by the daemon itself before a synchronization.
	Auto bool `json:"auto"`
}

// HADoc is the answer to HAStatus (ha/doc.go).
type HADoc struct {
	// At is the server's clock when it took the view: Role, State, Epoch
	// and Acting (and the relationship fields) are one snapshot, taken
	// at that instant under one lock, so that two servers' views can be
	// compared by their own times.
	At time.Time `json:"at"`
	// Edition is "full" or "basic" (no HA).
	Edition string    `json:"edition"`
	Role    string    `json:"role"`
	State   string    `json:"state"`
	Epoch   hal.Epoch `json:"epoch"`
	// Acting: this server issues commands and runs the heartbeat (an
	// active or standalone server, once its epoch reached every storage
	// system it can reach). A standby never acts.
	Acting bool `json:"acting"`
	// SyncPhase, while Synchronization Pending: "backup" (the standby
	// writes its backup), "snapshot" or "stream".
	SyncPhase string `json:"sync_phase,omitempty"`
	// LastIndex is this server's last durable journal record.
	LastIndex uint64 `json:"last_index"`
	// StandbyLag, on an active with a link to its standby, is the number
	// of records the standby has not acknowledged yet.
	StandbyLag *uint64 `json:"standby_lag,omitempty"`
	// Unavailable says why HA cannot be used on this server (edition,
	// missing TLS files); empty when it can.
	Unavailable string `json:"unavailable,omitempty"`
	// Listen is this server's HA listener address.
	Listen string `json:"listen,omitempty"`
	// Partner is the other server's address; empty when standalone.
	Partner     string `json:"partner,omitempty"`
	PartnerRole string `json:"partner_role,omitempty"`
	// ReconnectAttempts made so far of ReconnectLimit, and when the next
	// one is due, while Disconnected Consistent.
	ReconnectAttempts int       `json:"reconnect_attempts"`
	ReconnectLimit    int       `json:"reconnect_limit"`
	NextReconnect     time.Time `json:"next_reconnect,omitzero"`
	// Unreachable lists the storage systems this server could not use if
	// it were (or became) active: its takeover readiness.
	Unreachable []hal.Serial `json:"unreachable"`
	// Readiness says, for each of Unreachable, why (docs/architecture.md, Storage connections).
	Readiness []ReadinessDoc `json:"readiness"`
	// LastChange is when Role or State last changed and Transitions how
	// often they did since the daemon started (zero: not since then).
	LastChange  time.Time `json:"last_change,omitzero"`
	Transitions uint64    `json:"transitions"`
}

// ReadinessDoc is one storage system a server cannot reach, and why: no
// IP connection (only z/OS or an HMC, which this build cannot use), no
// usable credentials, or its last connection error.
type ReadinessDoc struct {
	Serial hal.Serial `json:"serial"`
	Reason string     `json:"reason"`
}

// TakeoverDoc is the answer to HATakeover.
type TakeoverDoc struct {
	// Epoch is the new, raised epoch.
	Epoch hal.Epoch `json:"epoch"`
	// Unreachable lists the storage systems the new active could not
	// reach (takeover readiness).
	Unreachable []hal.Serial `json:"unreachable"`
	// Readiness says, for each of Unreachable, why.
	Readiness []ReadinessDoc `json:"readiness"`
	Warnings  []string       `json:"warnings"`
}

// WarningsDoc is the answer of the changes that can succeed with warnings
// (StorageAdd, StorageRemove, HMCAdd, HMCRemove, HeartbeatSet).
type WarningsDoc struct {
	Warnings []string `json:"warnings"`
}

// FirewallFormat is the form of FirewallHints' rules.
type FirewallFormat string

const (
	FirewallText     FirewallFormat = "text"
	FirewallNft      FirewallFormat = "nft"
	FirewallIptables FirewallFormat = "iptables"
)

// ParseFirewallFormat accepts text, nft or iptables; empty means text.
func ParseFirewallFormat(s string) (FirewallFormat, error) {
	switch f := FirewallFormat(strings.ToLower(s)); f {
	case "":
		return FirewallText, nil
	case FirewallText, FirewallNft, FirewallIptables:
		return f, nil
	}
	return "", fmt.Errorf("%w: firewall hint format %q (want text, nft or iptables)", ErrInvalid, s)
}

// FirewallDoc is the answer to FirewallHints.
type FirewallDoc struct {
	Format FirewallFormat `json:"format"`
	// Rules are the hints written in Format, ready to paste.
	Rules string            `json:"rules"`
	Hints []FirewallHintDoc `json:"hints"`
}

// FirewallHintDoc is one flow the firewall must let through.
type FirewallHintDoc struct {
	// Direction is "in" or "out" as seen from this server.
	Direction string `json:"direction"`
	// Protocol is "tcp", "udp" or "vsock".
	Protocol string `json:"protocol"`
	// LocalPorts and RemotePorts are a port or a range ("32768-60999").
	LocalPorts  string `json:"local_ports"`
	Remote      string `json:"remote,omitempty"`
	RemotePorts string `json:"remote_ports"`
	// Purpose says what the flow is for ("HA peer", "SNMP traps to nms1").
	Purpose string `json:"purpose"`
}

// EventDoc is one operator-visible event: an element of Events' answer
// and the content of the Event signal.
type EventDoc struct {
	// Seq numbers events from 1, without gaps while the daemon runs.
	Seq uint64    `json:"seq"`
	At  time.Time `json:"at,omitzero"`
	// ID is the stable message id, "LS-2001-W"; its suffix is the
	// severity's initial.
	ID string `json:"id"`
	// Severity is "info", "warning" or "error".
	Severity string            `json:"severity"`
	Text     string            `json:"text"`
	Fields   map[string]string `json:"fields,omitempty"`
}

// SNMPTestDoc is the answer to SNMPTest: the test notification's fate at
// each configured manager, in configuration order.
type SNMPTestDoc struct {
	Managers []SNMPTestManagerDoc `json:"managers"`
}

// SNMPTestManagerDoc is one manager of an SNMPTestDoc.
type SNMPTestManagerDoc struct {
	// Address is the manager's, udp://host:port.
	Address string `json:"address"`
	// Version is "v2c" or "v3"; Notification "trap" or "inform".
	Version      string `json:"version"`
	Notification string `json:"notification"`
	// Seq is the test notification's lockstepSequence at this manager.
	Seq uint32 `json:"seq"`
	// Outcome is "acknowledged" (an inform the manager answered), "sent"
	// (a trap written to the network; nothing tells whether it arrived),
	// "failed" (Error says why; it stays queued and is sent again), or
	// "pending" (still queued or retried when the wait ended).
	Outcome string `json:"outcome"`
	Error   string `json:"error,omitempty"`
}

// Properties are the D-Bus properties of Interface.
type Properties struct {
	Role      string
	HAState   string
	Heartbeat bool
	Epoch     hal.Epoch
	Version   string
}

// Duration is a time.Duration written as a Go duration string in JSON.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes "1.5s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads what MarshalText writes.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
