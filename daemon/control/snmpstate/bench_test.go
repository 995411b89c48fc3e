package snmpstate

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
)

// BenchmarkServeSessionWalk is this side of a walk of lockstepSessionTable
// with 1 000 sessions: the build of the snapshot and one getnext request
// per instance through Serve, in process (no snmpd, no pipe). The whole
// walk through snmpd is daemon's BenchmarkPollSessionTable.
func BenchmarkServeSessionWalk(b *testing.B) {
	d := Docs{}
	for i := range 1000 {
		d.Sessions = append(d.Sessions, api.SessionDoc{Name: fmt.Sprintf("session-%04d", i), Type: api.MetroMirrorFailoverFailback,
			State: api.StatePrepared, Status: api.StatusNormal, CG: "cg", LastChange: t0, Transitions: 3})
	}
	snap := Build(root, d)
	var in strings.Builder
	table := root.with(ArcState, arcSessions)
	for v, ok := snap.Next(table); ok && compare(v.OID[:len(table)], table) == 0; v, ok = snap.Next(v.OID) {
		in.WriteString("getnext\n" + v.OID.String() + "\n")
	}
	req := in.String()
	b.ResetTimer()
	for range b.N {
		if err := Serve(context.Background(), strings.NewReader(req), io.Discard, ServeOptions{Root: root,
			Load: func(context.Context) (Docs, error) { return d, nil }, Now: func() time.Time { return t0 }}); err != nil {
			b.Fatal(err)
		}
	}
}
