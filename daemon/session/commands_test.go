package session_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/lockstep-io/lockstep/daemon/session"
)

const (
	sd   = session.MetroMirrorSingleDirection
	fofb = session.MetroMirrorFailoverFailback
)

// sess builds a session for table checks: one copy set, production at the
// source of dir (or at its target in Target Available).
func sess(t session.Type, st session.State, dir session.Direction) *session.Session {
	site := dir.Source()
	if st == session.TargetAvailable {
		site = dir.Target()
	}
	return &session.Session{Name: "S", Type: t, Policy: session.HoldIO, State: st,
		Direction: dir, ActiveSite: site, CopySets: []session.CopySet{cs(0, 0x10, 1)}}
}

func with(s *session.Session, f func(*session.Session)) *session.Session { f(s); return s }

func TestAllowedTable(t *testing.T) {
	t.Parallel()
	const (
		s12 = session.CmdStartH1H2
		s21 = session.CmdStartH2H1
		sus = session.CmdSuspend
		rel = session.CmdReleaseIO
		rec = session.CmdRecover
		ter = session.CmdTerminate
		ref = session.CmdRefresh
	)
	held := func(s *session.Session) { s.IOHeld = true }
	recov := func(s *session.Session) { s.Recoverable = true }
	heldRecov := func(s *session.Session) { s.IOHeld, s.Recoverable = true, true }
	tests := []struct {
		name string
		s    *session.Session
		want []session.Command
	}{
		{"sd defined", sess(sd, session.Defined, session.H1ToH2), []session.Command{s12}},
		{"sd defined without copy sets", with(sess(sd, session.Defined, session.H1ToH2), func(s *session.Session) { s.CopySets = nil }), nil},
		{"sd preparing", sess(sd, session.Preparing, session.H1ToH2), []session.Command{s12, sus, ter, ref}},
		{"sd prepared", sess(sd, session.Prepared, session.H1ToH2), []session.Command{s12, sus, ter, ref}},
		{"sd suspending", sess(sd, session.Suspending, session.H1ToH2), []session.Command{ref}},
		{"sd suspended held recoverable", with(sess(sd, session.Suspended, session.H1ToH2), heldRecov), []session.Command{s12, rel, rec, ref}},
		{"sd suspended released recoverable", with(sess(sd, session.Suspended, session.H1ToH2), recov), []session.Command{s12, rec, ter, ref}},
		{"sd suspended held not recoverable", with(sess(sd, session.Suspended, session.H1ToH2), held), []session.Command{s12, rel, ref}},
		{"sd suspended released not recoverable", sess(sd, session.Suspended, session.H1ToH2), []session.Command{s12, ter, ref}},
		{"sd partial held", with(sess(sd, session.SuspendedPartial, session.H1ToH2), held), []session.Command{s12, sus, rel, ref}},
		{"sd partial released", sess(sd, session.SuspendedPartial, session.H1ToH2), []session.Command{s12, sus, ter, ref}},
		{"sd recovering", with(sess(sd, session.Recovering, session.H1ToH2), recov), []session.Command{ref}},
		{"sd target available", with(sess(sd, session.TargetAvailable, session.H1ToH2), recov), []session.Command{ter, ref}},

		{"fofb defined at H1", sess(fofb, session.Defined, session.H1ToH2), []session.Command{s12}},
		{"fofb defined at H2", sess(fofb, session.Defined, session.H2ToH1), []session.Command{s21}},
		{"fofb preparing H1->H2", sess(fofb, session.Preparing, session.H1ToH2), []session.Command{s12, sus, ter, ref}},
		{"fofb preparing H2->H1", sess(fofb, session.Preparing, session.H2ToH1), []session.Command{s21, sus, ter, ref}},
		{"fofb prepared H2->H1", sess(fofb, session.Prepared, session.H2ToH1), []session.Command{s21, sus, ter, ref}},
		{"fofb suspending", sess(fofb, session.Suspending, session.H2ToH1), []session.Command{ref}},
		{"fofb suspended H1->H2 held recoverable", with(sess(fofb, session.Suspended, session.H1ToH2), heldRecov), []session.Command{s12, rel, rec, ref}},
		{"fofb suspended H2->H1 recoverable", with(sess(fofb, session.Suspended, session.H2ToH1), recov), []session.Command{s21, rec, ter, ref}},
		{"fofb partial held H2->H1", with(sess(fofb, session.SuspendedPartial, session.H2ToH1), held), []session.Command{s21, sus, rel, ref}},
		{"fofb recovering", with(sess(fofb, session.Recovering, session.H1ToH2), recov), []session.Command{ref}},
		{"fofb target available at H2", with(sess(fofb, session.TargetAvailable, session.H1ToH2), recov), []session.Command{s21, ter, ref}},
		{"fofb target available at H1", with(sess(fofb, session.TargetAvailable, session.H2ToH1), recov), []session.Command{s12, ter, ref}},
		{"fofb target available held", with(sess(fofb, session.TargetAvailable, session.H1ToH2), heldRecov), []session.Command{s21, rel, ref}},
		{"sd target available held", with(sess(sd, session.TargetAvailable, session.H1ToH2), heldRecov), []session.Command{rel, ref}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if d := diff(tt.want, session.Allowed(tt.s)); d != "" {
				t.Errorf("Allowed (-want +got):\n%s", d)
			}
			for _, c := range session.Commands() {
				err := session.CheckCommand(tt.s, c)
				if slices.Contains(tt.want, c) {
					if err != nil {
						t.Errorf("CheckCommand(%s) = %v, want nil", c, err)
					}
					continue
				}
				var na *session.NotAllowedError
				if !errors.Is(err, session.ErrNotAllowed) || !errors.As(err, &na) {
					t.Errorf("CheckCommand(%s) = %v, want a NotAllowedError", c, err)
					continue
				}
				if na.Command != c || na.State != tt.s.State {
					t.Errorf("CheckCommand(%s): error names %s in %s", c, na.Command, na.State)
				}
				if d := diff(tt.want, na.Allowed); d != "" {
					t.Errorf("CheckCommand(%s).Allowed (-want +got):\n%s", c, d)
				}
			}
		})
	}
}

func TestNotAllowedMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		s    *session.Session
		cmd  session.Command
		want string
	}{
		{"no row for the state", sess(sd, session.Prepared, session.H1ToH2), session.CmdRecover,
			`session: command "recover" is not allowed in state Prepared (allowed: start-h1-h2, suspend, terminate, refresh)`},
		{"row with a failing condition", sess(sd, session.Suspended, session.H1ToH2), session.CmdRecover,
			`session: command "recover" is not allowed in state Suspended (not recoverable; allowed: start-h1-h2, terminate, refresh)`},
		{"single direction back", sess(sd, session.Defined, session.H1ToH2), session.CmdStartH2H1,
			`session: command "start-h2-h1" is not allowed in state Defined (a single-direction session copies H1->H2 only; allowed: start-h1-h2)`},
		{"nothing allowed", with(sess(sd, session.Defined, session.H1ToH2), func(s *session.Session) { s.CopySets = nil }), session.CmdStartH1H2,
			`session: command "start-h1-h2" is not allowed in state Defined (no copy sets; allowed: none)`},
		{"target available label", with(sess(fofb, session.TargetAvailable, session.H1ToH2), func(s *session.Session) { s.Recoverable = true }), session.CmdSuspend,
			`session: command "suspend" is not allowed in state Target Available (allowed: start-h2-h1, terminate, refresh)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := session.CheckCommand(tt.s, tt.cmd)
			if err == nil || err.Error() != tt.want {
				t.Errorf("CheckCommand = %v\nwant %s", err, tt.want)
			}
		})
	}
}

// TestAllowedSafety checks, over every state, type, site and flag
// combination, the rules that keep data safe whatever the table rows say.
func TestAllowedSafety(t *testing.T) {
	t.Parallel()
	for _, typ := range []session.Type{sd, fofb, session.MetroMirrorHyperSwap} {
		for st := session.Defined; st <= session.TargetAvailable; st++ {
			for _, dir := range []session.Direction{session.H1ToH2, session.H2ToH1} {
				for flags := range 16 {
					s := sess(typ, st, dir)
					s.IOHeld, s.Recoverable = flags&1 != 0, flags&2 != 0
					s.Copying, s.Error = flags&4 != 0, flags&8 != 0
					for _, c := range session.Allowed(s) {
						var why string
						switch {
						case c == session.CmdRecover && !s.Recoverable:
							why = "recover of an image not known consistent"
						case c == session.CmdReleaseIO && !s.IOHeld:
							why = "release-io without held I/O"
						case c == session.CmdStartH2H1 && typ == sd:
							why = "start-h2-h1 on a single-direction session"
						case c == session.CmdStartH1H2 && s.ActiveSite != session.H1,
							c == session.CmdStartH2H1 && s.ActiveSite != session.H2:
							why = "a start that overwrites the production site"
						case c == session.CmdHyperSwap && (typ != session.MetroMirrorHyperSwap || st != session.Prepared):
							why = "a hyperswap of a session that is not a Prepared HyperSwap session"
						case st == session.Defined && c != session.CmdStartH1H2 && c != session.CmdStartH2H1:
							why = "a hardware command on a Defined session"
						}
						if why != "" {
							t.Errorf("%s %s %s flags %04b: allows %s: %s", typ, st, dir, flags, c, why)
						}
					}
				}
			}
		}
	}
}

func TestParseCommand(t *testing.T) {
	t.Parallel()
	for _, c := range session.Commands() {
		got, err := session.ParseCommand(string(c))
		if err != nil || got != c {
			t.Errorf("ParseCommand(%q) = %q, %v", c, got, err)
		}
	}
	if got, err := session.ParseCommand("Start-H1-H2"); err != nil || got != session.CmdStartH1H2 {
		t.Errorf("ParseCommand ignores case: got %q, %v", got, err)
	}
	if _, err := session.ParseCommand("flash"); err == nil {
		t.Error("ParseCommand(flash) succeeded")
	}
}
