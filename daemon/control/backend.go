package control

import (
	"context"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
)

// Backend is what the daemon does for each lockstepctl verb; the Server
// turns D-Bus calls into calls of these methods, one each. The server has
// parsed and checked the arguments' syntax (serials, session types,
// policies, volumes, commands, the storage spec); the backend checks their
// meaning against its state.
//
// Methods are called concurrently, each in its own goroutine, with a
// context that ends when the server is closed or the Serve context ends.
// An error should wrap one of api.ErrNotFound, ErrInvalid, ErrRefused,
// ErrUnavailable or a sentinel of package session, with a message an
// admin can act on ("disable the heartbeat first: ..."); anything else is
// sent as api.ErrorFailed. Lists may be nil; they are sent as [].
//
// The event history (Events) is not here: the server keeps it from what
// Server.Emit is given.
type Backend interface {
	// Status is the summary of lockstepctl status.
	Status(ctx context.Context) (api.StatusDoc, error)
	// StorageList lists the storage systems, sorted by serial.
	StorageList(ctx context.Context) ([]api.StorageDoc, error)
	// StorageShow is one storage system, api.ErrNotFound if unknown.
	StorageShow(ctx context.Context, serial hal.Serial) (api.StorageDoc, error)
	// SessionList lists the sessions, sorted by name.
	SessionList(ctx context.Context) ([]api.SessionDoc, error)
	// SessionShow is one session, api.ErrNotFound (or
	// session.ErrUnknownSession) if unknown.
	SessionShow(ctx context.Context, name string) (api.SessionDoc, error)
	// HeartbeatShow is the heartbeat switch and what the core does.
	HeartbeatShow(ctx context.Context) (api.HeartbeatDoc, error)
	// BackupList lists the backups, oldest first.
	BackupList(ctx context.Context) ([]api.BackupDoc, error)
	// FirewallHints are the flows this server needs, written in format.
	FirewallHints(ctx context.Context, format api.FirewallFormat) (api.FirewallDoc, error)
	// HAStatus is the HA relationship as this server sees it.
	HAStatus(ctx context.Context) (api.HADoc, error)
	// HMCList lists the HMC connections, sorted by name.
	HMCList(ctx context.Context) ([]api.HMCDoc, error)
	// HMCShow is one HMC connection, api.ErrNotFound if unknown.
	HMCShow(ctx context.Context, name string) (api.HMCDoc, error)
	// ZOSList lists the z/OS connections, sorted by name.
	ZOSList(ctx context.Context) ([]api.ZOSDoc, error)
	// ZOSShow is one z/OS connection, api.ErrNotFound if unknown.
	ZOSShow(ctx context.Context, name string) (api.ZOSDoc, error)

	// StorageAdd adds a storage system, or connections to a known one,
	// and returns warnings (a z/OS-only system while the heartbeat is on).
	StorageAdd(ctx context.Context, spec api.StorageSpec) (warnings []string, err error)
	// StorageRemove removes one connection (connection non-empty) or the
	// whole storage system. Removing the last TCP/IP connection of a
	// system while the heartbeat is on is refused (api.ErrRefused: disable
	// the heartbeat first) unless force; removing a system that sessions
	// use is refused.
	StorageRemove(ctx context.Context, serial hal.Serial, connection string, force bool) (warnings []string, err error)
	// HMCAdd defines an HMC connection; the storage systems it fronts
	// are discovered from it.
	HMCAdd(ctx context.Context, spec api.HMCSpec) (warnings []string, err error)
	// HMCRemove removes an HMC connection, refused (api.ErrRefused) while
	// it is the last TCP/IP connection of a system and the heartbeat is
	// on, unless force.
	HMCRemove(ctx context.Context, name string, force bool) (warnings []string, err error)
	// ZOSAdd defines a z/OS connection for the storage systems its host
	// has online.
	ZOSAdd(ctx context.Context, spec api.ZOSSpec) (warnings []string, err error)
	// ZOSRemove removes a z/OS connection, refused (api.ErrRefused) while
	// it is the only connection of a system a session uses.
	ZOSRemove(ctx context.Context, name string) (warnings []string, err error)
	// SessionCreate defines a session; cg may be empty.
	SessionCreate(ctx context.Context, name string, t session.Type, cg string, p session.Policy) error
	// SessionAddCopySet adds a copy set to a Defined session.
	SessionAddCopySet(ctx context.Context, name string, cs session.CopySet) error
	// SessionCommand runs a session command and returns the session after
	// it; a refusal by the allowed-commands table wraps
	// session.ErrNotAllowed.
	SessionCommand(ctx context.Context, name string, cmd session.Command) (api.SessionDoc, error)
	// SessionRemove removes a Defined session.
	SessionRemove(ctx context.Context, name string) error
	// HeartbeatSet turns the server-wide heartbeat switch on or off and
	// returns warnings (storage systems it cannot reach over TCP/IP).
	HeartbeatSet(ctx context.Context, on bool) (warnings []string, err error)
	// BackupCreate writes a backup now.
	BackupCreate(ctx context.Context) (api.BackupDoc, error)
	// BackupRestore restores a backup after checking every checksum; it
	// changes nothing if one fails.
	BackupRestore(ctx context.Context, name string) error
	// HASetStandby, on the active, makes the server at addr its standby;
	// name is the standby's server name, which its certificate must
	// carry ("": [ha] partner_name).
	HASetStandby(ctx context.Context, addr, name string) error
	// HASetAsStandby makes this server the standby of the active at addr,
	// named name ("": [ha] partner_name).
	HASetAsStandby(ctx context.Context, addr, name string) error
	// HATakeover, on the standby, makes it the active with a raised epoch.
	HATakeover(ctx context.Context) (api.TakeoverDoc, error)
	// HAReconnect retries the connection to the partner now.
	HAReconnect(ctx context.Context) error
	// HARemoveStandby, on the active, ends the relationship.
	HARemoveStandby(ctx context.Context) error
	// HARemoveActive, on the standby, ends the relationship.
	HARemoveActive(ctx context.Context) error
	// SNMPTest sends the test notification to every configured manager
	// and reports, per manager, whether it was sent, acknowledged, failed
	// or is still pending when the wait ends.
	SNMPTest(ctx context.Context) (api.SNMPTestDoc, error)

	// TaskList lists the scheduled tasks, sorted by name.
	TaskList(ctx context.Context) ([]api.TaskDoc, error)
	// TaskShow is one task, api.ErrNotFound if unknown.
	TaskShow(ctx context.Context, name string) (api.TaskDoc, error)
	// TaskCreate defines a task (its schedule and steps checked:
	// api.ErrInvalid); only the acting server changes tasks.
	TaskCreate(ctx context.Context, spec api.TaskSpec) (api.TaskDoc, error)
	// TaskEnable enables (on) or disables a task.
	TaskEnable(ctx context.Context, name string, on bool) (api.TaskDoc, error)
	// TaskRun asks for one run of a task at at (the zero time: now),
	// enabled or not.
	TaskRun(ctx context.Context, name string, at time.Time) (api.TaskDoc, error)
	// TaskRemove removes a task; refused while an occurrence runs.
	TaskRemove(ctx context.Context, name string) error
}
