package control

import (
	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
)

// The conversions from the daemon's model to the API's documents. They
// live here, on the server's side, so that package api (and every client
// of it) stays free of the model; TestWordsMatchTheModel holds the two
// vocabularies equal.

// NewSessionDoc is the document of s, with its available commands.
func NewSessionDoc(s *session.Session) api.SessionDoc {
	copySets := make([]api.CopySet, 0, len(s.CopySets))
	for _, cs := range s.CopySets {
		copySets = append(copySets, api.CopySet{H1: cs.H1, H2: cs.H2})
	}
	allowed := session.Allowed(s)
	commands := make([]api.SessionCommand, 0, len(allowed))
	for _, c := range allowed {
		commands = append(commands, api.SessionCommand(c))
	}
	return api.SessionDoc{
		Name:              s.Name,
		Type:              api.SessionType(s.Type),
		CG:                s.CGName,
		Policy:            api.SuspendPolicy(s.Policy),
		State:             api.SessionState(s.State.Kebab()),
		Status:            api.SessionStatus(s.Status.Kebab()),
		Recoverable:       s.Recoverable,
		Copying:           s.Copying,
		Error:             s.Error,
		IOHeld:            s.IOHeld,
		ActiveSite:        api.Site(s.ActiveSite),
		Direction:         api.Direction(s.Direction),
		CopySets:          copySets,
		AvailableCommands: commands,
		Reason:            s.Reason,
		LastChange:        s.LastChange,
	}
}

// NewHeartbeatGroupDoc is the document of a group as the core reports it.
func NewHeartbeatGroupDoc(g freeze.GroupStatus) api.HeartbeatGroupDoc {
	d := api.HeartbeatGroupDoc{
		Name: g.Name, Phase: g.Phase.String(), Reason: g.Reason, Since: g.Since, H: api.Duration(g.H),
		Unprotected: g.Unprotected, Systems: []api.HeartbeatSystemDoc{},
	}
	for _, m := range g.Systems {
		d.Systems = append(d.Systems, api.HeartbeatSystemDoc{
			Serial: m.Serial, LSSPairs: lssPairStrings(m.Pairs), Armed: m.Armed, Acked: m.Acked, LastSent: m.LastSent, LastReply: m.LastReply,
			Unreachable: m.Lost, LastContact: m.LastContact,
		})
	}
	return d
}

func lssPairStrings(pairs []hal.LSSPair) []string {
	out := make([]string, 0, len(pairs))
	for _, lp := range pairs {
		out = append(out, lp.String())
	}
	return out
}

// orEmpty makes a nil list an empty one, so that JSON shows [] not null.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
