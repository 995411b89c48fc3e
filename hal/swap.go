package hal

import (
	"context"
	"time"
)

// SwapHost is a z/OS host that runs HyperSwap for Metro Mirror
// Failover/Failback with HyperSwap sessions (docs/architecture.md,
// Sessions): it holds each loaded session's pairs, and it moves its own
// host I/O (the workload's writes) from the H1 volumes to the H2 volumes
// on a planned swap, or on its own when I/O to an H1 storage system fails
// (the system crashed, or the host's channels to it are gone).
//
// The manager reaches it through a z/OS connection (SwapHostFactory); the
// host, not the manager, carries out a swap, so an unplanned swap happens
// even when no manager is running. Every command carries the sender's
// epoch and, like every storage command, is idempotent.
type SwapHost interface {
	// LoadSwap gives the host a session's pairs (Source on H1, Target on
	// H2, as started), replacing what it held for that session: from now
	// on a failure of I/O to an H1 volume of the session swaps the whole
	// session, while its pairs are all full-duplex (a host does not swap
	// to an image that is not current: it reports the I/O error instead).
	LoadSwap(ctx context.Context, epoch Epoch, session string, pairs []VolumePair) error
	// UnloadSwap forgets the session (terminate, or a start in the other
	// direction): no swap happens for it any more. Unknown: no error.
	UnloadSwap(ctx context.Context, epoch Epoch, session string) error
	// Swap is the planned HyperSwap of a loaded session: the host holds
	// the session's host I/O, freezes its LSS pairs, recovers (fails
	// over) the H2 volumes, and re-drives its I/O to them. It returns
	// once the host writes to H2. A session already swapped: no error.
	Swap(ctx context.Context, epoch Epoch, session string) error
	// SwapEvents subscribes to the host's swap reports until ctx is done;
	// the channel is closed then. A report raised while the connection is
	// down is lost, as any pushed event: SwapStatus is the backstop.
	SwapEvents(ctx context.Context) (<-chan SwapEvent, error)
	// SwapStatus is every session the host holds, sorted by name.
	SwapStatus(ctx context.Context, epoch Epoch) ([]SwapState, error)
}

// SwapEvent is a swap the host carried out.
type SwapEvent struct {
	Session string
	// Planned: a Swap command; otherwise the host swapped on its own.
	Planned bool
	// Trigger says what made an unplanned swap ("storage system S crashed",
	// "I/O to S failed"); for a planned one, "hyperswap command".
	Trigger string
	// Host names the z/OS host (system name) that swapped.
	Host string
	At   time.Time
}

// SwapState is one session as a SwapHost holds it.
type SwapState struct {
	Session string
	Pairs   []VolumePair
	// Swapped: the host writes to the Target (H2) volumes now.
	Swapped bool
	// Ready: the host would swap now (every pair full-duplex, every H2
	// volume reachable); Why says why not.
	Ready bool
	Why   string
}

// SwapHostFactory opens the HyperSwap side of one z/OS connection (spec
// Serial is empty; Addresses is the host agent, Sysplex its sysplex).
// Like a Factory, it connects in the background until ctx ends or it is
// closed; an error means the spec cannot be used.
type SwapHostFactory func(ctx context.Context, spec ConnectionSpec) (SwapHostConn, error)

// SwapHostConn is a SwapHost the daemon owns and closes.
type SwapHostConn interface {
	SwapHost
	// Close stops the connection and returns once every goroutine it
	// started has ended.
	Close() error
}
