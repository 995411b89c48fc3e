package session

import (
	"fmt"
	"slices"
	"strings"
)

// Command is an admin command to a session, in its CLI (kebab-case) form.
type Command string

const (
	CmdStartH1H2 Command = "start-h1-h2"
	CmdStartH2H1 Command = "start-h2-h1"
	CmdSuspend   Command = "suspend"
	CmdReleaseIO Command = "release-io"
	CmdRecover   Command = "recover"
	CmdTerminate Command = "terminate"
	CmdRefresh   Command = "refresh"
	CmdHyperSwap Command = "hyperswap"
)

// Commands is every command, in the order lists show them.
func Commands() []Command {
	return []Command{CmdStartH1H2, CmdStartH2H1, CmdSuspend, CmdHyperSwap, CmdReleaseIO, CmdRecover, CmdTerminate, CmdRefresh}
}

func (c Command) String() string { return string(c) }

// Valid reports whether c is a known command.
func (c Command) Valid() bool { return slices.Contains(Commands(), c) }

// Label is the name used in documentation.
func (c Command) Label() string {
	switch c {
	case CmdStartH1H2:
		return "Start H1->H2"
	case CmdStartH2H1:
		return "Start H2->H1"
	case CmdSuspend:
		return "Suspend"
	case CmdReleaseIO:
		return "Release I/O"
	case CmdRecover:
		return "Recover"
	case CmdTerminate:
		return "Terminate"
	case CmdRefresh:
		return "Refresh States"
	case CmdHyperSwap:
		return "HyperSwap"
	}
	return fmt.Sprintf("Command(%q)", string(c))
}

// ParseCommand parses the CLI form, ignoring case.
func ParseCommand(s string) (Command, error) {
	c := Command(strings.ToLower(s))
	if !c.Valid() {
		return "", fmt.Errorf("session: unknown command %q", s)
	}
	return c, nil
}

// rule is one row of the allowed-commands table: cmd may be issued to a
// session in state, unless unless says why not for this session.
type rule struct {
	state  State
	cmd    Command
	unless func(s *Session) string
}

// rules is the allowed-commands table (after CSM's Metro Mirror sessions).
// A (state, command) pair with no row is refused. Commands to one session
// run one at a time, so a transitional state (Suspending, Recovering) is
// seen by a command only when something else put the session there: the
// freeze core, or a crash in the middle of a command; then only a refresh,
// which asks the hardware, can tell what is true.
func rules() []rule {
	return []rule{
		// Defined: nothing is on the hardware. Copying starts from the
		// production site: H1, or H2 for a failover/failback session
		// terminated after a recover to H2.
		{Defined, CmdStartH1H2, startFrom(H1)},
		{Defined, CmdStartH2H1, startFrom(H2)},

		// Preparing: the initial copy or a resync runs.
		{Preparing, CmdStartH1H2, startFrom(H1)}, // establish is idempotent: completes a start that failed midway
		{Preparing, CmdStartH2H1, startFrom(H2)}, // same, the other way
		{Preparing, CmdSuspend, always},          // freezes the scope; the image will not be recoverable (copy incomplete)
		{Preparing, CmdTerminate, ioNotHeld},     // removes the pairs and paths
		{Preparing, CmdRefresh, always},          // asks the hardware; moves to Prepared when every pair is full-duplex

		// Prepared: every pair full-duplex.
		{Prepared, CmdStartH1H2, startFrom(H1)}, // idempotent re-start, harmless
		{Prepared, CmdStartH2H1, startFrom(H2)},
		{Prepared, CmdSuspend, always},      // the planned, consistent freeze of the scope
		{Prepared, CmdHyperSwap, hyperSwap}, // the z/OS host swaps to the target site, then the group is frozen
		{Prepared, CmdTerminate, ioNotHeld}, // removes the pairs and paths
		{Prepared, CmdRefresh, always},

		// Suspending: a freeze is under way; its outcome decides.
		{Suspending, CmdRefresh, always},

		// Suspended: every pair of the scope certainly frozen.
		{Suspended, CmdStartH1H2, startFrom(H1)}, // resync; the target is inconsistent until Prepared again
		{Suspended, CmdStartH2H1, startFrom(H2)},
		{Suspended, CmdReleaseIO, ioHeld},    // hold-io: the admin has seen the scope; let writes go on, unmirrored
		{Suspended, CmdRecover, recoverable}, // only a known-consistent image may be made writable
		{Suspended, CmdTerminate, ioNotHeld}, // removes the pairs and paths, once I/O is released
		{Suspended, CmdRefresh, always},

		// Suspended (Partial): a freeze not confirmed everywhere. No
		// recover: the image is not known consistent, by definition.
		{SuspendedPartial, CmdStartH1H2, startFrom(H1)}, // resync: the way back to a consistent image
		{SuspendedPartial, CmdStartH2H1, startFrom(H2)},
		{SuspendedPartial, CmdSuspend, always},   // retries the freeze (idempotent) on the systems that did not confirm
		{SuspendedPartial, CmdReleaseIO, ioHeld}, // the core still checks the thaw invariant and may refuse
		{SuspendedPartial, CmdTerminate, ioNotHeld},
		{SuspendedPartial, CmdRefresh, always},

		// Recovering: the target volumes are being made writable.
		{Recovering, CmdRefresh, always},

		// Target Available: production may run at the recovered site.
		// Failover/failback copies back from there; a single-direction
		// session can only be terminated (then started H1->H2 again,
		// overwriting what was written at H2).
		{TargetAvailable, CmdStartH1H2, failback(H1)},
		{TargetAvailable, CmdStartH2H1, failback(H2)},
		{TargetAvailable, CmdReleaseIO, ioHeld}, // recover under hold-io leaves the old production site's writes held
		{TargetAvailable, CmdTerminate, ioNotHeld},
		{TargetAvailable, CmdRefresh, always},
	}
}

func always(*Session) string { return "" }

// hyperSwap: only a HyperSwap session swaps, and only from Prepared (its
// row): a host swaps only to an image that is current (every pair
// full-duplex). From Preparing the target is not yet a copy; from
// Suspended or Suspended (Partial) the pairs no longer mirror and the
// way to the target site is recover (an admin's decision that the image
// there will do), as for any failover/failback session; in Target
// Available the host already writes to the target.
func hyperSwap(s *Session) string {
	if !s.Type.HyperSwap() {
		return "only a " + MetroMirrorHyperSwap.Label() + " session swaps; use suspend and recover"
	}
	if len(s.CopySets) == 0 {
		return "no copy sets"
	}
	return ""
}

func ioHeld(s *Session) string {
	if !s.IOHeld {
		return "I/O is not held"
	}
	return ""
}

// ioNotHeld: terminate removes the pairs but never ends a hold: whether
// the held writes may go on unmirrored is the admin's decision
// (release-io), taken before the pairs are gone.
func ioNotHeld(s *Session) string {
	if s.IOHeld {
		return "I/O is held: release it first (release-io), then terminate"
	}
	return ""
}

func recoverable(s *Session) string {
	if !s.Recoverable {
		return "not recoverable"
	}
	return ""
}

// startFrom allows a start that copies from site only when site is the
// production site, so that no start overwrites production data.
func startFrom(site Site) func(*Session) string {
	return func(s *Session) string {
		switch {
		case site == H2 && s.Type == MetroMirrorSingleDirection:
			return "a single-direction session copies H1->H2 only"
		case s.ActiveSite != site:
			return "production is at " + s.ActiveSite.String()
		case len(s.CopySets) == 0:
			return "no copy sets"
		}
		return ""
	}
}

// failback is startFrom for a recovered session: failover/failback only.
func failback(site Site) func(*Session) string {
	return func(s *Session) string {
		if s.Type == MetroMirrorSingleDirection {
			return "a single-direction session cannot copy back; terminate it"
		}
		return startFrom(site)(s)
	}
}

// Allowed is the list of commands the session accepts now, in the order
// of Commands: the CLI's "available commands".
func Allowed(s *Session) []Command {
	var out []Command
	for _, r := range rules() {
		if r.state == s.State && r.unless(s) == "" {
			out = append(out, r.cmd)
		}
	}
	slices.SortFunc(out, func(a, b Command) int {
		return slices.Index(Commands(), a) - slices.Index(Commands(), b)
	})
	return out
}

// CheckCommand returns nil if s accepts cmd now, else a *NotAllowedError
// (errors.Is(err, ErrNotAllowed)).
func CheckCommand(s *Session, cmd Command) error {
	unless := ""
	for _, r := range rules() {
		if r.state == s.State && r.cmd == cmd {
			if unless = r.unless(s); unless == "" {
				return nil
			}
		}
	}
	return &NotAllowedError{Command: cmd, State: s.State, Unless: unless, Allowed: Allowed(s)}
}
