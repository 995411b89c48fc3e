package ha

import (
	"fmt"

	"github.com/lockstep-io/lockstep/hal"
)

// Action is an output of Step, for the Loop to execute through Effects, in
// order. Fallible actions (PersistEpoch, PersistRelationship,
// RestoreFrom) always come first in a step, so that when one fails
// nothing else has happened.
type Action interface {
	action()
	String() string
}

// PersistEpoch: make the raised epoch durable (a journal record) before
// acting with it. Fallible.
type PersistEpoch struct{ Epoch hal.Epoch }

// PersistRelationship: make the role and partner durable, so that a
// restart keeps them. Fallible.
type PersistRelationship struct{ Relationship Relationship }

// PersistHAState: make durable the HA state a restart resumes from
// (Relationship.Conn), when only that changed. Best effort: a failure is
// logged and the step goes on, since undoing a link's loss or a
// synchronization's end would misstate what happened; the worst a lost
// write does is a restart that resumes from the state before.
type PersistHAState struct{ Relationship Relationship }

// RestoreFrom (standalone, unlinked standby, disconnected standby):
// replace the server's state with the backup at Backup, before the step
// goes on. Fallible: on failure the command is refused with the error and
// nothing changed.
type RestoreFrom struct{ Backup string }

// Connect: dial the partner at Addr; report LinkUp (Dialed) or
// ConnectFailed.
type Connect struct{ Addr string }

// Disconnect: close the link, telling the partner why (its goodbye).
type Disconnect struct {
	Link LinkID
	Err  error
}

// NotifyEpoch: tell the partner on Link our (raised) epoch before the link
// is closed, so that a former active stops acting at once.
type NotifyEpoch struct {
	Link  LinkID
	Epoch hal.Epoch
}

// Serve: the link is accepted; serve it in Role: as the active (a
// Sender, which waits for the standby's sync request) or as the standby
// (a Receiver). It comes before every other action on the link.
type Serve struct {
	Link LinkID
	Role Role
}

// TakeBackup (standby): write a backup of the own state before a first
// synchronization; report BackupTaken or BackupFailed.
type TakeBackup struct{ Link LinkID }

// TakeAutobackup (standby): the same before a resynchronization.
type TakeAutobackup struct{ Link LinkID }

// RequestSync (standby): ask the active for a synchronization, full
// (snapshot first) or a catch-up from the own last record.
type RequestSync struct {
	Link LinkID
	Full bool
}

// SendSnapshot (active): send the latest snapshot; report SnapshotSent.
type SendSnapshot struct{ Link LinkID }

// StartStream (active): stream records after the snapshot sent, or after
// the standby's last record (falling back on a snapshot if those records
// were compacted or differ); report StreamCaughtUp.
type StartStream struct{ Link LinkID }

// RestoreBackup (standby): a synchronization failed midway: restore the
// backup taken before it. Report RestoreFailed on failure only.
type RestoreBackup struct{}

// StartActiveDuties: issue commands, run the heartbeat, handle events and
// scheduled work, all with Epoch. Takeover: after a takeover, also report
// takeover readiness (docs/architecture.md, Storage connections).
type StartActiveDuties struct {
	Epoch    hal.Epoch
	Takeover bool
}

// StopActiveDuties: stop issuing anything at once: commands, heartbeat,
// scheduled work. Idempotent.
type StopActiveDuties struct{}

// Refuse: the command is refused with Err (Loop.Do returns it).
type Refuse struct{ Err error }

// Emit: an operator-visible HA event (trap, log, D-Bus signal).
type Emit struct{ Notice Notice }

func (PersistEpoch) action()        {}
func (PersistRelationship) action() {}
func (PersistHAState) action()      {}
func (RestoreFrom) action()         {}
func (Connect) action()             {}
func (Disconnect) action()          {}
func (NotifyEpoch) action()         {}
func (Serve) action()               {}
func (TakeBackup) action()          {}
func (TakeAutobackup) action()      {}
func (RequestSync) action()         {}
func (SendSnapshot) action()        {}
func (StartStream) action()         {}
func (RestoreBackup) action()       {}
func (StartActiveDuties) action()   {}
func (StopActiveDuties) action()    {}
func (Refuse) action()              {}
func (Emit) action()                {}

func (a PersistEpoch) String() string { return fmt.Sprintf("persist-epoch %d", a.Epoch) }
func (a PersistRelationship) String() string {
	if a.Relationship.Peer.IsZero() {
		return "persist-relationship " + a.Relationship.Role.String()
	}
	return fmt.Sprintf("persist-relationship %s %s", a.Relationship.Role, a.Relationship.Peer)
}
func (a PersistHAState) String() string {
	return "persist-ha-state " + a.Relationship.Conn.String()
}
func (a RestoreFrom) String() string    { return "restore-from " + a.Backup }
func (a Connect) String() string        { return "connect " + a.Addr }
func (a Disconnect) String() string     { return fmt.Sprintf("disconnect %d: %v", a.Link, a.Err) }
func (a NotifyEpoch) String() string    { return fmt.Sprintf("notify-epoch %d on %d", a.Epoch, a.Link) }
func (a Serve) String() string          { return fmt.Sprintf("serve %d as %s", a.Link, a.Role) }
func (a TakeBackup) String() string     { return fmt.Sprintf("take-backup %d", a.Link) }
func (a TakeAutobackup) String() string { return fmt.Sprintf("take-autobackup %d", a.Link) }
func (a RequestSync) String() string    { return fmt.Sprintf("request-sync %d (full %t)", a.Link, a.Full) }
func (a SendSnapshot) String() string   { return fmt.Sprintf("send-snapshot %d", a.Link) }
func (a StartStream) String() string    { return fmt.Sprintf("start-stream %d", a.Link) }
func (RestoreBackup) String() string    { return "restore-backup" }
func (a StartActiveDuties) String() string {
	return fmt.Sprintf("start-active-duties epoch %d (takeover %t)", a.Epoch, a.Takeover)
}
func (StopActiveDuties) String() string { return "stop-active-duties" }
func (a Refuse) String() string         { return fmt.Sprintf("refuse: %v", a.Err) }
func (a Emit) String() string           { return "emit " + a.Notice.String() }

// NoticeKind is the kind of an operator-visible HA event.
type NoticeKind uint8

const (
	// StateChanged: the role or the HA connection state changed (the
	// haStateChanged trap, sent by both servers).
	StateChanged NoticeKind = iota
	// TookOver: this server took over as active (with its new epoch).
	TookOver
	// Demoted: a higher epoch exists; this server stopped acting and is a
	// disconnected standby.
	Demoted
	// ReconnectStopped: automatic reconnection gave up (attempts spent or
	// none configured); `ha reconnect` is needed.
	ReconnectStopped
	// SyncAborted: a synchronization failed (backup, transfer, restore).
	SyncAborted
)

var noticeNames = [...]string{"state-changed", "took-over", "demoted", "reconnect-stopped", "sync-aborted"}

func (k NoticeKind) String() string {
	if int(k) < len(noticeNames) {
		return noticeNames[k]
	}
	return fmt.Sprintf("notice(%d)", uint8(k))
}

// Notice is an operator-visible HA event.
type Notice struct {
	Kind     NoticeKind
	From, To Status
	Epoch    hal.Epoch
	// Err says why (the link error, the failed backup, ...), nil if
	// nothing failed.
	Err error
}

func (n Notice) String() string {
	s := fmt.Sprintf("%s %s -> %s epoch %d", n.Kind, n.From, n.To, n.Epoch)
	if n.Err != nil {
		s += ": " + n.Err.Error()
	}
	return s
}
