package tasks

import (
	"fmt"
	"strings"
	"time"

	"github.com/lockstep-io/lockstep/daemon/session"
)

// DefaultWait is a wait step's timeout when it names none.
const DefaultWait = 10 * time.Minute

// MaxWait bounds a wait step's timeout: a task occurrence is not a
// daemon of its own.
const MaxWait = 24 * time.Hour

// Step is one step of a task: a session command, or a wait until a
// session reaches a state.
type Step struct {
	Command session.Command // "" for a wait
	Session string
	State   session.State // a wait's
	Timeout time.Duration // a wait's
}

// Wait reports a wait step.
func (s Step) Wait() bool { return s.Command == "" }

// ParseStep parses one of
//
//	COMMAND SESSION                  e.g. "suspend prod", "start-h1-h2 prod"
//	wait SESSION STATE [timeout D]   e.g. "wait prod prepared timeout 15m"
//
// COMMAND is a session command (kebab-case), STATE a session state
// (kebab-case or its label: "target-available", "Target Available").
func ParseStep(s string) (Step, error) {
	f := strings.Fields(s)
	bad := func(why string) (Step, error) {
		return Step{}, fmt.Errorf("%w: step %q: %s (want \"COMMAND SESSION\" or \"wait SESSION STATE [timeout D]\")", ErrSyntax, s, why)
	}
	if len(f) < 2 {
		return bad("too short")
	}
	if !ValidName(f[1]) {
		return bad("the session name is not valid")
	}
	if !strings.EqualFold(f[0], "wait") {
		if len(f) != 2 {
			return bad("a command takes one session")
		}
		c, err := session.ParseCommand(f[0])
		if err != nil {
			return bad(err.Error())
		}
		return Step{Command: c, Session: f[1]}, nil
	}
	rest, timeout := f[2:], DefaultWait
	if n := len(rest); n >= 2 && strings.EqualFold(rest[n-2], "timeout") {
		d, err := time.ParseDuration(rest[n-1])
		if err != nil || d <= 0 || d > MaxWait || d%time.Second != 0 {
			return bad("the timeout must be whole seconds, above 0 and at most " + MaxWait.String())
		}
		rest, timeout = rest[:n-2], d
	}
	if len(rest) == 0 {
		return bad("a wait names a state")
	}
	st, err := session.ParseState(strings.Join(rest, " "))
	if err != nil {
		return bad(err.Error())
	}
	return Step{Session: f[1], State: st, Timeout: timeout}, nil
}

// String is the canonical text, which the journal stores.
func (s Step) String() string {
	if s.Wait() {
		return fmt.Sprintf("wait %s %s timeout %s", s.Session, s.State.Kebab(), s.Timeout)
	}
	return fmt.Sprintf("%s %s", s.Command, s.Session)
}
