package hal

import "context"

// Console is a connection that fronts several storage systems: an HMC
// connection (one HMC, or two for a dual HMC), opened once and shared by
// every storage system it fronts. The daemon keeps one Console per
// defined connection and hands out Driver(serial) for each system it
// fronts; it learns those systems from the console itself (discovery).
type Console interface {
	// Driver is storage system serial through this connection. reach, if
	// set, hears when the system becomes reachable through the console
	// (some endpoint is up and fronts it) or not, once per change.
	// Closing the Driver releases only that view: the console stays open
	// for the other systems until the Console is closed.
	Driver(serial Serial, reach func(up, timeout bool, detail string)) Driver
	// Attached is every storage system an endpoint of the console said it
	// fronts, sorted.
	Attached() []Serial
	// Endpoints report each endpoint (each HMC), in the configured order.
	Endpoints() []ConsoleEndpoint
	// Close stops the console and every Driver it handed out, and returns
	// once every goroutine it started has ended.
	Close() error
}

// ConsoleEndpoint is one endpoint of a Console (one HMC) as this manager
// sees it.
type ConsoleEndpoint struct {
	Addr string
	// Name is the name the endpoint proved (its certificate), or the
	// configured one before it connected.
	Name string
	Up   bool
	// Attached are the storage systems it said it fronts when it last
	// connected.
	Attached []Serial
	// Detail says why it is not up.
	Detail string
}

// ConsoleSpec is what a ConsoleFactory opens: one console connection.
// Serial is empty; Name is the connection's name, Addresses its
// endpoints, Pin (when set) the SHA-256 of the certificate of a
// single-endpoint console. Reachability is not used: each Driver has its
// own.
type ConsoleSpec struct {
	ConnectionSpec
	// Changed, if set, hears when an endpoint connects or disconnects:
	// what it fronts (Attached) may have changed.
	Changed func()
}

// ConsoleFactory opens the console of one connection kind (hmc). Like a
// Factory, it connects in the background until ctx ends or the console
// is closed; an error means the spec cannot be used.
type ConsoleFactory func(ctx context.Context, spec ConsoleSpec) (Console, error)
