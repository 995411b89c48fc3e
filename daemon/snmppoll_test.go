package daemon

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/internal/snmpagent"
)

// stateOID is lockstepState under the default enterprise prefix.
const stateOID = ".1.3.6.1.4.1.61942.1.3"

// pollRig is a lab, an in-process lockstepd on its private bus, and the
// system's snmpd serving LOCKSTEP-MIB's state by lockstepctl snmp
// pass-persist, as docs/nms.md tells a site to.
type pollRig struct {
	*labRig
	agent *snmpagent.Agent
	ctl   string
}

func newPollRig(t *testing.T, cache time.Duration) *pollRig {
	snmpagent.Tool(t, "snmpd")
	snmpagent.Tool(t, "snmpwalk")
	r := &pollRig{labRig: newLabRig(t, 5*time.Second)}
	r.ctl = snmpagent.Lockstepctl(t)
	r.agent = snmpagent.Start(t, stateOID,
		fmt.Sprintf("%s --bus %s snmp pass-persist --cache %s", r.ctl, r.bus, cache), "../etc/mib/LOCKSTEP-MIB.txt")
	return r
}

// ctlJSON runs the built lockstepctl with --json and decodes its answer.
func (r *pollRig) ctlJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out, err := exec.Command(r.ctl, append([]string{"--bus", r.bus, "--json"}, args...)...).Output()
	if err != nil {
		t.Fatalf("lockstepctl %v: %v", args, err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("lockstepctl %v: %v\n%s", args, err, out)
	}
}

// walk is the state walked, by numeric OID.
func (r *pollRig) walk(t *testing.T) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, v := range r.agent.Walk(t, stateOID) {
		m[v.OID] = v.Value
	}
	return m
}

// strIndex is a name as a string index.
func strIndex(s string) string {
	out := strconv.Itoa(len(s))
	for i := 0; i < len(s); i++ {
		out += "." + strconv.Itoa(int(s[i]))
	}
	return out
}

// dateAndTime reads snmpwalk's hex of a DateAndTime (zero for the
// "no time" of eight zero octets).
func dateAndTime(t *testing.T, hexText string) time.Time {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(hexText), " ", ""))
	if err != nil {
		t.Fatalf("DateAndTime %q: %v", hexText, err)
	}
	switch len(b) {
	case 8:
		if strings.Trim(string(b), "\x00") != "" {
			t.Fatalf("an 8-octet DateAndTime that is not zero: %x", b)
		}
		return time.Time{}
	case 11:
		if b[8] != '+' || b[9] != 0 || b[10] != 0 {
			t.Fatalf("DateAndTime %x is not UTC", b)
		}
		return time.Date(int(b[0])<<8|int(b[1]), time.Month(b[2]), int(b[3]), int(b[4]), int(b[5]), int(b[6]),
			int(b[7])*100_000_000, time.UTC)
	}
	t.Fatalf("DateAndTime of %d octets: %x", len(b), b)
	return time.Time{}
}

func truthOf(b bool) string { return map[bool]string{true: "1", false: "2"}[b] }

// sameTime: a DateAndTime keeps tenths of a second.
func sameTime(a, b time.Time) bool {
	return a.UTC().Truncate(100 * time.Millisecond).Equal(b.UTC().Truncate(100 * time.Millisecond))
}

// TestPollTheStateThroughSnmpd walks every table of LOCKSTEP-MIB's state
// through the real snmpd and lockstepctl snmp pass-persist, against what
// lockstepctl --json shows; then suspends a session and sees its
// last-change and transition counter move, and its group's phase, last
// freeze and counter, though no poll saw the Suspending in between.
func TestPollTheStateThroughSnmpd(t *testing.T) {
	t.Parallel()
	r := newPollRig(t, 50*time.Millisecond)
	c, _ := r.start(safeFor5s, nil)
	r.defineSession(c, "s1", "cg1", 0)
	r.defineSession(c, "s2", "cg2", 1)

	check := func(t *testing.T, w map[string]string, oid, want, what string) {
		t.Helper()
		if got, ok := w[oid]; !ok || got != want {
			t.Errorf("%s (%s) = %q (present %v), want %q", what, oid, got, ok, want)
		}
	}
	var st api.StatusDoc
	var hd api.HADoc
	var sessions []api.SessionDoc
	var storage []api.StorageDoc
	var hb api.HeartbeatDoc
	w := r.walk(t)
	r.ctlJSON(t, &st, "status")
	r.ctlJSON(t, &hd, "ha", "status")
	r.ctlJSON(t, &sessions, "session", "list")
	r.ctlJSON(t, &storage, "storage", "list")
	r.ctlJSON(t, &hb, "heartbeat", "show")

	local := stateOID + ".1."
	check(t, w, local+"1.0", st.Server, "server name")
	check(t, w, local+"2.0", "2", "role standalone")
	check(t, w, local+"3.0", "3", "HA state Standalone")
	check(t, w, local+"4.0", fmt.Sprint(hd.Epoch), "epoch")
	check(t, w, local+"5.0", truthOf(hd.Acting), "acting")
	if started := dateAndTime(t, w[local+"11.0"]); !sameTime(started, st.Started) || started.IsZero() {
		t.Errorf("started %v, lockstepctl says %v", started, st.Started)
	}

	if len(sessions) != 2 {
		t.Fatalf("%d sessions", len(sessions))
	}
	states := map[api.SessionState]string{api.StatePrepared: "4", api.StateSuspended: "6"}
	statuses := map[api.SessionStatus]string{api.StatusNormal: "3", api.StatusSevere: "5", api.StatusWarning: "4"}
	for _, s := range sessions {
		e, i := stateOID+".2.1.", "."+strIndex(s.Name)
		check(t, w, e+"2"+i, s.Name, "session name")
		check(t, w, e+"3"+i, string(s.Type), "session type")
		check(t, w, e+"4"+i, states[s.State], s.Name+" state "+string(s.State))
		check(t, w, e+"5"+i, statuses[s.Status], s.Name+" status "+string(s.Status))
		check(t, w, e+"6"+i, truthOf(s.Recoverable), "recoverable")
		check(t, w, e+"7"+i, truthOf(s.Copying), "copying")
		check(t, w, e+"8"+i, truthOf(s.IOHeld), "io held")
		check(t, w, e+"9"+i, fmt.Sprint(len(s.CopySets)), "copy sets")
		check(t, w, e+"10"+i, s.CG, "cg")
		check(t, w, e+"12"+i, fmt.Sprint(s.Transitions), "transitions")
		if got := dateAndTime(t, w[e+"11"+i]); !sameTime(got, s.LastChange) {
			t.Errorf("%s last change %v, lockstepctl says %v", s.Name, got, s.LastChange)
		}
	}
	if len(storage) != 4 {
		t.Fatalf("%d storage systems", len(storage))
	}
	for _, sd := range storage {
		e, i := stateOID+".3.1.", "."+strIndex(string(sd.Serial))
		check(t, w, e+"2"+i, string(sd.Serial), "serial")
		check(t, w, e+"3"+i, truthOf(sd.Reachable), "reachable")
		check(t, w, e+"5"+i, truthOf(sd.Heartbeat), "heartbeat capable")
		check(t, w, e+"6"+i, fmt.Sprint(len(sd.Connections)), "connections")
		check(t, w, e+"8"+i, fmt.Sprint(sd.Transitions), "transitions")
		if sd.Transitions == 0 || sd.LastChange.IsZero() {
			t.Errorf("%s: reachable since the start, yet transitions %d, last change %v", sd.Serial, sd.Transitions, sd.LastChange)
		}
		for _, cd := range sd.Connections {
			ce := stateOID + ".4.1."
			ci := i + "." + strIndex(cd.Name)
			check(t, w, ce+"2"+ci, cd.Name, "connection name")
			check(t, w, ce+"3"+ci, "2", "connection kind direct")
			check(t, w, ce+"4"+ci, map[string]string{"connected": "2", "connecting": "3"}[cd.State], "connection state "+cd.State)
			check(t, w, ce+"5"+ci, cd.Detail, "connection detail")
		}
	}
	if len(hb.Groups) != 2 {
		t.Fatalf("%d groups", len(hb.Groups))
	}
	for _, g := range hb.Groups {
		e, i := stateOID+".5.1.", "."+strIndex(g.Name)
		check(t, w, e+"2"+i, g.Name, "cg name")
		check(t, w, e+"3"+i, "2", "cg phase mirroring")
		check(t, w, e+"4"+i, fmt.Sprint(len(g.Systems)), "cg systems")
		check(t, w, e+"5"+i, "0", "cg frozen systems")
		check(t, w, e+"6"+i, "00 00 00 00 00 00 00 00", "cg last freeze")
	}

	// A change between two polls.
	s1 := func(w map[string]string, col int) string {
		return w[fmt.Sprintf("%s.2.1.%d.%s", stateOID, col, strIndex("s1"))]
	}
	cg1 := func(w map[string]string, col int) string {
		return w[fmt.Sprintf("%s.5.1.%d.%s", stateOID, col, strIndex("cg:cg1"))]
	}
	before, _ := strconv.Atoi(s1(w, 12))
	lastBefore := dateAndTime(t, s1(w, 11))
	// DateAndTime counts deciseconds: a suspend within the decisecond of
	// the last change would carry the same stamp (a make test run saw
	// 15:32:18.1 twice). Wait for the next one, so that the stamp must move.
	time.Sleep(time.Until(lastBefore.Add(100 * time.Millisecond)))
	if _, err := c.SessionCommand(context.Background(), "s1", api.CmdSuspend); err != nil {
		t.Fatal(err)
	}
	var after map[string]string
	if err := eventually(func() bool {
		after = r.walk(t)
		return s1(after, 4) == "6" && cg1(after, 3) == "5"
	}); err != nil {
		t.Fatalf("the walk never showed s1 suspended and cg1 frozen: state %s, phase %s", s1(after, 4), cg1(after, 3))
	}
	n, _ := strconv.Atoi(s1(after, 12))
	// Prepared -> Suspending -> Suspended: the poller saw only the end,
	// the counter both.
	if n < before+2 {
		t.Errorf("s1 transitions %d -> %d, want 2 more at least (Suspending, Suspended)", before, n)
	}
	if last := dateAndTime(t, s1(after, 11)); !last.After(lastBefore) {
		t.Errorf("s1 last change %v, not after %v", last, lastBefore)
	}
	if n, _ := strconv.Atoi(cg1(after, 8)); n < 2 {
		t.Errorf("cg1 transitions %d, want 2 at least (freezing, frozen)", n)
	}
	if dateAndTime(t, cg1(after, 6)).IsZero() || dateAndTime(t, cg1(after, 7)).IsZero() {
		t.Errorf("cg1 last freeze %s, last change %s", cg1(after, 6), cg1(after, 7))
	}
	if cg1(after, 5) == "0" {
		t.Errorf("cg1 frozen, yet no frozen system")
	}
	// s2 and cg2 did not change.
	check(t, after, fmt.Sprintf("%s.2.1.12.%s", stateOID, strIndex("s2")), s1w(w, "s2"), "s2 transitions")

	// Names resolve with the MIB.
	named := r.agent.Named(t, stateOID)
	for _, want := range []string{"LOCKSTEP-MIB::lockstepSessionState.\"s1\" = INTEGER: suspended(6)",
		"LOCKSTEP-MIB::lockstepCGPhase.\"cg:cg1\" = INTEGER: frozen(5)",
		"LOCKSTEP-MIB::lockstepLocalRole.0 = INTEGER: standalone(2)"} {
		if !strings.Contains(named, want) {
			t.Errorf("the named walk lacks %q:\n%s", want, named)
		}
	}
}

func s1w(w map[string]string, name string) string {
	return w[fmt.Sprintf("%s.2.1.12.%s", stateOID, strIndex(name))]
}
