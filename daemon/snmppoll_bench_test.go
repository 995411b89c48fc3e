package daemon

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/config"
	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/control/client"
	"github.com/lockstep-io/lockstep/daemon/control/snmpstate"
	"github.com/lockstep-io/lockstep/internal/latency"
	"github.com/lockstep-io/lockstep/internal/privbus"
	"github.com/lockstep-io/lockstep/internal/snmpagent"
)

// pollBenchSessions is how many sessions the bench's lockstepd manages.
const pollBenchSessions = 1000

// BenchmarkPollSessionTable: an NMS polls lockstepSessionTable of a
// lockstepd with 1 000 sessions through the real snmpd and lockstepctl
// snmp pass-persist (default cache). Each sample is one whole walk of the
// table (11 columns x 1 000 rows), by GETBULK (snmpbulkwalk, as NMSes
// poll) and by GETNEXT (snmpwalk); then the cost of one read of the
// daemon (what a walk costs once per cache period).
//
//	go test -run '^$' -bench PollSessionTable -benchtime 1x ./daemon/
func BenchmarkPollSessionTable(b *testing.B) {
	snmpagent.Tool(b, "snmpd")
	snmpagent.Tool(b, "snmpbulkwalk")
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		b.Skip("dbus-daemon missing")
	}
	dir := b.TempDir()
	addr, stop, err := privbus.Start(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer stop()
	cfg, err := config.Parse("[server]\nname = \"bench\"\nstate_dir = \"" + filepath.Join(dir, "state") +
		"\"\n[control]\nbus = \"" + addr + "\"\n")
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(Options{Config: cfg, Notifier: &countingNotifier{}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	conn, err := client.Connect(addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	c := client.New(conn)
	if err := eventually(func() bool { _, err := c.Status(ctx); return err == nil }); err != nil {
		b.Fatal("lockstepd did not answer")
	}
	for i := range pollBenchSessions {
		if err := c.SessionCreate(ctx, fmt.Sprintf("session-%04d", i), api.MetroMirrorFailoverFailback,
			fmt.Sprintf("cg-%02d", i%50), api.HoldIO); err != nil {
			b.Fatal(err)
		}
	}
	agent := snmpagent.Start(b, stateOID, fmt.Sprintf("%s --bus %s snmp pass-persist", snmpagent.Lockstepctl(b), addr),
		"../etc/mib/LOCKSTEP-MIB.txt")
	table := stateOID + ".2"
	rows := func(vars []snmpagent.Var) int {
		n := 0
		for _, v := range vars {
			if strings.HasPrefix(v.OID, table+".1.2.") {
				n++
			}
		}
		return n
	}
	const walks = 20
	for _, tool := range []string{"snmpbulkwalk", "snmpwalk"} {
		var samples []time.Duration
		for range b.N {
			for range walks {
				start := time.Now()
				vars := agent.WalkWith(b, tool, table)
				samples = append(samples, time.Since(start))
				if n := rows(vars); n != pollBenchSessions {
					b.Fatalf("%s saw %d sessions, want %d", tool, n, pollBenchSessions)
				}
			}
		}
		b.Logf("%s of lockstepSessionTable, %d sessions x 11 columns, through snmpd (%d walks)", tool, pollBenchSessions, len(samples))
		latency.Report(b, tool, samples)
	}
	var reads []time.Duration
	for range 20 {
		start := time.Now()
		d, err := snmpstate.Read(ctx, c)
		if err != nil {
			b.Fatal(err)
		}
		snmpstate.Build(snmpstate.OID{1, 3, 6, 1, 4, 1, 61942, 1}, d)
		reads = append(reads, time.Since(start))
	}
	b.Logf("one read of lockstepd (status, ha, %d sessions, storage, heartbeat over D-Bus) and the snapshot built", pollBenchSessions)
	latency.Report(b, "read+build", reads)
}
