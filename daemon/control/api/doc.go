// Package api is the contract of lockstepd's admin API on D-Bus
// (docs/operations.md), and nothing else: the bus name, object and interfaces,
// the D-Bus error names and the sentinels they stand for, the JSON
// documents the methods answer and take, and the value types and checks
// a client needs to build arguments (StorageSpec, CheckHostPort, the
// words of a session). It imports only the standard library and hal's
// value types, so that lockstepctl (and any other client) links the API
// without the daemon's core; the server (package control) and the client
// (package control/client) both speak it. The conversions from the
// daemon's model to these documents live with the server.
//
// # Bus, name, object
//
// lockstepd owns the name org.lockstep.Manager1 on the system bus (any bus
// for tests: see client.Connect) and exports one object, /org/lockstep/Manager1,
// with four interfaces:
//
//	org.lockstep.Manager1            reads, the Event signal, the properties
//	org.lockstep.Manager1.Admin      changes
//	org.freedesktop.DBus.Properties  Get, GetAll, Set (every property is read-only)
//	org.freedesktop.DBus.Introspectable
//
// The two lockstep interfaces are split so that the policy can be per
// interface: root and group lockstep may call everything; everyone else
// may call the reads, Properties.Get and GetAll, Introspect and Peer, and
// receive the signals, but not the changes nor Properties.Set. Only user
// lockstep (and root) may own the name. The bus enforces this, and the
// server checks every change again itself (package control says how), so
// that a bus without the policy is not an open door: a change from
// anyone but root, the daemon's own user and the members of the admin
// group gets org.freedesktop.DBus.Error.AccessDenied saying who was
// refused and why, before the method looks at its arguments. Reads stay
// open.
//
// # Methods
//
// Every method is one lockstepctl verb. "s" answers are JSON documents,
// of the types named on the right; a list answer is a JSON array, [] when
// empty.
//
// org.lockstep.Manager1 (reads):
//
//	Status() -> s                                 StatusDoc
//	StorageList() -> s                            []StorageDoc
//	StorageShow(serial s) -> s                    StorageDoc
//	SessionList() -> s                            []SessionDoc
//	SessionShow(name s) -> s                      SessionDoc
//	HeartbeatShow() -> s                          HeartbeatDoc
//	BackupList() -> s                             []BackupDoc
//	Events(since t) -> s                          []EventDoc numbered above since
//	FirewallHints(format s) -> s                  FirewallDoc; format text|nft|iptables, "" = text
//	HAStatus() -> s                               HADoc
//	TaskList() -> s                               []TaskDoc
//	TaskShow(name s) -> s                         TaskDoc
//	HMCList() -> s                                []HMCDoc
//	HMCShow(name s) -> s                          HMCDoc
//	ZOSList() -> s                                []ZOSDoc
//	ZOSShow(name s) -> s                          ZOSDoc
//
// org.lockstep.Manager1.Admin (changes):
//
//	StorageAdd(spec s) -> s                       spec: StorageSpec; answer: WarningsDoc
//	StorageRemove(serial s, connection s, force b) -> s
//	                                              connection "" = the whole system; WarningsDoc
//	HMCAdd(spec s) -> s                           spec: HMCSpec; answer: WarningsDoc
//	HMCRemove(name s, force b) -> s               WarningsDoc
//	ZOSAdd(spec s) -> s                           spec: ZOSSpec; answer: WarningsDoc
//	ZOSRemove(name s) -> s                        WarningsDoc
//	SessionCreate(name s, type s, cg s, policy s) type mm-single-direction|mm-failover-failback,
//	                                              cg may be "", policy hold-io|release-io
//	SessionAddCopySet(name s, h1 s, h2 s)         volumes as SERIAL/VVVV
//	SessionCommand(name s, command s) -> s        start-h1-h2|start-h2-h1|suspend|release-io|
//	                                              recover|terminate|refresh; SessionDoc after it
//	SessionRemove(name s)
//	HeartbeatSet(on b) -> s                       WarningsDoc
//	BackupCreate() -> s                           BackupDoc
//	BackupRestore(name s)
//	HASetStandby(address s, name s)               tcp://host:port or vsock://cid:port; name: the
//	                                              partner's server name, which its certificate
//	                                              must carry ("" = [ha] partner_name)
//	HASetAsStandby(address s, name s)
//	HATakeover() -> s                             TakeoverDoc
//	HAReconnect()
//	HARemoveStandby()
//	HARemoveActive()
//	TaskCreate(spec s) -> s                       spec: TaskSpec; answer: TaskDoc
//	TaskEnable(name s, on b) -> s                 enable (on) or disable; TaskDoc
//	TaskRun(name s, at t) -> s                    run once at at (microseconds since the
//	                                              Unix epoch; 0 = now), enabled or not;
//	                                              TaskDoc
//	TaskRemove(name s)                            refused while an occurrence runs
//
// The server checks the syntax of arguments (serials, types, policies,
// volumes, commands, the spec, which it decodes strictly: an unknown field
// is an error) and answers InvalidArgs before the daemon sees them.
//
// # Properties (org.lockstep.Manager1, read-only)
//
//	Role       s  "active", "standby", "disconnected-standby" ("unknown" at start)
//	HAState    s  "Unknown", "Synchronization Pending", "Synchronized",
//	              "Disconnected Consistent", "Disconnected", "Standalone"
//	Heartbeat  b  the server-wide heartbeat switch
//	Epoch      t  the fencing epoch
//	Version    s  lockstepd's version
//
// org.freedesktop.DBus.Properties.PropertiesChanged is emitted on the
// object, once per change, with the properties that changed and their new
// values (never invalidated-only).
//
// # Signals
//
//	org.lockstep.Manager1.Event(seq t, id s, severity s, text s, fields s, at t)
//
// One per operator-visible event. seq numbers events from 1; id is the
// stable message id ("LS-2001-W"); severity is info, warning or error;
// fields is a JSON object of strings ("{}" if none); at is the event's
// time in microseconds since the Unix epoch (0 if unknown). The server
// keeps the last 1024 events for Events. To follow without a gap,
// subscribe first (client.Client.Follow), then read Events(0), then print
// followed events whose seq is above the last one printed.
//
// # Errors
//
//	org.lockstep.Manager1.Error.NotAllowed   the session command is not allowed in
//	                                         the session's state (ErrNotAllowed)
//	org.lockstep.Manager1.Error.NotFound     no such storage system, connection,
//	                                         session or backup (ErrNotFound)
//	org.lockstep.Manager1.Error.InvalidArgs  a malformed argument (ErrInvalid)
//	org.lockstep.Manager1.Error.Refused      not in the current state; the message
//	                                         says what to do first (ErrRefused)
//	org.lockstep.Manager1.Error.Unavailable  not here or not now: HA in the basic
//	                                         edition, shutting down, the journal
//	                                         cannot write (ErrUnavailable)
//	org.lockstep.Manager1.Error.Failed       anything else (ErrFailed)
//	org.freedesktop.DBus.Error.AccessDenied  a change from a caller that may not
//	                                         change (ErrAccessDenied)
//
// The message of each is the Go error's text. The client maps these names
// back, and also AccessDenied from the bus's policy to ErrAccessDenied,
// ServiceUnknown/NameHasNoOwner (no lockstepd) to
// ErrUnavailable, and org.freedesktop.DBus.Error.InvalidArgs (wrong D-Bus
// types) to ErrInvalid, all as *client.RemoteError values that errors.Is
// matches.
// lockstepctl exits 2 for ErrInvalid and 1 for the others.
//
// # Compatibility
//
// Methods, arguments and signal arguments are never changed or removed;
// new ones may be added, and documents only gain fields. A breaking change
// would be a new name, org.lockstep.Manager2.
package api
