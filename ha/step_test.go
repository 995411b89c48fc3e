package ha_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/ha"
	"github.com/lockstep-io/lockstep/hal"
)

var (
	testCfg = ha.Config{ReconnectInterval: time.Minute, ReconnectAttempts: 3}
	now     = t0.Add(10 * time.Minute)
	errBoom = errors.New("boom")

	// pA is the active seen from its standby, pB the standby seen from
	// its active.
	pA    = ha.Peer{Addr: "tcp://a:9730", Name: "a"}
	pB    = ha.Peer{Addr: "tcp://b:9730", Name: "b"}
	infoA = ha.PeerInfo{Name: "a", Addr: "tcp://a:9730", Role: ha.Active, Epoch: 3, Cert: certFor("a")}
	infoB = ha.PeerInfo{Name: "b", Addr: "tcp://b:9730", Role: ha.Standby, Epoch: 3, Cert: certFor("b")}
)

// certFor is the verified certificate of the server name: its DNS name,
// and a fingerprint of its own.
func certFor(name string) ha.CertIdentity {
	c := ha.CertIdentity{DNSNames: []string{name}}
	copy(c.Fingerprint[:], "fingerprint of "+name)
	return c
}

// withCfg is testCfg changed by f.
func withCfg(f func(*ha.Config)) *ha.Config {
	c := testCfg
	f(&c)
	return &c
}

// sentinels name the errors actions carry, for readable comparisons.
var sentinels = []struct {
	name string
	err  error
}{
	{"ErrBasicEdition", ha.ErrBasicEdition}, {"ErrSecondRelationship", ha.ErrSecondRelationship},
	{"ErrNoRelationship", ha.ErrNoRelationship}, {"ErrWrongRole", ha.ErrWrongRole},
	{"ErrSynchronized", ha.ErrSynchronized}, {"ErrSyncInProgress", ha.ErrSyncInProgress},
	{"ErrDemoted", ha.ErrDemoted}, {"ErrConnected", ha.ErrConnected}, {"ErrConnecting", ha.ErrConnecting},
	{"ErrBadAddress", ha.ErrBadAddress}, {"ErrLinkInUse", ha.ErrLinkInUse}, {"ErrStaleEpoch", ha.ErrStaleEpoch},
	{"ErrPeerConflict", ha.ErrPeerConflict}, {"ErrRemoved", ha.ErrRemoved}, {"ErrTookOver", ha.ErrTookOver},
	{"ErrReconnectStopped", ha.ErrReconnectStopped}, {"ErrNotPartner", ha.ErrNotPartner},
	{"ErrPartnerIdentity", ha.ErrPartnerIdentity}, {"boom", errBoom},
}

func errName(err error) string {
	if err == nil {
		return "nil"
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return s.name
		}
	}
	return "other(" + err.Error() + ")"
}

// render writes an action with its error reduced to the sentinel it
// wraps.
func render(a ha.Action) string {
	switch a := a.(type) {
	case ha.Refuse:
		return "refuse " + errName(a.Err)
	case ha.Disconnect:
		return fmt.Sprintf("disconnect %d %s", a.Link, errName(a.Err))
	case ha.Emit:
		n := a.Notice
		return fmt.Sprintf("emit %s %s -> %s epoch %d %s", n.Kind, n.From, n.To, n.Epoch, errName(n.Err))
	}
	return a.String()
}

func renderAll(acts []ha.Action) []string {
	out := []string{}
	for _, a := range acts {
		out = append(out, render(a))
	}
	return out
}

func mod(s ha.State, f func(*ha.State)) ha.State {
	f(&s)
	return s
}

// Fixtures: epoch 3 everywhere unless said otherwise.
var (
	standalone = ha.State{Epoch: 3, Seen: 3}

	activeSync    = ha.State{Role: ha.Active, Conn: ha.Synchronized, Peer: pB, Epoch: 3, Seen: 3, Link: 7}
	activeDC      = ha.State{Role: ha.Active, Conn: ha.DisconnectedConsistent, Peer: pB, Epoch: 3, Seen: 3, Reconnect: ha.Schedule{Last: t0, Next: t0.Add(time.Minute)}}
	activeDisc    = ha.State{Role: ha.Active, Conn: ha.Disconnected, Peer: pB, Epoch: 3, Seen: 3}
	activePending = func(p ha.Phase, resync bool) ha.State {
		return ha.State{Role: ha.Active, Conn: ha.SyncPending, Peer: pB, Epoch: 3, Seen: 3, Link: 7, Phase: p, Resync: resync,
			Reconnect: ha.Schedule{Attempts: 2, Last: t0}}
	}

	standbySync    = ha.State{Role: ha.Standby, Conn: ha.Synchronized, Peer: pA, Epoch: 3, Seen: 3, Link: 7}
	standbyDC      = ha.State{Role: ha.Standby, Conn: ha.DisconnectedConsistent, Peer: pA, Epoch: 3, Seen: 3}
	standbyDisc    = ha.State{Role: ha.Standby, Conn: ha.Disconnected, Peer: pA, Epoch: 3, Seen: 3}
	standbyPending = func(p ha.Phase, resync bool) ha.State {
		return ha.State{Role: ha.Standby, Conn: ha.SyncPending, Peer: pA, Epoch: 3, Seen: 3, Link: 7, Phase: p, Resync: resync}
	}

	demoted = ha.State{Role: ha.DisconnectedStandby, Conn: ha.Disconnected, Peer: pB, Epoch: 3, Seen: 4}
)

type stepCase struct {
	name string
	s    ha.State
	ev   ha.Event
	now  time.Time // zero: now
	cfg  *ha.Config
	want ha.State
	acts []string
}

func stepCases() []stepCase {
	basic := ha.Config{Basic: true, ReconnectInterval: time.Minute, ReconnectAttempts: 3}
	noRetry := ha.Config{ReconnectInterval: time.Minute}
	sched := func(last time.Time) ha.Schedule { return ha.Schedule{Last: last, Next: last.Add(time.Minute)} }
	st := func(from, to string) string { return "emit state-changed " + from + " -> " + to }
	return []stepCase{
		// Start.
		{name: "start standalone", s: standalone, ev: ha.Start{}, want: standalone,
			acts: []string{"start-active-duties epoch 3 (takeover false)"}},
		{name: "start active connects", s: ha.State{Role: ha.Active, Peer: pB, Epoch: 3, Seen: 3}, ev: ha.Start{},
			want: ha.State{Role: ha.Active, Peer: pB, Epoch: 3, Seen: 3, Dialing: true, Reconnect: sched(now)},
			acts: []string{"start-active-duties epoch 3 (takeover false)", "connect tcp://b:9730"}},
		{name: "start active, basic edition: no connection", s: ha.State{Role: ha.Active, Peer: pB, Epoch: 3}, ev: ha.Start{}, cfg: &basic,
			want: ha.State{Role: ha.Active, Peer: pB, Epoch: 3}, acts: []string{"start-active-duties epoch 3 (takeover false)"}},
		{name: "start standby does nothing", s: ha.State{Role: ha.Standby, Peer: pA, Epoch: 3}, ev: ha.Start{},
			want: ha.State{Role: ha.Standby, Peer: pA, Epoch: 3}, acts: []string{}},
		{name: "start active from Disconnected Consistent: connects, then on the schedule",
			s: ha.State{Role: ha.Active, Conn: ha.DisconnectedConsistent, Peer: pB, Epoch: 3, Seen: 3}, ev: ha.Start{},
			want: ha.State{Role: ha.Active, Conn: ha.DisconnectedConsistent, Peer: pB, Epoch: 3, Seen: 3, Dialing: true, Reconnect: sched(now)},
			acts: []string{"start-active-duties epoch 3 (takeover false)", "connect tcp://b:9730"}},
		{name: "start active from Disconnected: waits for ha reconnect",
			s: ha.State{Role: ha.Active, Conn: ha.Disconnected, Peer: pB, Epoch: 3, Seen: 3}, ev: ha.Start{},
			want: ha.State{Role: ha.Active, Conn: ha.Disconnected, Peer: pB, Epoch: 3, Seen: 3},
			acts: []string{"start-active-duties epoch 3 (takeover false)"}},
		{name: "start standby resumes its persisted state", s: standbyDC, ev: ha.Start{}, want: standbyDC, acts: []string{}},
		{name: "start demoted stays demoted", s: ha.State{Role: ha.DisconnectedStandby, Peer: pB, Epoch: 3, Seen: 4}, ev: ha.Start{},
			want: demoted, acts: []string{st("disconnected-standby/Unknown", "disconnected-standby/Disconnected") + " epoch 3 nil"}},

		// ha set-standby.
		{name: "set-standby on standalone", s: standalone, ev: ha.SetStandby{Addr: "tcp://b:9730", Name: "b"},
			want: ha.State{Role: ha.Active, Peer: pB, Epoch: 3, Seen: 3, Dialing: true, Reconnect: sched(now)},
			acts: []string{"persist-relationship active b (tcp://b:9730)", "connect tcp://b:9730", st("standalone/Unknown", "active/Unknown") + " epoch 3 nil"}},
		{name: "set-standby takes the configured partner name", s: standalone, ev: ha.SetStandby{Addr: "tcp://b:9730"}, cfg: partner("b"),
			want: ha.State{Role: ha.Active, Peer: pB, Epoch: 3, Seen: 3, Dialing: true, Reconnect: sched(now)},
			acts: []string{"persist-relationship active b (tcp://b:9730)", "connect tcp://b:9730", st("standalone/Unknown", "active/Unknown") + " epoch 3 nil"}},
		{name: "set-standby with a pinned fingerprint needs no name", s: standalone, ev: ha.SetStandby{Addr: "tcp://b:9730"},
			cfg:  withCfg(func(c *ha.Config) { c.PartnerFingerprint = certFor("b").Fingerprint }),
			want: ha.State{Role: ha.Active, Peer: ha.Peer{Addr: "tcp://b:9730"}, Epoch: 3, Seen: 3, Dialing: true, Reconnect: sched(now)},
			acts: []string{"persist-relationship active tcp://b:9730", "connect tcp://b:9730", st("standalone/Unknown", "active/Unknown") + " epoch 3 nil"}},
		{name: "set-standby without the standby's identity", s: standalone, ev: ha.SetStandby{Addr: "tcp://b:9730"}, want: standalone,
			acts: []string{"refuse ErrPartnerIdentity"}},
		{name: "set-standby with a malformed name", s: standalone, ev: ha.SetStandby{Addr: "tcp://b:9730", Name: "b 2"}, want: standalone,
			acts: []string{"refuse ErrPartnerIdentity"}},
		{name: "set-standby without address", s: standalone, ev: ha.SetStandby{}, want: standalone, acts: []string{"refuse ErrBadAddress"}},
		{name: "set-standby on the active: second relationship", s: activeSync, ev: ha.SetStandby{Addr: "tcp://c:1"}, want: activeSync,
			acts: []string{"refuse ErrSecondRelationship"}},
		{name: "set-standby on the standby: second relationship", s: standbyDC, ev: ha.SetStandby{Addr: "tcp://c:1"}, want: standbyDC,
			acts: []string{"refuse ErrSecondRelationship"}},
		{name: "set-standby on a demoted server", s: demoted, ev: ha.SetStandby{Addr: "tcp://c:1"}, want: demoted, acts: []string{"refuse ErrDemoted"}},
		{name: "set-standby, basic edition", s: standalone, ev: ha.SetStandby{Addr: "tcp://b:9730"}, cfg: &basic, want: standalone,
			acts: []string{"refuse ErrBasicEdition"}},

		// ha set-as-standby.
		{name: "set-as-standby without the active's identity", s: standalone, ev: ha.SetAsStandby{Addr: "tcp://a:9730"}, want: standalone,
			acts: []string{"refuse ErrPartnerIdentity"}},
		{name: "set-as-standby on standalone", s: standalone, ev: ha.SetAsStandby{Addr: "tcp://a:9730", Name: "a"},
			want: ha.State{Role: ha.Standby, Peer: pA, Epoch: 3, Seen: 3, Dialing: true},
			acts: []string{"persist-relationship standby a (tcp://a:9730)", "stop-active-duties", "connect tcp://a:9730",
				st("standalone/Unknown", "standby/Unknown") + " epoch 3 nil"}},
		{name: "set-as-standby without address", s: standalone, ev: ha.SetAsStandby{}, want: standalone, acts: []string{"refuse ErrBadAddress"}},
		{name: "set-as-standby on the active", s: activeDC, ev: ha.SetAsStandby{Addr: "tcp://c:1"}, want: activeDC,
			acts: []string{"refuse ErrSecondRelationship"}},
		{name: "set-as-standby on the standby", s: standbySync, ev: ha.SetAsStandby{Addr: "tcp://c:1"}, want: standbySync,
			acts: []string{"refuse ErrSecondRelationship"}},
		{name: "set-as-standby on a demoted server", s: demoted, ev: ha.SetAsStandby{Addr: "tcp://c:1"}, want: demoted, acts: []string{"refuse ErrDemoted"}},
		{name: "set-as-standby, basic edition", s: standalone, ev: ha.SetAsStandby{Addr: "tcp://a:1"}, cfg: &basic, want: standalone,
			acts: []string{"refuse ErrBasicEdition"}},

		// ha remove-standby.
		{name: "remove-standby while synchronized", s: activeSync, ev: ha.RemoveStandby{}, want: standalone,
			acts: []string{"persist-relationship standalone", "disconnect 7 ErrRemoved", st("active/Synchronized", "standalone/Unknown") + " epoch 3 nil"}},
		{name: "remove-standby while disconnected", s: activeDC, ev: ha.RemoveStandby{}, want: standalone,
			acts: []string{"persist-relationship standalone", st("active/Disconnected Consistent", "standalone/Unknown") + " epoch 3 nil"}},
		{name: "remove-standby on standalone", s: standalone, ev: ha.RemoveStandby{}, want: standalone, acts: []string{"refuse ErrNoRelationship"}},
		{name: "remove-standby on the standby", s: standbyDC, ev: ha.RemoveStandby{}, want: standbyDC, acts: []string{"refuse ErrWrongRole"}},
		{name: "remove-standby on a demoted server", s: demoted, ev: ha.RemoveStandby{}, want: demoted, acts: []string{"refuse ErrDemoted"}},
		{name: "remove-standby, basic edition", s: activeDC, ev: ha.RemoveStandby{}, cfg: &basic, want: activeDC, acts: []string{"refuse ErrBasicEdition"}},

		// ha remove-active.
		{name: "remove-active refused while synchronized", s: standbySync, ev: ha.RemoveActive{}, want: standbySync,
			acts: []string{"refuse ErrSynchronized"}},
		{name: "remove-active refused while synchronizing", s: standbyPending(ha.PhaseStream, false), ev: ha.RemoveActive{},
			want: standbyPending(ha.PhaseStream, false), acts: []string{"refuse ErrSyncInProgress"}},
		{name: "remove-active when disconnected: standalone with a new epoch", s: mod(standbyDC, func(s *ha.State) { s.Seen = 5 }),
			ev: ha.RemoveActive{}, want: ha.State{Epoch: 6, Seen: 6},
			acts: []string{"persist-epoch 6", "persist-relationship standalone", "start-active-duties epoch 6 (takeover false)",
				st("standby/Disconnected Consistent", "standalone/Unknown") + " epoch 6 nil"}},
		{name: "remove-active on the active", s: activeSync, ev: ha.RemoveActive{}, want: activeSync, acts: []string{"refuse ErrWrongRole"}},
		{name: "remove-active on standalone", s: standalone, ev: ha.RemoveActive{}, want: standalone, acts: []string{"refuse ErrNoRelationship"}},
		{name: "remove-active on a demoted server", s: demoted, ev: ha.RemoveActive{}, want: demoted, acts: []string{"refuse ErrDemoted"}},

		// ha reconnect.
		{name: "reconnect a disconnected active", s: activeDisc, ev: ha.ReconnectCommand{},
			want: mod(activeDisc, func(s *ha.State) { s.Dialing = true; s.Reconnect = sched(now) }), acts: []string{"connect tcp://b:9730"}},
		{name: "reconnect after the series gave up starts a new one", s: mod(activeDC, func(s *ha.State) { s.Reconnect = ha.Schedule{Attempts: 3, Last: t0} }),
			ev:   ha.ReconnectCommand{},
			want: mod(activeDC, func(s *ha.State) { s.Dialing = true; s.Reconnect = sched(now) }), acts: []string{"connect tcp://b:9730"}},
		{name: "reconnect while linked", s: activeSync, ev: ha.ReconnectCommand{}, want: activeSync, acts: []string{"refuse ErrConnected"}},
		{name: "reconnect while dialing", s: mod(activeDC, func(s *ha.State) { s.Dialing = true }), ev: ha.ReconnectCommand{},
			want: mod(activeDC, func(s *ha.State) { s.Dialing = true }), acts: []string{"refuse ErrConnecting"}},
		{name: "reconnect on standalone", s: standalone, ev: ha.ReconnectCommand{}, want: standalone, acts: []string{"refuse ErrNoRelationship"}},
		{name: "reconnect from the standby dials the active", s: standbyDC, ev: ha.ReconnectCommand{},
			want: mod(standbyDC, func(s *ha.State) { s.Dialing = true }), acts: []string{"connect tcp://a:9730"}},
		{name: "reconnect on a demoted server without partner", s: mod(demoted, func(s *ha.State) { s.Peer = ha.Peer{} }), ev: ha.ReconnectCommand{},
			want: mod(demoted, func(s *ha.State) { s.Peer = ha.Peer{} }), acts: []string{"refuse ErrNoRelationship"}},
		{name: "reconnect on a demoted server dials its partner", s: demoted, ev: ha.ReconnectCommand{},
			want: mod(demoted, func(s *ha.State) { s.Dialing = true }), acts: []string{"connect tcp://b:9730"}},
		{name: "reconnect, basic edition", s: activeDisc, ev: ha.ReconnectCommand{}, cfg: &basic, want: activeDisc, acts: []string{"refuse ErrBasicEdition"}},

		// ha takeover.
		{name: "takeover from disconnected consistent", s: standbyDC, ev: ha.Takeover{},
			want: ha.State{Role: ha.Active, Conn: ha.Disconnected, Peer: pA, Epoch: 4, Seen: 4, Dialing: true},
			acts: []string{"persist-epoch 4", "persist-relationship active a (tcp://a:9730)", "start-active-duties epoch 4 (takeover true)",
				"connect tcp://a:9730", "emit took-over standby/Disconnected Consistent -> active/Disconnected epoch 4 nil",
				st("standby/Disconnected Consistent", "active/Disconnected") + " epoch 4 nil"}},
		{name: "takeover while synchronized notifies the old active", s: standbySync, ev: ha.Takeover{},
			want: ha.State{Role: ha.Active, Conn: ha.Disconnected, Peer: pA, Epoch: 4, Seen: 4, Dialing: true},
			acts: []string{"persist-epoch 4", "persist-relationship active a (tcp://a:9730)", "notify-epoch 4 on 7", "disconnect 7 ErrTookOver",
				"start-active-duties epoch 4 (takeover true)", "connect tcp://a:9730",
				"emit took-over standby/Synchronized -> active/Disconnected epoch 4 nil", st("standby/Synchronized", "active/Disconnected") + " epoch 4 nil"}},
		{name: "takeover goes above every epoch seen", s: mod(standbyDisc, func(s *ha.State) { s.Seen = 9 }), ev: ha.Takeover{},
			want: ha.State{Role: ha.Active, Conn: ha.Disconnected, Peer: pA, Epoch: 10, Seen: 10, Dialing: true},
			acts: []string{"persist-epoch 10", "persist-relationship active a (tcp://a:9730)", "start-active-duties epoch 10 (takeover true)",
				"connect tcp://a:9730", "emit took-over standby/Disconnected -> active/Disconnected epoch 10 nil",
				st("standby/Disconnected", "active/Disconnected") + " epoch 10 nil"}},
		{name: "takeover while already dialing does not dial twice", s: mod(standbyDC, func(s *ha.State) { s.Dialing = true }), ev: ha.Takeover{},
			want: ha.State{Role: ha.Active, Conn: ha.Disconnected, Peer: pA, Epoch: 4, Seen: 4, Dialing: true},
			acts: []string{"persist-epoch 4", "persist-relationship active a (tcp://a:9730)", "start-active-duties epoch 4 (takeover true)",
				"emit took-over standby/Disconnected Consistent -> active/Disconnected epoch 4 nil",
				st("standby/Disconnected Consistent", "active/Disconnected") + " epoch 4 nil"}},
		{name: "takeover refused while synchronizing", s: standbyPending(ha.PhaseSnapshot, false), ev: ha.Takeover{},
			want: standbyPending(ha.PhaseSnapshot, false), acts: []string{"refuse ErrSyncInProgress"}},
		{name: "takeover on a demoted server", s: demoted, ev: ha.Takeover{},
			want: ha.State{Role: ha.Active, Conn: ha.Disconnected, Peer: pB, Epoch: 5, Seen: 5, Dialing: true},
			acts: []string{"persist-epoch 5", "persist-relationship active b (tcp://b:9730)", "start-active-duties epoch 5 (takeover true)",
				"connect tcp://b:9730", "emit took-over disconnected-standby/Disconnected -> active/Disconnected epoch 5 nil",
				st("disconnected-standby/Disconnected", "active/Disconnected") + " epoch 5 nil"}},
		{name: "takeover on a demoted server without partner: standalone", s: mod(demoted, func(s *ha.State) { s.Peer = ha.Peer{} }), ev: ha.Takeover{},
			want: ha.State{Epoch: 5, Seen: 5},
			acts: []string{"persist-epoch 5", "persist-relationship standalone", "start-active-duties epoch 5 (takeover true)",
				"emit took-over disconnected-standby/Disconnected -> standalone/Unknown epoch 5 nil",
				st("disconnected-standby/Disconnected", "standalone/Unknown") + " epoch 5 nil"}},
		{name: "takeover on the active", s: activeSync, ev: ha.Takeover{}, want: activeSync, acts: []string{"refuse ErrWrongRole"}},
		{name: "takeover on standalone", s: standalone, ev: ha.Takeover{}, want: standalone, acts: []string{"refuse ErrWrongRole"}},
		{name: "takeover, basic edition", s: standbyDC, ev: ha.Takeover{}, cfg: &basic, want: standbyDC, acts: []string{"refuse ErrBasicEdition"}},

		// Link up: the active's side.
		{name: "active reaches a new standby, pinned by its fingerprint, and learns its name",
			s:   ha.State{Role: ha.Active, Peer: ha.Peer{Addr: "tcp://b:9730"}, Epoch: 3, Seen: 3, Dialing: true, Reconnect: sched(t0)},
			ev:  ha.LinkUp{Link: 7, Peer: infoB, Dialed: true},
			cfg: withCfg(func(c *ha.Config) { c.PartnerFingerprint = certFor("b").Fingerprint }),
			want: ha.State{Role: ha.Active, Conn: ha.SyncPending, Peer: pB, Epoch: 3, Seen: 3, Link: 7, Phase: ha.PhaseBackup,
				Reconnect: sched(t0)},
			acts: []string{"persist-relationship active b (tcp://b:9730)", "serve 7 as active", st("active/Unknown", "active/Synchronization Pending") + " epoch 3 nil"}},
		{name: "the standby connects to a disconnected active: a resync", s: activeDC, ev: ha.LinkUp{Link: 7, Peer: infoB},
			want: mod(activeDC, func(s *ha.State) {
				s.Conn, s.Link, s.Phase, s.Resync = ha.SyncPending, 7, ha.PhaseBackup, true
			}),
			acts: []string{"serve 7 as active", st("active/Disconnected Consistent", "active/Synchronization Pending") + " epoch 3 nil"}},
		{name: "the active of a pair never synchronized: a first sync", s: ha.State{Role: ha.Active, Peer: pB, Epoch: 3, Seen: 3, Dialing: true},
			ev:   ha.LinkUp{Link: 7, Peer: infoB, Dialed: true},
			want: ha.State{Role: ha.Active, Conn: ha.SyncPending, Peer: pB, Epoch: 3, Seen: 3, Link: 7, Phase: ha.PhaseBackup},
			acts: []string{"persist-ha-state Disconnected", "serve 7 as active", st("active/Unknown", "active/Synchronization Pending") + " epoch 3 nil"}},
		{name: "the active restarted from Disconnected Consistent: a resync", s: mod(activeDC, func(s *ha.State) { s.Dialing = true }),
			ev:   ha.LinkUp{Link: 7, Peer: infoB, Dialed: true},
			want: mod(activeDC, func(s *ha.State) { s.Conn, s.Link, s.Phase, s.Resync = ha.SyncPending, 7, ha.PhaseBackup, true }),
			acts: []string{"serve 7 as active", st("active/Disconnected Consistent", "active/Synchronization Pending") + " epoch 3 nil"}},
		{name: "a stranger connects to the active", s: activeDC, ev: ha.LinkUp{Link: 8, Peer: ha.PeerInfo{Cert: certFor("x"), Name: "x", Addr: "tcp://x:1", Role: ha.Standby, Epoch: 3}},
			want: activeDC, acts: []string{"disconnect 8 ErrNotPartner"}},
		{name: "a second link is closed", s: activeSync, ev: ha.LinkUp{Link: 8, Peer: infoB}, want: activeSync,
			acts: []string{"disconnect 8 ErrLinkInUse"}},
		{name: "a dialed link nobody waits for", s: activeDisc, ev: ha.LinkUp{Link: 8, Peer: infoB, Dialed: true}, want: activeDisc,
			acts: []string{"disconnect 8 ErrPeerConflict"}},
		{name: "two actives at the same epoch", s: activeDC, ev: ha.LinkUp{Link: 8, Peer: ha.PeerInfo{Cert: certFor("b"), Name: "b", Role: ha.Active, Epoch: 3}},
			want: activeDC, acts: []string{"disconnect 8 ErrPeerConflict"}},
		{name: "a former active at a lower epoch becomes the standby", s: mod(activeDisc, func(s *ha.State) { s.Epoch, s.Seen, s.Dialing = 4, 4, true }),
			ev: ha.LinkUp{Link: 7, Peer: ha.PeerInfo{Cert: certFor("b"), Name: "b", Role: ha.Active, Epoch: 3}, Dialed: true},
			want: mod(activeDisc, func(s *ha.State) {
				s.Epoch, s.Seen, s.Conn, s.Link, s.Phase = 4, 4, ha.SyncPending, 7, ha.PhaseBackup
			}),
			acts: []string{"serve 7 as active", st("active/Disconnected", "active/Synchronization Pending") + " epoch 4 nil"}},
		{name: "the active meets a higher epoch: demoted, then the standby of it",
			s:    mod(activeDC, func(s *ha.State) { s.Dialing = true }),
			ev:   ha.LinkUp{Link: 7, Peer: ha.PeerInfo{Cert: certFor("b"), Name: "b", Addr: "tcp://b:9730", Role: ha.Active, Epoch: 4}, Dialed: true},
			want: ha.State{Role: ha.Standby, Conn: ha.SyncPending, Peer: pB, Epoch: 4, Seen: 4, Link: 7, Phase: ha.PhaseBackup},
			acts: []string{"persist-relationship standby b (tcp://b:9730)", "stop-active-duties",
				"emit demoted active/Disconnected Consistent -> disconnected-standby/Disconnected epoch 4 nil", "serve 7 as standby", "take-backup 7",
				st("active/Disconnected Consistent", "standby/Synchronization Pending") + " epoch 4 nil"}},

		// Link up: the partner's identity comes from its certificate.
		{name: "a peer of the CA with another name says epoch 99: nothing changes", s: activeSync,
			ev:   ha.LinkUp{Link: 8, Peer: ha.PeerInfo{Cert: certFor("x"), Name: "x", Addr: "tcp://x:1", Role: ha.Active, Epoch: 99}},
			want: activeSync, acts: []string{"disconnect 8 ErrNotPartner"}},
		{name: "a stranger using the partner's name is not served", s: activeDC,
			ev:   ha.LinkUp{Link: 8, Peer: ha.PeerInfo{Cert: certFor("x"), Name: "b", Addr: "tcp://b:9730", Role: ha.Standby, Epoch: 3}},
			want: activeDC, acts: []string{"disconnect 8 ErrNotPartner"}},
		{name: "a stranger using the partner's name cannot demote a standalone server", s: standalone, cfg: partner("a"),
			ev:   ha.LinkUp{Link: 8, Peer: ha.PeerInfo{Cert: certFor("x"), Name: "a", Role: ha.Active, Epoch: 99}},
			want: standalone, acts: []string{"disconnect 8 ErrNotPartner"}},
		{name: "the partner's certificate with another name in its hello", s: activeDC,
			ev:   ha.LinkUp{Link: 8, Peer: ha.PeerInfo{Cert: certFor("b"), Name: "c", Role: ha.Standby, Epoch: 3}},
			want: activeDC, acts: []string{"disconnect 8 ErrNotPartner"}},
		{name: "a standalone server with no partner configured accepts no one", s: standalone, ev: ha.LinkUp{Link: 7, Peer: infoA},
			want: standalone, acts: []string{"disconnect 7 ErrNotPartner"}},
		{name: "a stranger answers the active's dial: the attempt failed", s: mod(activeDC, func(s *ha.State) { s.Dialing = true }),
			ev:   ha.LinkUp{Link: 8, Peer: ha.PeerInfo{Cert: certFor("x"), Name: "x", Role: ha.Standby, Epoch: 99}, Dialed: true},
			want: activeDC, acts: []string{"disconnect 8 ErrNotPartner"}},
		{name: "a stranger answers the last attempt: gives up",
			s:    mod(activeDC, func(s *ha.State) { s.Dialing, s.Reconnect = true, ha.Schedule{Attempts: 3, Last: t0} }),
			ev:   ha.LinkUp{Link: 8, Peer: ha.PeerInfo{Cert: certFor("x"), Name: "x", Role: ha.Standby, Epoch: 3}, Dialed: true},
			want: mod(activeDC, func(s *ha.State) { s.Reconnect = ha.Schedule{Attempts: 3, Last: t0} }),
			acts: []string{"disconnect 8 ErrNotPartner",
				"emit reconnect-stopped active/Disconnected Consistent -> active/Disconnected Consistent epoch 3 ErrReconnectStopped"}},
		{name: "a URI subject alternative name names the partner", s: activeDC,
			ev:   ha.LinkUp{Link: 7, Peer: ha.PeerInfo{Cert: ha.CertIdentity{URIs: []string{"urn:lockstep:server:b"}}, Name: "b", Role: ha.Standby, Epoch: 3}},
			want: mod(activeDC, func(s *ha.State) { s.Conn, s.Link, s.Phase, s.Resync = ha.SyncPending, 7, ha.PhaseBackup, true }),
			acts: []string{"serve 7 as active", st("active/Disconnected Consistent", "active/Synchronization Pending") + " epoch 3 nil"}},
		{name: "a pinned certificate without names is the partner", s: activeDC,
			cfg:  withCfg(func(c *ha.Config) { c.PartnerFingerprint = certFor("b").Fingerprint }),
			ev:   ha.LinkUp{Link: 7, Peer: ha.PeerInfo{Cert: ha.CertIdentity{Fingerprint: certFor("b").Fingerprint}, Name: "b", Role: ha.Standby, Epoch: 3}},
			want: mod(activeDC, func(s *ha.State) { s.Conn, s.Link, s.Phase, s.Resync = ha.SyncPending, 7, ha.PhaseBackup, true }),
			acts: []string{"serve 7 as active", st("active/Disconnected Consistent", "active/Synchronization Pending") + " epoch 3 nil"}},
		{name: "with a pin, another certificate naming the partner is refused", s: activeDC,
			cfg:  withCfg(func(c *ha.Config) { c.PartnerFingerprint = certFor("b").Fingerprint }),
			ev:   ha.LinkUp{Link: 7, Peer: ha.PeerInfo{Cert: certFor("b2"), Name: "b", Role: ha.Active, Epoch: 9}},
			want: activeDC, acts: []string{"disconnect 7 ErrNotPartner"}},

		// Link up: the standby's side, and standalone servers.
		{name: "standalone meets a standby (set-as-standby): active", s: standalone, ev: ha.LinkUp{Link: 7, Peer: infoB}, cfg: partner("b"),
			want: ha.State{Role: ha.Active, Conn: ha.SyncPending, Peer: pB, Epoch: 3, Seen: 3, Link: 7, Phase: ha.PhaseBackup},
			acts: []string{"persist-relationship active b (tcp://b:9730)", "serve 7 as active", st("standalone/Unknown", "active/Synchronization Pending") + " epoch 3 nil"}},
		{name: "standalone meets an active (set-standby): standby", s: standalone, ev: ha.LinkUp{Link: 7, Peer: infoA}, cfg: partner("a"),
			want: ha.State{Role: ha.Standby, Conn: ha.SyncPending, Peer: pA, Epoch: 3, Seen: 3, Link: 7, Phase: ha.PhaseBackup},
			acts: []string{"persist-relationship standby a (tcp://a:9730)", "stop-active-duties", "serve 7 as standby", "take-backup 7",
				st("standalone/Unknown", "standby/Synchronization Pending") + " epoch 3 nil"}},
		{name: "standalone meets a stale active", s: standalone, cfg: partner("a"), ev: ha.LinkUp{Link: 7, Peer: ha.PeerInfo{Cert: certFor("a"), Name: "a", Role: ha.Active, Epoch: 2}},
			want: standalone, acts: []string{"disconnect 7 ErrStaleEpoch"}},
		{name: "standalone meets an active of a higher epoch", s: standalone, cfg: partner("a"),
			ev:   ha.LinkUp{Link: 7, Peer: ha.PeerInfo{Cert: certFor("a"), Name: "a", Addr: "tcp://a:9730", Role: ha.Active, Epoch: 5}},
			want: ha.State{Role: ha.Standby, Conn: ha.SyncPending, Peer: pA, Epoch: 5, Seen: 5, Link: 7, Phase: ha.PhaseBackup},
			acts: []string{"persist-relationship standby a (tcp://a:9730)", "stop-active-duties",
				"emit demoted standalone/Unknown -> disconnected-standby/Disconnected epoch 5 nil", "serve 7 as standby", "take-backup 7",
				st("standalone/Unknown", "standby/Synchronization Pending") + " epoch 5 nil"}},
		{name: "standalone meets a standalone", s: standalone, cfg: partner("c"), ev: ha.LinkUp{Link: 7, Peer: ha.PeerInfo{Cert: certFor("c"), Name: "c", Role: ha.Standalone, Epoch: 1}},
			want: standalone, acts: []string{"disconnect 7 ErrNoRelationship"}},
		{name: "the active reaches its disconnected standby: autobackup", s: standbyDC, ev: ha.LinkUp{Link: 7, Peer: infoA},
			want: standbyPending(ha.PhaseBackup, true),
			acts: []string{"serve 7 as standby", "take-autobackup 7", st("standby/Disconnected Consistent", "standby/Synchronization Pending") + " epoch 3 nil"}},
		{name: "a new standby reaches its active: backup", s: ha.State{Role: ha.Standby, Peer: pA, Dialing: true},
			ev:   ha.LinkUp{Link: 7, Peer: infoA, Dialed: true},
			want: standbyPending(ha.PhaseBackup, false),
			acts: []string{"persist-relationship standby a (tcp://a:9730)", "serve 7 as standby", "take-backup 7",
				st("standby/Unknown", "standby/Synchronization Pending") + " epoch 3 nil"}},
		{name: "a new standby reaches a standalone server, which becomes its active as it reads our Hello",
			s:    ha.State{Role: ha.Standby, Peer: pA, Dialing: true},
			ev:   ha.LinkUp{Link: 7, Peer: ha.PeerInfo{Cert: certFor("a"), Name: "a", Addr: "tcp://a:9730", Role: ha.Standalone, Epoch: 3}, Dialed: true},
			want: standbyPending(ha.PhaseBackup, false),
			acts: []string{"persist-relationship standby a (tcp://a:9730)", "serve 7 as standby", "take-backup 7",
				st("standby/Unknown", "standby/Synchronization Pending") + " epoch 3 nil"}},
		{name: "a standalone server that dials a standby is no active",
			s:    standbyDC,
			ev:   ha.LinkUp{Link: 7, Peer: ha.PeerInfo{Cert: certFor("a"), Name: "a", Addr: "tcp://a:9730", Role: ha.Standalone, Epoch: 3}},
			want: standbyDC, acts: []string{"disconnect 7 ErrPeerConflict"}},
		{name: "a disconnected standby resyncs from scratch", s: standbyDisc, ev: ha.LinkUp{Link: 7, Peer: infoA},
			want: standbyPending(ha.PhaseBackup, false),
			acts: []string{"serve 7 as standby", "take-backup 7", st("standby/Disconnected", "standby/Synchronization Pending") + " epoch 3 nil"}},
		{name: "the standby adopts its active's raised epoch", s: standbyDC, ev: ha.LinkUp{Link: 7, Peer: mod2(infoA, 5)},
			want: mod(standbyPending(ha.PhaseBackup, true), func(s *ha.State) { s.Epoch, s.Seen = 5, 5 }),
			acts: []string{"persist-relationship standby a (tcp://a:9730)", "serve 7 as standby", "take-autobackup 7",
				st("standby/Disconnected Consistent", "standby/Synchronization Pending") + " epoch 5 nil"}},
		{name: "two standbys", s: standbyDC, ev: ha.LinkUp{Link: 7, Peer: ha.PeerInfo{Cert: certFor("a"), Name: "a", Role: ha.Standby, Epoch: 3}},
			want: standbyDC, acts: []string{"disconnect 7 ErrPeerConflict"}},
		{name: "the standby meets a stale active", s: mod(standbyDC, func(s *ha.State) { s.Epoch, s.Seen = 4, 4 }), ev: ha.LinkUp{Link: 7, Peer: infoA},
			want: mod(standbyDC, func(s *ha.State) { s.Epoch, s.Seen = 4, 4 }), acts: []string{"disconnect 7 ErrStaleEpoch"}},
		{name: "a stranger connects to the standby", s: standbyDC, ev: ha.LinkUp{Link: 7, Peer: ha.PeerInfo{Cert: certFor("x"), Name: "x", Role: ha.Active, Epoch: 3}},
			want: standbyDC, acts: []string{"disconnect 7 ErrNotPartner"}},
		{name: "a demoted server synchronized by the new active", s: demoted,
			ev:   ha.LinkUp{Link: 7, Peer: ha.PeerInfo{Cert: certFor("b"), Name: "b", Addr: "tcp://b:9730", Role: ha.Active, Epoch: 4}},
			want: ha.State{Role: ha.Standby, Conn: ha.SyncPending, Peer: pB, Epoch: 4, Seen: 4, Link: 7, Phase: ha.PhaseBackup},
			acts: []string{"persist-relationship standby b (tcp://b:9730)", "serve 7 as standby", "take-backup 7",
				st("disconnected-standby/Disconnected", "standby/Synchronization Pending") + " epoch 4 nil"}},
		{name: "a demoted server refuses an active below the highest epoch", s: demoted,
			ev: ha.LinkUp{Link: 7, Peer: ha.PeerInfo{Cert: certFor("b"), Name: "b", Role: ha.Active, Epoch: 3}}, want: demoted, acts: []string{"disconnect 7 ErrDemoted"}},
		{name: "link up, basic edition", s: standalone, ev: ha.LinkUp{Link: 7, Peer: infoB}, cfg: &basic, want: standalone,
			acts: []string{"disconnect 7 ErrBasicEdition"}},

		// Link down.
		{name: "active loses a synchronized link: new series", s: activeSync, ev: ha.LinkDown{Link: 7, Err: errBoom},
			want: mod(activeSync, func(s *ha.State) { s.Conn, s.Link, s.Reconnect = ha.DisconnectedConsistent, 0, sched(now) }),
			acts: []string{st("active/Synchronized", "active/Disconnected Consistent") + " epoch 3 boom"}},
		{name: "active loses a resync: the series goes on", s: activePending(ha.PhaseStream, true), ev: ha.LinkDown{Link: 7, Err: errBoom},
			want: mod(activeDC, func(s *ha.State) { s.Reconnect = ha.Schedule{Attempts: 2, Last: now, Next: now.Add(time.Minute)} }),
			acts: []string{"emit sync-aborted active/Synchronization Pending -> active/Disconnected Consistent epoch 3 boom",
				st("active/Synchronization Pending", "active/Disconnected Consistent") + " epoch 3 boom"}},
		{name: "active loses the last resync attempt: gives up",
			s:    mod(activePending(ha.PhaseStream, true), func(s *ha.State) { s.Reconnect.Attempts = 3 }),
			ev:   ha.LinkDown{Link: 7, Err: errBoom},
			want: mod(activeDC, func(s *ha.State) { s.Reconnect = ha.Schedule{Attempts: 3, Last: now} }),
			acts: []string{"emit reconnect-stopped active/Synchronization Pending -> active/Disconnected Consistent epoch 3 ErrReconnectStopped",
				"emit sync-aborted active/Synchronization Pending -> active/Disconnected Consistent epoch 3 boom",
				st("active/Synchronization Pending", "active/Disconnected Consistent") + " epoch 3 boom"}},
		{name: "active loses a first sync: disconnected", s: activePending(ha.PhaseSnapshot, false), ev: ha.LinkDown{Link: 7, Err: errBoom},
			want: activeDisc,
			acts: []string{"emit sync-aborted active/Synchronization Pending -> active/Disconnected epoch 3 boom",
				st("active/Synchronization Pending", "active/Disconnected") + " epoch 3 boom"}},
		{name: "no automatic reconnection configured", s: activeSync, ev: ha.LinkDown{Link: 7, Err: errBoom}, cfg: &noRetry,
			want: mod(activeSync, func(s *ha.State) { s.Conn, s.Link, s.Reconnect = ha.DisconnectedConsistent, 0, ha.Schedule{Last: now} }),
			acts: []string{"emit reconnect-stopped active/Synchronized -> active/Disconnected Consistent epoch 3 ErrReconnectStopped",
				st("active/Synchronized", "active/Disconnected Consistent") + " epoch 3 boom"}},
		{name: "standby loses a synchronized link", s: standbySync, ev: ha.LinkDown{Link: 7, Err: errBoom}, want: standbyDC,
			acts: []string{st("standby/Synchronized", "standby/Disconnected Consistent") + " epoch 3 boom"}},
		{name: "standby loses the link during its backup: nothing to restore", s: standbyPending(ha.PhaseBackup, false),
			ev: ha.LinkDown{Link: 7, Err: errBoom}, want: standbyDisc,
			acts: []string{"emit sync-aborted standby/Synchronization Pending -> standby/Disconnected epoch 3 boom",
				st("standby/Synchronization Pending", "standby/Disconnected") + " epoch 3 boom"}},
		{name: "standby loses a first sync midway: restores its backup", s: standbyPending(ha.PhaseSnapshot, false),
			ev: ha.LinkDown{Link: 7, Err: errBoom}, want: standbyDisc,
			acts: []string{"restore-backup", "emit sync-aborted standby/Synchronization Pending -> standby/Disconnected epoch 3 boom",
				st("standby/Synchronization Pending", "standby/Disconnected") + " epoch 3 boom"}},
		{name: "standby loses a resync midway: restores its autobackup, still consistent", s: standbyPending(ha.PhaseStream, true),
			ev: ha.LinkDown{Link: 7, Err: errBoom}, want: standbyDC,
			acts: []string{"restore-backup", "emit sync-aborted standby/Synchronization Pending -> standby/Disconnected Consistent epoch 3 boom",
				st("standby/Synchronization Pending", "standby/Disconnected Consistent") + " epoch 3 boom"}},
		{name: "a link since replaced", s: activeSync, ev: ha.LinkDown{Link: 6, Err: errBoom}, want: activeSync, acts: []string{}},
		{name: "link down without link", s: standalone, ev: ha.LinkDown{Link: 7}, want: standalone, acts: []string{}},

		// Connect failures.
		{name: "a connection attempt fails", s: mod(activeDC, func(s *ha.State) { s.Dialing = true }), ev: ha.ConnectFailed{Err: errBoom},
			want: activeDC, acts: []string{}},
		{name: "the last attempt fails: gives up", s: mod(activeDC, func(s *ha.State) { s.Dialing, s.Reconnect = true, ha.Schedule{Attempts: 3, Last: t0} }),
			ev: ha.ConnectFailed{Err: errBoom}, want: mod(activeDC, func(s *ha.State) { s.Reconnect = ha.Schedule{Attempts: 3, Last: t0} }),
			acts: []string{"emit reconnect-stopped active/Disconnected Consistent -> active/Disconnected Consistent epoch 3 ErrReconnectStopped"}},
		{name: "a failure nobody waits for", s: activeDC, ev: ha.ConnectFailed{Err: errBoom}, want: activeDC, acts: []string{}},
		{name: "the standby's attempt fails", s: mod(standbyDC, func(s *ha.State) { s.Dialing = true }), ev: ha.ConnectFailed{Err: errBoom},
			want: standbyDC, acts: []string{}},

		// Ticks.
		{name: "tick when due: an attempt", s: activeDC, ev: ha.Tick{}, now: t0.Add(time.Minute),
			want: mod(activeDC, func(s *ha.State) {
				s.Dialing, s.Reconnect = true, ha.Schedule{Attempts: 1, Last: t0.Add(time.Minute), Next: t0.Add(2 * time.Minute)}
			}),
			acts: []string{"connect tcp://b:9730"}},
		{name: "tick early: nothing", s: activeDC, ev: ha.Tick{}, now: t0.Add(59 * time.Second), want: activeDC, acts: []string{}},
		{name: "tick while dialing: nothing", s: mod(activeDC, func(s *ha.State) { s.Dialing = true }), ev: ha.Tick{}, now: t0.Add(2 * time.Minute),
			want: mod(activeDC, func(s *ha.State) { s.Dialing = true }), acts: []string{}},
		{name: "tick for the last attempt: none after it", s: mod(activeDC, func(s *ha.State) { s.Reconnect.Attempts = 2 }), ev: ha.Tick{},
			now: t0.Add(time.Minute),
			want: mod(activeDC, func(s *ha.State) {
				s.Dialing, s.Reconnect = true, ha.Schedule{Attempts: 3, Last: t0.Add(time.Minute)}
			}),
			acts: []string{"connect tcp://b:9730"}},
		{name: "tick when disconnected: manual only", s: mod(activeDisc, func(s *ha.State) { s.Reconnect = sched(t0) }), ev: ha.Tick{},
			now: t0.Add(time.Hour), want: mod(activeDisc, func(s *ha.State) { s.Reconnect = sched(t0) }), acts: []string{}},
		{name: "tick on the standby", s: mod(standbyDC, func(s *ha.State) { s.Reconnect = sched(t0) }), ev: ha.Tick{}, now: t0.Add(time.Hour),
			want: mod(standbyDC, func(s *ha.State) { s.Reconnect = sched(t0) }), acts: []string{}},

		// The synchronization steps.
		{name: "full sync requested: snapshot", s: activePending(ha.PhaseBackup, false), ev: ha.SyncRequested{Link: 7, Full: true},
			want: activePending(ha.PhaseSnapshot, false), acts: []string{"send-snapshot 7"}},
		{name: "catch-up requested: stream", s: activePending(ha.PhaseBackup, true), ev: ha.SyncRequested{Link: 7},
			want: activePending(ha.PhaseStream, true), acts: []string{"start-stream 7"}},
		{name: "a request on another link", s: activePending(ha.PhaseBackup, false), ev: ha.SyncRequested{Link: 6, Full: true},
			want: activePending(ha.PhaseBackup, false), acts: []string{}},
		{name: "snapshot sent: stream", s: activePending(ha.PhaseSnapshot, false), ev: ha.SnapshotSent{Link: 7, Index: 40},
			want: activePending(ha.PhaseStream, false), acts: []string{"start-stream 7"}},
		{name: "a fallback snapshot during the stream", s: activePending(ha.PhaseStream, true), ev: ha.SnapshotSent{Link: 7, Index: 40},
			want: activePending(ha.PhaseStream, true), acts: []string{}},
		{name: "the active sees the standby caught up", s: activePending(ha.PhaseStream, true), ev: ha.StreamCaughtUp{Link: 7, Index: 90},
			want: mod(activeSync, func(s *ha.State) { s.Resync = true }),
			acts: []string{st("active/Synchronization Pending", "active/Synchronized") + " epoch 3 nil"}},
		{name: "caught up before the stream: ignored", s: activePending(ha.PhaseSnapshot, false), ev: ha.StreamCaughtUp{Link: 7, Index: 90},
			want: activePending(ha.PhaseSnapshot, false), acts: []string{}},
		{name: "backup taken: full sync asked", s: standbyPending(ha.PhaseBackup, false), ev: ha.BackupTaken{Link: 7},
			want: standbyPending(ha.PhaseSnapshot, false), acts: []string{"request-sync 7 (full true)"}},
		{name: "autobackup taken: catch-up asked", s: standbyPending(ha.PhaseBackup, true), ev: ha.BackupTaken{Link: 7},
			want: standbyPending(ha.PhaseStream, true), acts: []string{"request-sync 7 (full false)"}},
		{name: "a backup for a link since gone", s: standbyDC, ev: ha.BackupTaken{Link: 7}, want: standbyDC, acts: []string{}},
		{name: "backup failed: no sync starts", s: standbyPending(ha.PhaseBackup, false), ev: ha.BackupFailed{Link: 7, Err: errBoom},
			want: standbyDisc,
			acts: []string{"disconnect 7 boom", "emit sync-aborted standby/Synchronization Pending -> standby/Disconnected epoch 3 boom",
				st("standby/Synchronization Pending", "standby/Disconnected") + " epoch 3 boom"}},
		{name: "autobackup failed: still consistent", s: standbyPending(ha.PhaseBackup, true), ev: ha.BackupFailed{Link: 7, Err: errBoom},
			want: standbyDC,
			acts: []string{"disconnect 7 boom", "emit sync-aborted standby/Synchronization Pending -> standby/Disconnected Consistent epoch 3 boom",
				st("standby/Synchronization Pending", "standby/Disconnected Consistent") + " epoch 3 boom"}},
		{name: "snapshot installed", s: standbyPending(ha.PhaseSnapshot, false), ev: ha.SnapshotInstalled{Link: 7, Index: 40},
			want: standbyPending(ha.PhaseStream, false), acts: []string{}},
		{name: "the standby caught up", s: standbyPending(ha.PhaseStream, false), ev: ha.StreamCaughtUp{Link: 7, Index: 90},
			want: standbySync, acts: []string{"persist-ha-state Disconnected Consistent",
				st("standby/Synchronization Pending", "standby/Synchronized") + " epoch 3 nil"}},
		{name: "the standby fails to persist while synchronized", s: standbySync, ev: ha.SyncFailed{Link: 7, Err: errBoom},
			want: standbyDC, acts: []string{"disconnect 7 boom", st("standby/Synchronized", "standby/Disconnected Consistent") + " epoch 3 boom"}},
		{name: "the standby fails to persist during a first sync", s: standbyPending(ha.PhaseStream, false), ev: ha.SyncFailed{Link: 7, Err: errBoom},
			want: standbyDisc,
			acts: []string{"disconnect 7 boom", "restore-backup", "emit sync-aborted standby/Synchronization Pending -> standby/Disconnected epoch 3 boom",
				st("standby/Synchronization Pending", "standby/Disconnected") + " epoch 3 boom"}},
		{name: "the active cannot read its journal", s: activeSync, ev: ha.SyncFailed{Link: 7, Err: errBoom},
			want: mod(activeSync, func(s *ha.State) { s.Conn, s.Link, s.Reconnect = ha.DisconnectedConsistent, 0, sched(now) }),
			acts: []string{"disconnect 7 boom", st("active/Synchronized", "active/Disconnected Consistent") + " epoch 3 boom"}},
		{name: "restore failed: not consistent any more", s: standbyDC, ev: ha.RestoreFailed{Err: errBoom}, want: standbyDisc,
			acts: []string{"persist-ha-state Disconnected", "emit sync-aborted standby/Disconnected Consistent -> standby/Disconnected epoch 3 boom",
				st("standby/Disconnected Consistent", "standby/Disconnected") + " epoch 3 boom"}},

		// backup restore.
		{name: "restore on a standalone server", s: standalone, ev: ha.Restore{Backup: "/b/x.zip"}, want: standalone,
			acts: []string{"restore-from /b/x.zip"}},
		{name: "restore on a standalone server, basic edition", s: standalone, ev: ha.Restore{Backup: "/b/x.zip"}, cfg: &basic,
			want: standalone, acts: []string{"restore-from /b/x.zip"}},
		{name: "restore on the active is refused", s: activeDC, ev: ha.Restore{Backup: "/b/x.zip"}, want: activeDC,
			acts: []string{"refuse ErrWrongRole"}},
		{name: "restore on a synchronized standby is refused", s: standbySync, ev: ha.Restore{Backup: "/b/x.zip"}, want: standbySync,
			acts: []string{"refuse ErrSynchronized"}},
		{name: "restore on a synchronizing standby is refused", s: standbyPending(ha.PhaseStream, true), ev: ha.Restore{Backup: "/b/x.zip"},
			want: standbyPending(ha.PhaseStream, true), acts: []string{"refuse ErrSyncInProgress"}},
		{name: "restore on a standby that dials is refused", s: mod(standbyDC, func(s *ha.State) { s.Dialing = true }),
			ev: ha.Restore{Backup: "/b/x.zip"}, want: mod(standbyDC, func(s *ha.State) { s.Dialing = true }),
			acts: []string{"refuse ErrConnecting"}},
		{name: "restore on a disconnected consistent standby: in place, then Disconnected", s: standbyDC, ev: ha.Restore{Backup: "/b/x.zip"},
			want: standbyDisc,
			acts: []string{"restore-from /b/x.zip", "persist-ha-state Disconnected",
				st("standby/Disconnected Consistent", "standby/Disconnected") + " epoch 3 nil"}},
		{name: "restore on a disconnected standby", s: standbyDisc, ev: ha.Restore{Backup: "/b/x.zip"}, want: standbyDisc,
			acts: []string{"restore-from /b/x.zip"}},
		{name: "restore on a demoted server: it stays demoted", s: demoted, ev: ha.Restore{Backup: "/b/x.zip"}, want: demoted,
			acts: []string{"restore-from /b/x.zip"}},
		{name: "a restore that fails is refused, nothing changes", s: standbyDC,
			ev:   ha.ActionFailed{Cause: ha.Restore{Backup: "/b/x.zip"}, Action: ha.RestoreFrom{Backup: "/b/x.zip"}, Err: errBoom},
			want: standbyDC, acts: []string{"refuse boom"}},

		// Higher epochs.
		{name: "the active hears of a higher epoch: demoted at once", s: activeSync, ev: ha.HigherEpochSeen{Epoch: 4, From: "storage X"},
			want: ha.State{Role: ha.DisconnectedStandby, Conn: ha.Disconnected, Peer: pB, Epoch: 3, Seen: 4},
			acts: []string{"persist-relationship disconnected-standby b (tcp://b:9730)", "stop-active-duties", "disconnect 7 ErrDemoted",
				"emit demoted active/Synchronized -> disconnected-standby/Disconnected epoch 4 nil",
				st("active/Synchronized", "disconnected-standby/Disconnected") + " epoch 3 nil"}},
		{name: "a standalone server fenced by storage", s: standalone, ev: ha.HigherEpochSeen{Epoch: 9},
			want: ha.State{Role: ha.DisconnectedStandby, Conn: ha.Disconnected, Epoch: 3, Seen: 9},
			acts: []string{"persist-relationship disconnected-standby", "stop-active-duties",
				"emit demoted standalone/Unknown -> disconnected-standby/Disconnected epoch 9 nil",
				st("standalone/Unknown", "disconnected-standby/Disconnected") + " epoch 3 nil"}},
		{name: "the same epoch is not higher", s: activeSync, ev: ha.HigherEpochSeen{Epoch: 3}, want: activeSync, acts: []string{}},
		{name: "a standby only notes it, durably", s: standbyDC, ev: ha.HigherEpochSeen{Epoch: 9},
			want: mod(standbyDC, func(s *ha.State) { s.Seen = 9 }), acts: []string{"persist-relationship standby a (tcp://a:9730)"}},

		// Persistence that fails.
		{name: "takeover whose epoch cannot be persisted is refused", s: standbyDC,
			ev:   ha.ActionFailed{Cause: ha.Takeover{}, Action: ha.PersistEpoch{Epoch: 4}, Err: errBoom},
			want: standbyDC, acts: []string{"refuse boom"}},
		{name: "set-as-standby not persisted is refused", s: standalone,
			ev:   ha.ActionFailed{Cause: ha.SetAsStandby{Addr: "tcp://a:1"}, Action: ha.PersistRelationship{}, Err: errBoom},
			want: standalone, acts: []string{"refuse boom"}},
		{name: "a relationship not persisted drops the link", s: standalone,
			ev:   ha.ActionFailed{Cause: ha.LinkUp{Link: 7, Peer: infoB}, Action: ha.PersistRelationship{}, Err: errBoom},
			want: standalone, acts: []string{"disconnect 7 boom"}},
		{name: "a demotion not persisted still stops acting", s: activeSync,
			ev:   ha.ActionFailed{Cause: ha.HigherEpochSeen{Epoch: 4}, Action: ha.PersistRelationship{}, Err: errBoom},
			want: ha.State{Role: ha.DisconnectedStandby, Conn: ha.Disconnected, Peer: pB, Epoch: 3, Seen: 4},
			acts: []string{"stop-active-duties", "disconnect 7 ErrDemoted",
				"emit demoted active/Synchronized -> disconnected-standby/Disconnected epoch 4 boom",
				st("active/Synchronized", "disconnected-standby/Disconnected") + " epoch 3 boom"}},
		{name: "a higher epoch on a link, not persisted: stops acting, drops the link", s: mod(activeDC, func(s *ha.State) { s.Dialing = true }),
			ev: ha.ActionFailed{Cause: ha.LinkUp{Link: 7, Peer: ha.PeerInfo{Cert: certFor("b"), Name: "b", Role: ha.Active, Epoch: 4}, Dialed: true},
				Action: ha.PersistRelationship{}, Err: errBoom},
			want: ha.State{Role: ha.DisconnectedStandby, Conn: ha.Disconnected, Peer: pB, Epoch: 3, Seen: 4},
			acts: []string{"stop-active-duties", "emit demoted active/Disconnected Consistent -> disconnected-standby/Disconnected epoch 4 boom",
				"disconnect 7 boom", st("active/Disconnected Consistent", "disconnected-standby/Disconnected") + " epoch 3 boom"}},
	}
}

// partner is testCfg with [ha] partner_name = name.
func partner(name string) *ha.Config {
	return withCfg(func(c *ha.Config) { c.PartnerName = name })
}

func mod2(p ha.PeerInfo, e hal.Epoch) ha.PeerInfo {
	p.Epoch = e
	return p
}

func TestStep(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, tt := range stepCases() {
		if seen[tt.name] {
			t.Fatalf("duplicate case name %q", tt.name)
		}
		seen[tt.name] = true
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			at := now
			if !tt.now.IsZero() {
				at = tt.now
			}
			cfg := testCfg
			if tt.cfg != nil {
				cfg = *tt.cfg
			}
			got, acts := ha.Step(tt.s, tt.ev, at, cfg)
			if got != tt.want {
				t.Errorf("state (-want +got):\n-%+v\n+%+v", tt.want, got)
			}
			if g := renderAll(acts); !slices.Equal(g, tt.acts) {
				t.Errorf("actions (-want +got):\n-%s\n+%s", strings.Join(tt.acts, "\n-"), strings.Join(g, "\n+"))
			}
		})
	}
}

// TestStepInvariants steps every event from every role × connection state
// × link, dialing and epoch combination, and checks what must hold
// whatever the transition.
func TestStepInvariants(t *testing.T) {
	t.Parallel()
	events := []ha.Event{
		ha.Start{}, ha.SetStandby{Addr: "tcp://c:1"}, ha.SetAsStandby{Addr: "tcp://c:1"}, ha.RemoveStandby{}, ha.RemoveActive{},
		ha.SetStandby{Addr: "tcp://c:1", Name: "c"}, ha.SetAsStandby{Addr: "tcp://c:1", Name: "c"},
		ha.ReconnectCommand{}, ha.Takeover{}, ha.Tick{}, ha.Restore{Backup: "x"},
		ha.LinkDown{Link: 7, Err: errBoom}, ha.ConnectFailed{Err: errBoom},
		ha.SyncRequested{Link: 7, Full: true}, ha.SyncRequested{Link: 7}, ha.SnapshotSent{Link: 7, Index: 3},
		ha.SnapshotInstalled{Link: 7, Index: 3}, ha.StreamCaughtUp{Link: 7, Index: 3}, ha.SyncFailed{Link: 7, Err: errBoom},
		ha.BackupTaken{Link: 7}, ha.BackupFailed{Link: 7, Err: errBoom}, ha.RestoreFailed{Err: errBoom},
		ha.HigherEpochSeen{Epoch: 2}, ha.HigherEpochSeen{Epoch: 3}, ha.HigherEpochSeen{Epoch: 4},
	}
	for _, r := range []ha.Role{ha.Standalone, ha.Active, ha.Standby, ha.DisconnectedStandby} {
		for _, e := range []hal.Epoch{2, 3, 4} {
			for _, dialed := range []bool{false, true} {
				// The partner, a stranger, a stranger that says it is the
				// partner, the partner's certificate under another name.
				for _, who := range []struct{ name, cert string }{{"b", "b"}, {"x", "x"}, {"b", "x"}, {"x", "b"}} {
					events = append(events, ha.LinkUp{Link: 8, Peer: ha.PeerInfo{Name: who.name, Addr: "tcp://" + who.name + ":9730",
						Role: r, Epoch: e, Cert: certFor(who.cert)}, Dialed: dialed})
				}
			}
		}
	}
	var states []ha.State
	for _, role := range []ha.Role{ha.Standalone, ha.Active, ha.Standby, ha.DisconnectedStandby} {
		for conn := ha.Unknown; conn <= ha.Disconnected; conn++ {
			for _, phase := range []ha.Phase{ha.PhaseIdle, ha.PhaseBackup, ha.PhaseSnapshot, ha.PhaseStream} {
				for _, link := range []ha.LinkID{0, 7} {
					for _, dialing := range []bool{false, true} {
						linked := conn == ha.SyncPending || conn == ha.Synchronized
						if linked != (link != 0) || (phase != ha.PhaseIdle) != (conn == ha.SyncPending) {
							continue // not a reachable state
						}
						if role == ha.Standalone && (conn != ha.Unknown || link != 0 || dialing) {
							continue
						}
						s := ha.State{Role: role, Conn: conn, Epoch: 3, Seen: 3, Link: link, Dialing: dialing, Phase: phase,
							Reconnect: ha.Schedule{Attempts: 1, Last: t0, Next: t0.Add(time.Minute)}}
						if role != ha.Standalone {
							s.Peer = pB
						}
						states = append(states, s)
					}
				}
			}
		}
	}
	t.Logf("%d states × %d events × 2 editions × 3 partner configurations", len(states), len(events))
	for _, basic := range []bool{false, true} {
		for _, pc := range []ha.Config{{}, {PartnerName: "b"}, {PartnerFingerprint: certFor("b").Fingerprint}} {
			cfg := testCfg
			cfg.Basic, cfg.PartnerName, cfg.PartnerFingerprint = basic, pc.PartnerName, pc.PartnerFingerprint
			for _, s := range states {
				for _, ev := range events {
					n, acts := ha.Step(s, ev, now, cfg)
					where := fmt.Sprintf("%+v + %s (basic %t, partner %q %s)", s, ev, basic, pc.PartnerName, pc.PartnerFingerprint)
					checkInvariants(t, where, s, ev, n, acts, basic)
					checkStranger(t, where, s, ev, n, acts, cfg)
				}
			}
		}
	}
}

// checkStranger: a LinkUp from a peer whose certificate is not the
// partner's (or whose Hello names another server) changes nothing but
// the end of a dial, whatever epoch or role it claims.
func checkStranger(t *testing.T, where string, s ha.State, ev ha.Event, n ha.State, acts []ha.Action, cfg ha.Config) {
	t.Helper()
	e, ok := ev.(ha.LinkUp)
	if !ok || cfg.Basic {
		return
	}
	name := s.Peer.Name
	if name == "" {
		name = cfg.PartnerName
	}
	var partner bool
	if !cfg.PartnerFingerprint.IsZero() {
		partner = e.Peer.Cert.Fingerprint == cfg.PartnerFingerprint && (name == "" || e.Peer.Name == name)
	} else {
		partner = name != "" && e.Peer.Cert.Names(name) && e.Peer.Name == name
	}
	if partner {
		return
	}
	want := s
	if e.Dialed {
		want.Dialing = false
	}
	if n != want {
		t.Errorf("%s: a stranger changed the state to %+v", where, n)
	}
	for _, a := range acts {
		switch a := a.(type) {
		case ha.Disconnect:
			if a.Link != e.Link || !errors.Is(a.Err, ha.ErrNotPartner) {
				t.Errorf("%s: a stranger's link: %s", where, render(a))
			}
		case ha.Emit:
			if a.Notice.Kind != ha.ReconnectStopped {
				t.Errorf("%s: a stranger's link: %s", where, render(a))
			}
		default:
			t.Errorf("%s: a stranger's link: %s", where, render(a))
		}
	}
}

func checkInvariants(t *testing.T, where string, s ha.State, ev ha.Event, n ha.State, acts []ha.Action, basic bool) {
	t.Helper()
	has := func(want func(ha.Action) bool) bool { return slices.ContainsFunc(acts, want) }
	is := func(a ha.Action) func(ha.Action) bool {
		return func(b ha.Action) bool { return fmt.Sprintf("%T", a) == fmt.Sprintf("%T", b) }
	}
	// The link and the connection state agree.
	if linked := n.Conn == ha.SyncPending || n.Conn == ha.Synchronized; linked != (n.Link != 0) {
		t.Errorf("%s: conn %s with link %d", where, n.Conn, n.Link)
	}
	if (n.Phase != ha.PhaseIdle) != (n.Conn == ha.SyncPending) {
		t.Errorf("%s: phase %s in %s", where, n.Phase, n.Conn)
	}
	// A standalone server has no partner and no link.
	if n.Role == ha.Standalone && (!n.Peer.IsZero() || n.Link != 0 || n.Conn != ha.Unknown) {
		t.Errorf("%s: standalone with %+v", where, n)
	}
	// Only acting roles get duties; leaving an acting role stops them.
	if has(is(ha.StartActiveDuties{})) && !n.Role.Acting() {
		t.Errorf("%s: duties started in role %s", where, n.Role)
	}
	if s.Role.Acting() && !n.Role.Acting() && !has(is(ha.StopActiveDuties{})) {
		t.Errorf("%s: stopped acting without StopActiveDuties: %v", where, acts)
	}
	// An acting server never keeps acting below an epoch it has seen in a
	// peer's Hello or a notice.
	if n.Role.Acting() && n.Epoch < n.Seen {
		t.Errorf("%s: acting at epoch %d having seen %d", where, n.Epoch, n.Seen)
	}
	// Epochs never go down; an acting server's epoch changes only with
	// PersistEpoch, and persistence always comes first.
	if n.Seen < s.Seen || (n.Role.Acting() && n.Epoch < s.Epoch) {
		t.Errorf("%s: epoch went down: %+v", where, n)
	}
	if n.Role.Acting() && n.Epoch != s.Epoch && (len(acts) == 0 || render(acts[0]) != fmt.Sprintf("persist-epoch %d", n.Epoch)) {
		t.Errorf("%s: epoch %d -> %d not persisted first: %v", where, s.Epoch, n.Epoch, renderAll(acts))
	}
	// Fallible actions first, then the best-effort record of the HA
	// state, then the rest.
	stage := 0
	for _, a := range acts {
		at := 2
		switch a.(type) {
		case ha.PersistEpoch, ha.PersistRelationship, ha.RestoreFrom:
			at = 0
		case ha.PersistHAState:
			at = 1
		}
		if at < stage {
			t.Errorf("%s: persistence after other actions: %v", where, renderAll(acts))
		}
		stage = at
	}
	// A relationship change is persisted: a new role or partner before
	// anything, a new HA state to resume from at least as a record.
	nr, sr := n.Relationship(), s.Relationship()
	if (nr.Role != sr.Role || nr.Peer != sr.Peer) && !has(is(ha.PersistRelationship{})) {
		t.Errorf("%s: relationship changed without persisting it", where)
	}
	if nr != sr && !has(is(ha.PersistRelationship{})) && !has(is(ha.PersistHAState{})) {
		t.Errorf("%s: the HA state to resume from changed without persisting it", where)
	}
	// A state change is emitted.
	if n.Status() != s.Status() && !slices.ContainsFunc(acts, func(a ha.Action) bool {
		e, ok := a.(ha.Emit)
		return ok && e.Notice.Kind == ha.StateChanged && e.Notice.To == n.Status()
	}) {
		t.Errorf("%s: state change not emitted: %v", where, renderAll(acts))
	}
	// Refusals leave the state alone; only commands are refused.
	if has(is(ha.Refuse{})) && (n != s || !isCommand(ev)) {
		t.Errorf("%s: refusal that changed %+v", where, n)
	}
	// The basic edition refuses every HA command and keeps no link.
	if _, restore := ev.(ha.Restore); basic && !restore {
		if isCommand(ev) && (len(acts) != 1 || render(acts[0]) != "refuse ErrBasicEdition") {
			t.Errorf("%s: basic edition: %v", where, renderAll(acts))
		}
		if _, ok := ev.(ha.LinkUp); ok && n.Link != s.Link {
			t.Errorf("%s: basic edition kept a link", where)
		}
	}
	// A link taken into use is served, in the role the server now has.
	if n.Link != 0 && n.Link != s.Link && !slices.ContainsFunc(acts, func(a ha.Action) bool {
		sv, ok := a.(ha.Serve)
		return ok && sv.Link == n.Link && sv.Role == n.Role
	}) {
		t.Errorf("%s: link %d used without Serve: %v", where, n.Link, renderAll(acts))
	}
	// A disconnected standby never connects on its own.
	if s.Role == ha.DisconnectedStandby && n.Role == ha.DisconnectedStandby && has(is(ha.Connect{})) {
		if _, ok := ev.(ha.ReconnectCommand); !ok {
			t.Errorf("%s: a demoted server dialed on its own", where)
		}
	}
}

func isCommand(ev ha.Event) bool {
	switch ev.(type) {
	case ha.SetStandby, ha.SetAsStandby, ha.RemoveStandby, ha.RemoveActive, ha.ReconnectCommand, ha.Takeover, ha.Restore:
		return true
	}
	return false
}
