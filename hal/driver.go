package hal

import (
	"context"
	"crypto/x509"
	"log/slog"
	"time"

	"github.com/lockstep-io/lockstep/hal/clock"
)

// ConnectionKind is how a manager reaches a storage system
// (docs/architecture.md, Storage connections). It is the one type for it: the registry records it, the admin
// API shows it (api.ConnectionKind is this type), and cmd/lockstepd maps
// each kind to the Factory of its driver.
type ConnectionKind string

const (
	// Direct is TCP/IP to the storage system's two cluster endpoints.
	Direct ConnectionKind = "direct"
	// HMC is TCP/IP through one or two management consoles.
	HMC ConnectionKind = "hmc"
	// ZOS is in-band through a z/OS host agent of a sysplex; it cannot
	// carry the heartbeat.
	ZOS ConnectionKind = "zos"
)

// Valid reports whether k is a known kind.
func (k ConnectionKind) Valid() bool { return k == Direct || k == HMC || k == ZOS }

// CarriesHeartbeat reports whether the Metro Mirror heartbeat can flow
// over a connection of this kind (TCP/IP ones only).
func (k ConnectionKind) CarriesHeartbeat() bool { return k == Direct || k == HMC }

// ConnectionSpec is what a Factory opens: one connection of one storage
// system, with the manager's credentials for it and the trust that
// verifies it. The daemon builds it from its registry and configuration
// (it reads the password file itself); a driver takes what its kind
// needs and ignores the rest.
type ConnectionSpec struct {
	Serial Serial
	// Name is the connection's name in the registry (for logs).
	Name string
	// Addresses are host:port: the two cluster endpoints (direct; one
	// address serves both), one or two HMCs (hmc), the host agent (zos).
	Addresses []string
	// Sysplex is the z/OS host's sysplex (zos only).
	Sysplex string
	// Manager is this manager's name, sent in the handshake.
	Manager  string
	User     string
	Password string
	// Roots is the storage CA (never the system roots); a driver refuses
	// to connect without it.
	Roots *x509.CertPool
	// Pin, when set, is the SHA-256 of the storage system's certificate,
	// which then proves its identity instead of naming the serial.
	Pin []byte

	Clock  clock.Clock  // nil: real time
	Logger *slog.Logger // nil: discard
	// Reachability, if set, hears when the storage system becomes
	// reachable (up) or unreachable; timeout says whether it stopped
	// answering rather than refusing. A driver calls it once per change.
	Reachability func(up, timeout bool, detail string)
	// DialTimedOut, if set, hears of every connect that got no answer at
	// all (most likely a firewall dropping it), with the address.
	DialTimedOut func(addr string)
	// KeepAlive is how often a live connection is pinged (0: the
	// driver's default, 1 s); one whose ping goes unanswered for three
	// intervals is closed as silent, and its commands are sent again on
	// another connection.
	KeepAlive time.Duration
}

// Driver is a StorageSystem opened by a Factory, which the daemon owns:
// it asks which endpoint carries the commands, and closes it.
type Driver interface {
	StorageSystem
	// Via names the endpoint that carries commands now ("cluster 1",
	// "HMC hmc2:1751"); "" while none answers.
	Via() string
	// Close stops the driver and returns once every goroutine it started
	// has ended; no command runs after it.
	Close() error
}

// Factory opens the driver of one connection kind. The driver connects
// in the background until ctx ends or it is closed, whichever comes
// first; an error means the spec cannot be used (no CA, a bad address),
// not that the storage system is unreachable, which the driver keeps
// retrying and reports through Reachability.
type Factory func(ctx context.Context, spec ConnectionSpec) (Driver, error)
