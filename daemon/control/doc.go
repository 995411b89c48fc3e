// Package control is the server side of lockstepd's admin API on D-Bus
// (docs/operations.md): Serve owns the bus name and exports the object, turns
// each method call into a call of the Backend the daemon implements,
// keeps the recent events and the properties, and emits the signals. It
// also owns what only the server may know: the mapping from the daemon's
// errors (its own sentinels and the session model's) to the D-Bus error
// names, the conversions from the daemon's model (session.Session,
// freeze.GroupStatus) to the documents, and the parsing of every argument
// with the model's own rules. The contract itself (names, documents,
// errors, value types) is package control/api; the client lockstepctl
// uses is package control/client, which links the contract and never
// this package or the core. The bus policy that goes with it is
// systemd/org.lockstep.Manager1.conf.
//
// # Who may change
//
// The bus policy lets root and group lockstep call the changes, and only
// user lockstep (and root) own the name. The server checks every change
// again itself (docs/architecture.md, Trust), so that a bus without the policy (a
// session bus, a test bus, a policy edited by mistake) is not an open
// door: it asks the bus for the caller's uid (GetConnectionUnixUser) and
// lets root, the daemon's own user and the members of the admin group
// (Options.AdminGroup, config key control.admin_group, default lockstep;
// membership by the user database, as the policy's group= rule reads it)
// through; anyone else gets org.freedesktop.DBus.Error.AccessDenied
// saying who was refused and why, before the method looks at its
// arguments. Reads stay open. Each change, and each refusal, is logged
// with the caller's unique name and uid.
//
// # Arguments
//
// The server checks the syntax of arguments (serials, types, policies,
// volumes, commands, the storage spec, which it decodes strictly: an
// unknown field is an error) with the session model's parsers and api's
// checks, and answers InvalidArgs before the daemon sees them. The method
// table (methods.go) is the single description of the bus surface:
// introspection is built from it, and a test holds it equal to the Go
// methods exported.
package control
