package control

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
)

// TestWordsMatchTheModel holds package api's words of a session equal to
// the session model's, in the same order: a word added to the model and
// not to the API (or the other way round) fails here, not in front of an
// admin whose lockstepctl refuses a command the daemon knows.
func TestWordsMatchTheModel(t *testing.T) {
	t.Parallel()
	var states, statuses []string
	var stateLabels, statusLabels []string
	for s := session.State(0); s.Valid(); s++ {
		states, stateLabels = append(states, s.Kebab()), append(stateLabels, s.String())
	}
	for s := session.Status(0); s.Valid(); s++ {
		statuses, statusLabels = append(statuses, s.Kebab()), append(statusLabels, s.String())
	}
	var apiStateLabels, apiStatusLabels []string
	for _, s := range api.SessionStates() {
		apiStateLabels = append(apiStateLabels, s.Label())
	}
	for _, s := range api.SessionStatuses() {
		apiStatusLabels = append(apiStatusLabels, s.Label())
	}
	for _, tc := range []struct {
		name      string
		model, in []string
	}{
		{"commands", words(session.Commands()), words(api.SessionCommands())},
		{"types", words([]session.Type{session.MetroMirrorFailoverFailback, session.MetroMirrorSingleDirection, session.MetroMirrorHyperSwap}), words(api.SessionTypes())},
		{"policies", words([]session.Policy{session.HoldIO, session.ReleaseIO}), words(api.SuspendPolicies())},
		{"sites", words([]session.Site{session.H1, session.H2}), words([]api.Site{api.H1, api.H2})},
		{"directions", words([]session.Direction{session.H1ToH2, session.H2ToH1}), words([]api.Direction{api.H1ToH2, api.H2ToH1})},
		{"states", states, words(api.SessionStates())},
		{"state labels", stateLabels, apiStateLabels},
		{"statuses", statuses, words(api.SessionStatuses())},
		{"status labels", statusLabels, apiStatusLabels},
	} {
		diff(t, tc.name+" (model, api)", tc.model, tc.in)
	}
	// Every word the model parses, the API parses to the same word, and
	// the other way round (the model's Valid lists are not exported for
	// types and policies: parse both ways instead).
	for _, w := range words(api.SessionTypes()) {
		if _, err := session.ParseType(w); err != nil {
			t.Errorf("api type %q: the model refuses it: %v", w, err)
		}
	}
	for _, w := range words(api.SuspendPolicies()) {
		if _, err := session.ParsePolicy(w); err != nil {
			t.Errorf("api policy %q: the model refuses it: %v", w, err)
		}
	}
}

func words[T ~string](ws []T) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = string(w)
	}
	return out
}

// TestSessionDocWire: the document of a session is, on the wire, what the
// model's own encodings write (the JSON of the documents did not change
// when they moved to package api).
func TestSessionDocWire(t *testing.T) {
	t.Parallel()
	cs := session.CopySet{H1: hal.VolumeRef{Serial: "A", Volume: 0x1001}, H2: hal.VolumeRef{Serial: "B", Volume: 0x10FE}}
	s := &session.Session{Name: "s1", Type: session.MetroMirrorFailoverFailback, Policy: session.ReleaseIO,
		ActiveSite: session.H2, Direction: session.H2ToH1, State: session.TargetAvailable, Status: session.Severe,
		CopySets: []session.CopySet{cs}}
	got, err := json.Marshal(NewSessionDoc(s))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(got, &doc); err != nil {
		t.Fatal(err)
	}
	model := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for field, want := range map[string]string{
		"type": model(s.Type), "policy": model(s.Policy), "state": model(s.State), "status": model(s.Status),
		"active_site": model(s.ActiveSite), "direction": model(s.Direction), "copy_sets": model(s.CopySets),
		"available_commands": model(session.Allowed(s)),
	} {
		if string(doc[field]) != want {
			t.Errorf("%s: %s, want the model's %s", field, doc[field], want)
		}
	}
	var back api.SessionDoc
	if err := json.Unmarshal(got, &back); err != nil || back.State != api.StateTargetAvailable || back.CopySets[0] != (api.CopySet{H1: cs.H1, H2: cs.H2}) {
		t.Errorf("read back: %+v, %v", back, err)
	}
}

// FuzzParseAgreesWithTheModel: lockstepctl's early checks (package api)
// accept exactly what the server's (the session model's) accept, and to
// the same value: a volume, a command, a type, a policy.
func FuzzParseAgreesWithTheModel(f *testing.F) {
	for _, s := range []string{"LAB.2107-75P0001/1001", "a/b/fe01", "/1001", "A/FF01", "A/+101", "A/0x10", "A/1_01",
		"START-H1-H2", "hold-io", "mm-single-direction", "\u017fuspend", "K", "release-IO"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		av, aerr := api.ParseVolumeRef(s)
		mv, merr := session.ParseVolumeRef(s)
		if (aerr == nil) != (merr == nil) || av != mv {
			t.Errorf("volume %q: api %+v, %v; model %+v, %v", s, av, aerr, mv, merr)
		}
		agree(t, "command", s, api.ParseSessionCommand, session.ParseCommand)
		agree(t, "type", s, api.ParseSessionType, session.ParseType)
		agree(t, "policy", s, api.ParseSuspendPolicy, session.ParsePolicy)
		if aerr != nil && !errors.Is(aerr, api.ErrInvalid) {
			t.Errorf("volume %q: api error %v does not wrap ErrInvalid", s, aerr)
		}
	})
}

func agree[A, M ~string](t *testing.T, what, s string, a func(string) (A, error), m func(string) (M, error)) {
	t.Helper()
	av, aerr := a(s)
	mv, merr := m(s)
	if (aerr == nil) != (merr == nil) || string(av) != string(mv) {
		t.Errorf("%s %q: api %q, %v; model %q, %v", what, s, av, aerr, mv, merr)
	}
}
