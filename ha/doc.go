// Package ha owns lockstep's high availability: the roles of
// the two management servers, their HA connection state, the
// synchronization steps, takeover and epochs, and the automatic
// reconnection policy. Its subpackage link is the peer transport.
//
// The package is a pure state machine, Step(state, event, now, config) →
// (state, actions), with no I/O and no clock, and a small Loop that
// applies it on the injected clock and carries out the actions through
// Effects, which the daemon implements. The timing rule of reconnection
// is a pure function too (NextReconnect).
//
// # Roles and states
//
// Roles: standalone (no partner; acts), active (acts), standby (issues
// nothing), disconnected-standby (a former active that learned of a
// higher epoch: issues nothing, sends no heartbeat, runs no scheduled
// work, until it is synchronized as a standby or taken over). The acting
// roles are the only ones that get StartActiveDuties; leaving them
// always emits StopActiveDuties.
//
// HA connection states, with the names an IBM CSM user knows: Unknown,
// Synchronization Pending, Synchronized, Disconnected Consistent,
// Disconnected. A standalone server shows "Standalone" (State.HAState).
//
// # Relationship
//
// `ha set-standby ADDR --name NAME` on a standalone server makes it
// active and connects to ADDR; `ha set-as-standby ADDR --name NAME` on a
// standalone server makes it a standby (it stops acting) and connects to
// the active at ADDR. The other server learns the relationship at the
// first contact, from the Hello of the link: a standalone server that
// meets an active of its epoch (or a higher one) becomes its standby, one
// that meets a standby becomes its active. Each side writes its Hello
// before it reads the other's, so a standby that dialed a standalone server sees it still
// standalone: it synchronizes from it as from its active, which the
// standalone server becomes as it reads the standby's Hello. A second
// link while one is in use is closed
// (ErrLinkInUse); only the active reconnects on its own, so two links at
// once are rare.
// Each server is in at most one relationship: a second one is refused
// ("remove the standby first (ha remove-standby)"). `ha remove-standby`
// (active) returns to standalone; `ha remove-active` (standby, refused
// while synchronized or synchronizing) returns to standalone with a new
// epoch above every epoch seen, so that the two servers never act with
// the same epoch. Role, partner and the highest epoch seen are persisted
// (PersistRelationship) before anything else of the step happens: a
// server restarted before its journal holds an epoch it heard of (a
// synchronization cut short) still takes over above it. So is, as a record whose
// failure is only logged (PersistHAState), the HA state a restart resumes
// from (Relationship.Conn): Disconnected Consistent after a
// synchronization (or during a resynchronization), Disconnected during
// and after a failed first one, Unknown before any. At start an active
// resumes in that state: from Unknown or Disconnected Consistent it
// connects at once and then on the schedule; from Disconnected it waits
// for ha reconnect.
//
// # The partner's identity
//
// Any holder of a certificate of the HA CA passes the link's mutual TLS,
// so the Hello alone proves nothing (docs/architecture.md, Trust). The partner is named:
// NAME of set-standby/set-as-standby, else Config.PartnerName ([ha]
// partner_name), kept in the relationship; or pinned by
// Config.PartnerFingerprint ([ha] partner_fingerprint), the SHA-256 of
// its certificate. Before anything of a LinkUp counts (its epoch too: no
// demotion, no notice, no link served), Step checks PeerInfo.Cert, which
// the link takes from the verified certificate: the pinned fingerprint if
// one is configured, otherwise a DNS or URI subject alternative name
// equal to the partner's name (or urn:lockstep:server:NAME); and a Hello
// that names another server. Anything else is dropped with ErrNotPartner,
// and a server with no partner configured accepts no one. Only links
// taken into use carry EpochNotices, so those come from the partner too.
//
// # Synchronization
//
//	active                                standby
//	LinkUp -> Synchronization Pending,    LinkUp -> Synchronization Pending,
//	          Serve(active), waits                  Serve(standby), TakeBackup
//	                                                (first sync) or
//	                                                TakeAutobackup (resync)
//	                                      BackupTaken -> RequestSync(full =
//	                                                first sync)
//	SyncRequested full -> SendSnapshot    (BackupFailed -> Disconnected (or
//	SyncRequested catch-up -> StartStream  Disconnected Consistent for a
//	SnapshotSent -> StartStream            resync): no sync starts)
//	                                      SnapshotInstalled
//	StreamCaughtUp -> Synchronized        StreamCaughtUp -> Synchronized
//
// Every link taken into use gets a Serve action first: the daemon runs a
// link.Sender on it for the active, a link.Receiver for the standby. A
// record counts as replicated once the standby has fsynced it (package
// link acknowledges only then). Failures:
//
//	event                         active                       standby
//	link lost, Synchronized       Disconnected Consistent,     Disconnected Consistent
//	                              new reconnection series
//	link lost or SyncFailed       Disconnected (first sync),   RestoreBackup (if anything was
//	during a sync                 Disconnected Consistent      received), Disconnected (first
//	                              (resync; the series goes on) sync) or Disconnected Consistent
//	                                                           (resync)
//	RestoreFailed                 -                            Disconnected
//
// A resynchronization is one that starts from Synchronized or Disconnected
// Consistent, also across a restart (the persisted state); from Unknown
// (never synchronized) or Disconnected it is a first synchronization.
//
// # Restoring a backup in place
//
// `backup restore NAME` steps Restore: on a standalone server, and on a
// standby without a link (Disconnected or Disconnected Consistent) or a
// disconnected standby, the Loop runs RestoreFrom before anything else
// (a failure refuses the command and changes nothing); the server keeps
// its role and does not act. A restored standby is Disconnected: its
// state is no longer known to be a prefix of the active's journal, so its
// next synchronization is a full one (after a backup of what was
// restored). Refused on the active and on a standby that is linked,
// synchronizing or dialing.
//
// # Reconnection
//
// While Unknown or Disconnected Consistent without a link, the active
// connects again ReconnectInterval (default 1 min) after the link was
// lost, then one interval after the start of each attempt, up to
// ReconnectAttempts (default 10) attempts; then it emits
// ReconnectStopped and waits for `ha reconnect`, which connects at once
// and starts a new series. An attempt that fails at once does not bring
// the next one closer: never more than one attempt per interval.
// Starting (an active with a partner) and ha set-standby connect once at
// once, outside the count. In Disconnected, reconnection is manual.
//
// # Epochs, takeover, demotion
//
// `ha takeover` (standby or disconnected standby; refused while a
// synchronization is under way) raises the epoch to one above every
// epoch seen, persists it (PersistEpoch, before anything else), tells the
// partner on a live link (NotifyEpoch) and drops the link, starts the
// active duties (Takeover: true, for takeover readiness), and connects to
// the former active once: when that one sees the higher epoch it stops
// acting, and it becomes this server's standby.
//
// An acting server that sees a higher epoch (HigherEpochSeen from an
// epoch notice or a storage system answering fenced, or the Hello of the
// authenticated partner, whether its link is then used or not) becomes a
// disconnected standby at once: StopActiveDuties, its link dropped, emit
// Demoted. It leaves that mode only by being
// synchronized as the standby of an active whose epoch is the highest it
// has seen (a LinkUp from it), or by `ha takeover`.
//
// # Failed persistence
//
// When PersistEpoch or PersistRelationship fails, the Loop runs nothing
// more of that step and steps ActionFailed from the state before it: a
// command is refused with the error, a new link is dropped, and nothing
// changes, except that a server that had to stop acting (a higher epoch)
// stops anyway, without persisting it.
//
// # Basic edition
//
// With Config.Basic every HA command is refused with ErrBasicEdition
// ("HA needs the full edition") and every link is closed.
package ha
