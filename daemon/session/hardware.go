package session

import (
	"context"
	"fmt"
	"strings"

	"github.com/lockstep-io/lockstep/hal"
)

// Hardware is what the freeze core (daemon/freeze) does on the storage
// systems for a command. The session passed is a copy taken after the
// command's transitional record, so it shows the direction the command
// works in. Every method returns when the hardware has done its part or
// failed; the Manager records the outcome. Implementations report through
// the return value, not by proposing records of their own for the same
// session: those would make the command's outcome a conflict.
type Hardware interface {
	// StartH1H2 establishes paths and pairs H1->H2 (a resync if the pairs
	// exist suspended) and returns once the copy started. It also ends a
	// hold of the session's source LSSs: writes are mirrored again; and
	// those of the frozen sessions of its scope, which it records itself
	// (Manager.MarkReleased): a consistency group that mirrors again holds
	// nothing.
	StartH1H2(ctx context.Context, s *Session) error
	// StartH2H1 is StartH1H2 in the failback direction.
	StartH2H1(ctx context.Context, s *Session) error
	// Suspend freezes every LSS pair of every session of s's scope
	// (DB.Scope) and, under the release-io policy, thaws once every freeze
	// is certain. It returns nil only if every freeze is certain; an error
	// (wrapping ErrPartialFreeze when some systems did not confirm and are
	// not known safe) leaves the scope Suspended (Partial).
	Suspend(ctx context.Context, s *Session) error
	// ReleaseIO thaws the source LSSs of s's scope. The core checks the
	// thaw invariant (daemon/freeze/doc.go) and refuses with an error if a system
	// of the scope might still be mirroring.
	ReleaseIO(ctx context.Context, s *Session) error
	// Recover makes the volumes at the target site of s.Direction
	// writable (failover).
	Recover(ctx context.Context, s *Session) error
	// Terminate removes the session's pairs on every system that holds a
	// volume of them, then the paths of its copy sets (either direction)
	// that no other session uses and no pair still needs, leaving its
	// volumes simplex. It never ends a hold (the allowed-commands table
	// refuses terminate while the session holds I/O). Idempotent: a
	// terminate that failed midway is completed by the next one.
	Terminate(ctx context.Context, s *Session) error
	// Refresh queries the session's pairs and summarises them.
	Refresh(ctx context.Context, s *Session) (Observed, error)
}

// Vetter is a Hardware that can refuse a command before anything is
// recorded or sent to storage (optional: the Manager asks with a type
// assertion). The freeze core's engine refuses a start whose
// consistency group the heartbeat could not protect. A refusal wraps
// ErrVetoed; the session is left exactly as it was.
type Vetter interface {
	Vet(ctx context.Context, s *Session, cmd Command) error
}

// Swapper is a Hardware that can HyperSwap (optional: the Manager asks
// with a type assertion; without it a hyperswap is refused before
// anything is recorded).
type Swapper interface {
	// HyperSwap has the z/OS hosts of s swap its host I/O to the target
	// site of s.Direction, then freezes the scope as Hardware.Suspend
	// does, whatever the swap's outcome (the host decides whether its
	// image will do: it swaps only full-duplex pairs). The host goes
	// first: it holds its own I/O, so no write completes on the source
	// site alone between the freeze and the swap. It returns once every
	// host writes to the target site, with their names ("SYS1, SYS2"),
	// the swap's error and the freeze's.
	HyperSwap(ctx context.Context, s *Session) (hosts string, swapErr, freezeErr error)
}

// Swap is a swap a z/OS host reported (Manager.MarkSwapped): it writes
// the session's host I/O to the target volumes now.
type Swap struct {
	// Planned: a hyperswap command; otherwise the host swapped on its own.
	Planned bool
	// Host is the z/OS host (system name) that swapped; Trigger what made
	// it ("storage system S crashed").
	Host, Trigger string
}

// Contact is what the freeze core reports of its contact with the
// storage systems of a mirroring consistency group (Manager.MarkContact).
type Contact struct {
	// Lost: some storage system of the group cannot be reached now.
	Lost bool
	// Severe: one has been out of contact longer than the group's lowest
	// CG timeout: it may have suspended and released held writes unheard,
	// so the secondary image may be inconsistent.
	Severe bool
	// Reason names the systems and since when ("" once every one answers).
	Reason string
}

// Observed is what the hardware says about a session's pairs, as Refresh
// or a periodic poll of the core found it.
type Observed struct {
	// Pairs counts the copy sets by the state of their volume at the
	// source site of the session's direction (the H1 volume for H1->H2).
	// Copy sets on unreachable systems are not counted.
	Pairs map[hal.PairState]int
	// Suspended lists the counted pairs found suspended, with their reason.
	Suspended []hal.PairStatus
	// Recovered counts the copy sets whose volume at the target site was
	// made writable by a recover (a suspended source, reason failover).
	Recovered int
	// IOHeld: some source LSS of the session holds host writes (ELB).
	IOHeld bool
	// Unreachable lists the storage systems that could not be queried.
	Unreachable []hal.Serial
}

// Total is the number of copy sets counted in Pairs.
func (o Observed) Total() int {
	n := 0
	for _, c := range o.Pairs {
		n += c
	}
	return n
}

// summary is a short, deterministic description for a Reason:
// "2 full-duplex, 1 suspended (path 1)".
func (o Observed) summary() string {
	var parts []string
	for st := hal.Simplex; st <= hal.TargetSuspended; st++ {
		if n := o.Pairs[st]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, st))
		}
	}
	var reasons []string
	byReason := map[hal.SuspendReason]int{}
	for _, p := range o.Suspended {
		byReason[p.Reason]++
	}
	for r := hal.ReasonNone; r <= hal.ReasonTarget; r++ {
		if n := byReason[r]; n > 0 {
			reasons = append(reasons, fmt.Sprintf("%s %d", r, n))
		}
	}
	s := strings.Join(parts, ", ")
	if len(reasons) > 0 {
		s += " (" + strings.Join(reasons, ", ") + ")"
	}
	if o.Recovered > 0 {
		s += fmt.Sprintf(", %d recovered", o.Recovered)
	}
	if s == "" {
		return "no pairs"
	}
	return s
}
