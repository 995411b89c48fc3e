package notify

import (
	"context"
	"fmt"
	"log/slog"
)

// Severity is the suffix of an event id.
type Severity byte

const (
	Info    Severity = 'I'
	Warning Severity = 'W'
	Error   Severity = 'E'
)

// Level is the slog level of a severity.
func (s Severity) Level() slog.Level {
	switch s {
	case Warning:
		return slog.LevelWarn
	case Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Event is one entry of the catalogue.
type Event struct {
	Code     int      // unique, never reused
	Name     string   // camelCase, also the MIB notification name suffix
	Severity Severity // fixed per event
	Summary  string   // what an operator should understand
	Trap     bool     // sent to the NMS as an SNMP notification
}

// ID is the stable message id, e.g. "LS2101W".
func (e Event) ID() string { return fmt.Sprintf("LS%04d%c", e.Code, e.Severity) }

// MessageID is journald's 128-bit MESSAGE_ID for the event.
func (e Event) MessageID() string { return fmt.Sprintf("6c6f636b73746570%016x", e.Code) }

// The catalogue. Codes: 1xxx daemon, 2xxx sessions and freezes, 3xxx
// storage, 4xxx heartbeat, 5xxx HA, 6xxx configuration and backups, 7xxx
// scheduled tasks.
var (
	DaemonStarted    = Event{1001, "daemonStarted", Info, "lockstepd started: journal replayed, role known", false}
	DaemonStopping   = Event{1002, "daemonStopping", Info, "lockstepd stopping", false}
	WatchdogWithheld = Event{1003, "watchdogWithheld", Error, "the freeze core made no progress: the systemd watchdog is not pinged", true}
	// The state directory's file system is full (or the journal cannot
	// write for another reason): every change is refused until it can.
	StateUnwritable = Event{1101, "stateUnwritable", Error, "the journal cannot write (a full disk): changes are refused until it can", true}
	StateWritable   = Event{1102, "stateWritable", Info, "the journal writes again: changes are accepted", true}

	SessionStateChanged = Event{2001, "sessionStateChanged", Info, "a session command ran", false}
	SessionSevere       = Event{2002, "sessionSevere", Error, "a session entered a Severe status", true}
	// One notification per session state (daemon/freeze/doc.go), sent when a
	// session enters it.
	SessionDefined          = Event{2011, "sessionDefined", Info, "a session is Defined: no pairs are managed", true}
	SessionPreparing        = Event{2012, "sessionPreparing", Warning, "a session is Preparing: the copy to the target site runs", true}
	SessionPrepared         = Event{2013, "sessionPrepared", Info, "a session is Prepared: every pair mirrors", true}
	SessionSuspending       = Event{2014, "sessionSuspending", Warning, "a session is Suspending: its consistency group is being frozen", true}
	SessionSuspended        = Event{2015, "sessionSuspended", Error, "a session is Suspended: its pairs no longer mirror", true}
	SessionSuspendedPartial = Event{2016, "sessionSuspendedPartial", Error, "a session is Suspended (Partial): some pair may still mirror", true}
	SessionRecovering       = Event{2017, "sessionRecovering", Warning, "a session is Recovering: the target site is being made writable", true}
	SessionTargetAvailable  = Event{2018, "sessionTargetAvailable", Warning, "a session is Target Available: the target site is writable", true}
	SuspendingEvent         = Event{2101, "suspendingEvent", Warning, "a sign that a pair stopped mirroring: the consistency group is being frozen", true}
	GroupFrozen             = Event{2102, "groupFrozen", Warning, "every storage system of the consistency group is frozen in time: the secondary image is consistent", true}
	GroupPartial            = Event{2103, "groupPartial", Error, "some storage system of the consistency group may still be mirroring: Suspended (Partial), not recoverable", true}
	GroupThawed             = Event{2104, "groupThawed", Info, "I/O released on the consistency group", true}
	RecoverableChanged      = Event{2105, "recoverableChanged", Warning, "the Recoverable flag of a session changed", true}
	GroupOutOfContact       = Event{2106, "groupOutOfContact", Error, "a storage system of a mirroring consistency group has been unreachable longer than the group's lowest CG timeout: a hold may have been released there unheard, and the secondary image may be inconsistent", true}

	StorageCommFailure   = Event{3001, "storageCommFailure", Error, "communication with a storage system failed", true}
	StorageCommRecovered = Event{3002, "storageCommRecovered", Info, "communication with a storage system recovered", true}
	ConnectTimeoutHint   = Event{3003, "connectTimeoutHint", Warning, "a connection attempt timed out, likely dropped by a firewall", false}
	StorageTrapDropped   = Event{3004, "storageTrapDropped", Warning, "storage traps were dropped: from an address of no defined storage system, with the wrong credentials, malformed, or for a serial their source does not serve", false}

	HeartbeatExpired     = Event{4001, "heartbeatExpired", Error, "a storage system's heartbeat expired: it froze its pairs itself", true}
	HeartbeatSwitched    = Event{4002, "heartbeatSwitched", Info, "the Metro Mirror heartbeat was switched", true}
	HeartbeatNoIP        = Event{4003, "heartbeatNoIP", Warning, "heartbeat on, but a storage system is reachable only through z/OS: the heartbeat cannot reach it", true}
	HeartbeatUnprotected = Event{4004, "heartbeatUnprotected", Error, "the heartbeat cannot be armed on a storage system: it is not protected by it", true}
	GroupUnprotected     = Event{4005, "groupUnprotected", Error, "the heartbeat is on but its timings are unsafe for a consistency group (or its CG timeouts are unknown): the group is not heartbeat-armed, and is frozen on every other sign", true}
	// Said when the heartbeat is switched on, and when a HyperSwap
	// session is created or started while it is on; returned to the
	// admin as a warning too. Not a trap: the NMS hears of a swap through
	// sessionTargetAvailable.
	HeartbeatSkipsHyperSwap = Event{4006, "heartbeatSkipsHyperSwap", Warning, "the heartbeat is on but does not cover HyperSwap sessions: their z/OS hosts protect them, and no heartbeat is sent for their LSS pairs", false}

	HAStateChanged = Event{5001, "haStateChanged", Warning, "the HA connection state changed", true}
	Takeover       = Event{5002, "takeover", Warning, "this server took over as active", true}
	Demoted        = Event{5003, "demoted", Error, "a higher epoch exists: this server stopped acting and became a disconnected standby", true}

	ConfigChanged  = Event{6001, "configChanged", Info, "the configuration was reloaded", true}
	ConfigRefused  = Event{6002, "configRefused", Error, "a new configuration was refused; the old one stays in force", true}
	BackupCreated  = Event{6101, "backupCreated", Info, "a backup of the state was created", false}
	BackupRestored = Event{6102, "backupRestored", Warning, "the state was restored from a backup", true}
	SNMPTest       = Event{6201, "snmpTest", Info, "a test notification, sent on request (lockstepctl snmp test): the path from lockstepd to this manager works", true}

	// A scheduled task's occurrence ended; failed covers a step that
	// failed, an occurrence interrupted by the stop of the server that
	// ran it (not retried), and occurrences reported missed.
	TaskSucceeded = Event{7001, "taskSucceeded", Info, "a scheduled task ran: every step succeeded", true}
	TaskFailed    = Event{7002, "taskFailed", Error, "a scheduled task did not run to the end: a step failed, the server running it stopped (interrupted, not retried), or occurrences were missed", true}
)

// Catalog lists every event, in code order.
var Catalog = []Event{
	DaemonStarted, DaemonStopping, WatchdogWithheld, StateUnwritable, StateWritable,
	SessionStateChanged, SessionDefined, SessionPreparing, SessionPrepared, SessionSuspending, SessionSuspended,
	SessionSuspendedPartial, SessionRecovering, SessionTargetAvailable, SessionSevere, SuspendingEvent, GroupFrozen, GroupPartial, GroupThawed, RecoverableChanged, GroupOutOfContact,
	StorageCommFailure, StorageCommRecovered, ConnectTimeoutHint, StorageTrapDropped,
	HeartbeatExpired, HeartbeatSwitched, HeartbeatNoIP, HeartbeatUnprotected, GroupUnprotected, HeartbeatSkipsHyperSwap,
	HAStateChanged, Takeover, Demoted,
	ConfigChanged, ConfigRefused, BackupCreated, BackupRestored, SNMPTest,
	TaskSucceeded, TaskFailed,
}

// Log writes an event through logger: the catalogue's severity decides
// the level, and the id and MESSAGE_ID travel as attributes.
func Log(logger *slog.Logger, e Event, msg string, args ...any) {
	args = append(args, slog.String(AttrID, e.ID()), slog.String(AttrMessageID, e.MessageID()))
	logger.Log(context.Background(), e.Severity.Level(), msg, args...)
}

// Attribute keys the handlers recognise.
const (
	AttrID        = "msgid"
	AttrMessageID = "MESSAGE_ID"
)
