package ha

import (
	"fmt"

	"github.com/lockstep-io/lockstep/hal"
)

// Event is an input of Step: an administrator's command, a report from
// the link or from an effect started earlier, or the clock.
type Event interface {
	event()
	String() string
}

// Commands (lockstepctl ha ...). Step answers a refused command with a
// Refuse action, and Loop.Do returns its error.

// SetStandby is `ha set-standby ADDR --name NAME` on the server that is
// to be active. Name is the standby's server name, which its certificate
// must carry; empty: Config.PartnerName.
type SetStandby struct{ Addr, Name string }

// SetAsStandby is `ha set-as-standby ADDR --name NAME` on the server that
// is to be the standby of the active at ADDR, named Name (empty:
// Config.PartnerName).
type SetAsStandby struct{ Addr, Name string }

// RemoveStandby is `ha remove-standby`, on the active.
type RemoveStandby struct{}

// RemoveActive is `ha remove-active`, on the standby; refused while
// synchronized (remove the standby on the active instead).
type RemoveActive struct{}

// ReconnectCommand is `ha reconnect`: connect to the partner now, and
// start a new series of automatic attempts.
type ReconnectCommand struct{}

// Takeover is `ha takeover`, on the standby (or a disconnected standby):
// raise the epoch above every epoch seen, persist it, become active.
type Takeover struct{}

// Restore is `backup restore NAME`: replace this server's state with the
// backup at Backup, in place. Allowed on a standalone server, and on a
// standby that is not linked (Disconnected or Disconnected Consistent) or
// a disconnected standby, which stay what they are and do not act;
// refused on an active and on a standby while synchronized or
// synchronizing. Step answers with RestoreFrom.
type Restore struct{ Backup string }

// Start is the first event a Loop steps: it starts the active duties of
// an acting server and the first connection of an active.
type Start struct{}

// Link reports.

// LinkUp: a connection to a partner is authenticated and both Hellos were
// exchanged. Dialed is true when this server dialed it (in answer to a
// Connect), false for an accepted one.
type LinkUp struct {
	Link   LinkID
	Peer   PeerInfo
	Dialed bool
}

// LinkDown: the connection ended (error, silent peer, peer's goodbye).
type LinkDown struct {
	Link LinkID
	Err  error
}

// ConnectFailed: a Connect did not produce a link.
type ConnectFailed struct {
	Addr string
	Err  error
}

// SyncRequested (active): the standby, having taken its backup, asks for
// a synchronization: a full one (snapshot first) or a catch-up from its
// last record.
type SyncRequested struct {
	Link LinkID
	Full bool
}

// SnapshotSent (active): the snapshot at Index was sent. The sender also
// reports it when it had to fall back on a snapshot during a stream (the
// records asked for were compacted).
type SnapshotSent struct {
	Link  LinkID
	Index uint64
}

// SnapshotInstalled (standby): the snapshot at Index is durable.
type SnapshotInstalled struct {
	Link  LinkID
	Index uint64
}

// StreamCaughtUp (both): the standby has fsynced every record up to Index,
// the active's last record when the stream began.
type StreamCaughtUp struct {
	Link  LinkID
	Index uint64
}

// SyncFailed: a local failure of the synchronization (the standby could
// not persist what it received, the active could not read its journal).
type SyncFailed struct {
	Link LinkID
	Err  error
}

// BackupTaken (standby): the backup or autobackup asked for by TakeBackup
// or TakeAutobackup is written.
type BackupTaken struct{ Link LinkID }

// BackupFailed (standby): it could not be written; no synchronization
// starts.
type BackupFailed struct {
	Link LinkID
	Err  error
}

// RestoreFailed (standby): RestoreBackup failed; the standby holds a
// partial state and must be synchronized again.
type RestoreFailed struct{ Err error }

// HigherEpochSeen: the partner (its Hello or an EpochNotice) or a storage
// system (answering fenced) knows an epoch higher than ours. An acting
// server stops acting at once.
type HigherEpochSeen struct {
	Epoch hal.Epoch
	// From says where it was seen, for the operator ("peer db2",
	// "storage LAB.2107-75P0001").
	From string
}

// Tick: the clock reached State.Reconnect.Next (see Wakeup). A Tick at
// any other moment is harmless: Step starts an attempt only when one is
// due.
type Tick struct{}

// ActionFailed: a fallible action (PersistEpoch, PersistRelationship) of
// the step for Cause failed. The Loop skips the rest of that step's
// actions and steps ActionFailed from the state before Cause: commands
// are refused and links dropped with nothing changed, except that a
// server that must stop acting stops anyway (without persisting it).
type ActionFailed struct {
	Cause  Event
	Action Action
	Err    error
}

func (SetStandby) event()        {}
func (SetAsStandby) event()      {}
func (RemoveStandby) event()     {}
func (RemoveActive) event()      {}
func (ReconnectCommand) event()  {}
func (Takeover) event()          {}
func (Restore) event()           {}
func (Start) event()             {}
func (LinkUp) event()            {}
func (LinkDown) event()          {}
func (ConnectFailed) event()     {}
func (SyncRequested) event()     {}
func (SnapshotSent) event()      {}
func (SnapshotInstalled) event() {}
func (StreamCaughtUp) event()    {}
func (SyncFailed) event()        {}
func (BackupTaken) event()       {}
func (BackupFailed) event()      {}
func (RestoreFailed) event()     {}
func (HigherEpochSeen) event()   {}
func (Tick) event()              {}
func (ActionFailed) event()      {}

func (e SetStandby) String() string     { return "set-standby " + e.Addr + nameFlag(e.Name) }
func (e SetAsStandby) String() string   { return "set-as-standby " + e.Addr + nameFlag(e.Name) }
func (e Restore) String() string        { return "restore " + e.Backup }
func (RemoveStandby) String() string    { return "remove-standby" }
func (RemoveActive) String() string     { return "remove-active" }
func (ReconnectCommand) String() string { return "reconnect" }
func (Takeover) String() string         { return "takeover" }
func (Start) String() string            { return "start" }
func (e LinkUp) String() string {
	return fmt.Sprintf("link-up %d (peer %s, %s, epoch %d, dialed %t)", e.Link, e.Peer.Name, e.Peer.Role, e.Peer.Epoch, e.Dialed)
}
func (e LinkDown) String() string      { return fmt.Sprintf("link-down %d: %v", e.Link, e.Err) }
func (e ConnectFailed) String() string { return fmt.Sprintf("connect-failed %s: %v", e.Addr, e.Err) }
func (e SyncRequested) String() string {
	return fmt.Sprintf("sync-requested %d (full %t)", e.Link, e.Full)
}
func (e SnapshotSent) String() string { return fmt.Sprintf("snapshot-sent %d at %d", e.Link, e.Index) }
func (e SnapshotInstalled) String() string {
	return fmt.Sprintf("snapshot-installed %d at %d", e.Link, e.Index)
}
func (e StreamCaughtUp) String() string { return fmt.Sprintf("caught-up %d at %d", e.Link, e.Index) }
func (e SyncFailed) String() string     { return fmt.Sprintf("sync-failed %d: %v", e.Link, e.Err) }
func (e BackupTaken) String() string    { return fmt.Sprintf("backup-taken %d", e.Link) }
func (e BackupFailed) String() string   { return fmt.Sprintf("backup-failed %d: %v", e.Link, e.Err) }
func (e RestoreFailed) String() string  { return fmt.Sprintf("restore-failed: %v", e.Err) }
func (e HigherEpochSeen) String() string {
	return fmt.Sprintf("higher-epoch %d from %s", e.Epoch, e.From)
}
func (Tick) String() string { return "tick" }
func (e ActionFailed) String() string {
	return fmt.Sprintf("action-failed %s (for %s): %v", e.Action, e.Cause, e.Err)
}

func nameFlag(name string) string {
	if name == "" {
		return ""
	}
	return " --name " + name
}

// isCommand reports the administrator's commands.
func isCommand(ev Event) bool {
	switch ev.(type) {
	case SetStandby, SetAsStandby, RemoveStandby, RemoveActive, ReconnectCommand, Takeover, Restore:
		return true
	}
	return false
}

// isHACommand reports the commands that only the full edition has.
func isHACommand(ev Event) bool {
	_, restore := ev.(Restore)
	return isCommand(ev) && !restore
}
