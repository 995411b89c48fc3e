package ha_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/lockstep-io/lockstep/ha"
)

func TestParseFingerprint(t *testing.T) {
	t.Parallel()
	const hexFP = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	colons := strings.ToUpper(hexFP[:2])
	for i := 2; i < len(hexFP); i += 2 {
		colons += ":" + strings.ToUpper(hexFP[i:i+2])
	}
	tests := []struct {
		name, in string
		ok       bool
	}{
		{name: "plain hex", in: hexFP, ok: true},
		{name: "openssl form", in: "SHA256 Fingerprint=" + colons, ok: true},
		{name: "colons", in: colons, ok: true},
		{name: "prefixed", in: "sha256:" + hexFP, ok: true},
		{name: "short", in: hexFP[:62]},
		{name: "long", in: hexFP + "00"},
		{name: "not hex", in: "zz" + hexFP[2:]},
		{name: "all zero", in: strings.Repeat("0", 64)},
		{name: "empty", in: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := ha.ParseFingerprint(tt.in)
			if tt.ok != (err == nil) {
				t.Fatalf("ParseFingerprint(%q) = %s, %v", tt.in, f, err)
			}
			if err != nil && !errors.Is(err, ha.ErrFingerprint) {
				t.Errorf("error %v does not wrap ErrFingerprint", err)
			}
			if tt.ok && f.String() != hexFP {
				t.Errorf("ParseFingerprint(%q) = %s", tt.in, f)
			}
		})
	}
}

func FuzzParseFingerprint(f *testing.F) {
	f.Add("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	f.Add("SHA256 Fingerprint=AB:CD")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		fp, err := ha.ParseFingerprint(s)
		if err != nil {
			if !errors.Is(err, ha.ErrFingerprint) {
				t.Fatalf("error %v does not wrap ErrFingerprint", err)
			}
			return
		}
		if fp.IsZero() {
			t.Fatal("a zero fingerprint was accepted")
		}
		again, err := ha.ParseFingerprint(fp.String())
		if err != nil || again != fp {
			t.Fatalf("round trip of %s: %s, %v", fp, again, err)
		}
	})
}

func TestCertIdentityNames(t *testing.T) {
	t.Parallel()
	c := ha.CertIdentity{DNSNames: []string{"DB2.example.com", "db2"}, URIs: []string{"urn:lockstep:server:db3", "spiffe://x/db4"}}
	tests := []struct {
		name string
		want bool
	}{
		{"db2", true}, {"db2.example.com", true}, {"db3", true}, {"urn:lockstep:server:db3", true},
		{"spiffe://x/db4", true}, {"db4", false}, {"db", false}, {"", false}, {"urn:lockstep:server:db2", false},
	}
	for _, tt := range tests {
		if got := c.Names(tt.name); got != tt.want {
			t.Errorf("Names(%q) = %t, want %t", tt.name, got, tt.want)
		}
	}
}

// TestRelationshipResumeState: what a restart resumes from, for every
// state a server can be in.
func TestRelationshipResumeState(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		s    ha.State
		want ha.ConnState
	}{
		{"standalone", standalone, ha.Unknown},
		{"never synchronized", ha.State{Role: ha.Active, Peer: pB}, ha.Unknown},
		{"synchronized", activeSync, ha.DisconnectedConsistent},
		{"disconnected consistent", standbyDC, ha.DisconnectedConsistent},
		{"resynchronizing: a failure restores the autobackup", activePending(ha.PhaseStream, true), ha.DisconnectedConsistent},
		{"first synchronization under way", standbyPending(ha.PhaseSnapshot, false), ha.Disconnected},
		{"disconnected", activeDisc, ha.Disconnected},
		{"demoted", demoted, ha.Disconnected},
	}
	for _, tt := range tests {
		if got := tt.s.Relationship().Conn; got != tt.want {
			t.Errorf("%s: resumes from %s, want %s", tt.name, got, tt.want)
		}
	}
}

// TestLoopHAStateRecordFailureIsLogged: a record of the HA state that
// fails does not undo the loss of a link.
func TestLoopHAStateRecordFailureIsLogged(t *testing.T) {
	t.Parallel()
	l, fx, _ := startLoop(t, standbyDisc, testCfg)
	for _, ev := range []ha.Event{ha.LinkUp{Link: 7, Peer: infoA}, ha.BackupTaken{Link: 7}, ha.SnapshotInstalled{Link: 7, Index: 4}} {
		l.Post(ev)
	}
	settle(t, l)
	if st := l.State(); st.Conn != ha.SyncPending || st.Phase != ha.PhaseStream {
		t.Fatalf("the standby is %s (%s), want a stream", st.Status(), st.Phase)
	}
	fx.take()
	fx.mu.Lock()
	fx.failRelship = errBoom
	fx.mu.Unlock()
	l.Post(ha.StreamCaughtUp{Link: 7, Index: 9})
	settle(t, l)
	if st := l.State(); st.Conn != ha.Synchronized {
		t.Fatalf("after a failed record the standby is %s, want Synchronized", st.Conn)
	}
	if got := kinds(fx.take()); len(got) == 0 || !strings.HasPrefix(got[0], "persist-relationship standby") {
		t.Fatalf("actions %v: want the record tried first", got)
	}
}

// TestLoopRestore: a restore runs in the loop, before anything else of
// the step; a failed one changes nothing.
func TestLoopRestore(t *testing.T) {
	t.Parallel()
	l, fx, _ := startLoop(t, standbyDC, testCfg)
	fx.take()
	fx.mu.Lock()
	fx.failRestore = errBoom
	fx.mu.Unlock()
	if err := l.Do(context.Background(), ha.Restore{Backup: "/b/1.zip"}); !errors.Is(err, errBoom) {
		t.Fatalf("a failed restore answered %v", err)
	}
	if st := l.State(); st.Conn != ha.DisconnectedConsistent {
		t.Fatalf("a failed restore changed the state to %s", st.Conn)
	}
	fx.mu.Lock()
	fx.failRestore = nil
	fx.mu.Unlock()
	fx.take()
	if err := l.Do(context.Background(), ha.Restore{Backup: "/b/1.zip"}); err != nil {
		t.Fatal(err)
	}
	if got := kinds(fx.take()); len(got) < 2 || got[0] != "restore-from /b/1.zip" || !strings.HasPrefix(got[1], "persist-relationship") {
		t.Fatalf("actions %v: want the restore, then the record of the state", got)
	}
	if st := l.State(); st.Conn != ha.Disconnected || st.Role != ha.Standby {
		t.Fatalf("after the restore: %s", st.Status())
	}
}
