package lab

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/drivers/wire"
	"github.com/lockstep-io/lockstep/drivers/zos"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/emu"
)

// swapLabFile: H1A -> H2A and H1B -> H2B, 8 volumes each, all four
// behind z/OS host SYSA.
func swapLabFile() string {
	var b strings.Builder
	b.WriteString("speed = 10\ncopy_per_block = \"10us\"\n")
	for _, s := range []string{"H1A", "H1B", "H2A", "H2B"} {
		fmt.Fprintf(&b, `
[[system]]
serial = %q
user = "u"
password = "p"
endpoints = ["127.0.0.1:0", "127.0.0.1:0"]
  [[system.lss]]
  id = "10"
  type = "FB"
  volumes = 8
`, s)
	}
	b.WriteString(`
[[mirror]]
source = "H1A"
target = "H2A"
[[mirror]]
source = "H1B"
target = "H2B"

[[zos]]
name = "SYSA"
sysplex = "PLEX1"
endpoint = "127.0.0.1:0"
user = "z"
password = "zp"
lpars = ["SYSA1"]
`)
	for _, s := range []string{"H1A", "H1B", "H2A", "H2B"} {
		fmt.Fprintf(&b, "  [[zos.online]]\n  system = %q\n  channels = [\"40\"]\n", s)
	}
	return b.String()
}

// TestHyperSwapUnplannedOverTheWire: the manager's side over real
// loopback TLS. Pairs established through the z/OS host, the session
// loaded with zos.OpenSwapHost, the lab workload writing through the host
// (via_host), then one H1 system crashes: the host swaps on its own, the
// manager's SwapEvents hears the unplanned swap, the workload goes on
// acknowledging writes on H2, and the oracle finds H2 consistent with no
// acknowledged write lost.
func TestHyperSwapUnplannedOverTheWire(t *testing.T) {
	t.Parallel()
	cfg, err := ParseConfig(swapLabFile())
	if err != nil {
		t.Fatal(err)
	}
	labCtx, stopLab := context.WithCancel(context.Background())
	sock := filepath.Join(t.TempDir(), "lab.sock")
	srv, err := Start(labCtx, cfg, Options{ControlSocket: sock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopLab(); srv.Wait() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(srv.CAPEM())
	spec := hal.ConnectionSpec{Name: "SYSA", Addresses: []string{srv.ZOSEndpoint("SYSA")}, Sysplex: "PLEX1",
		Manager: "m", User: "z", Password: "zp", Roots: roots}

	// Paths and pairs, through the host.
	conns := map[hal.Serial]hal.StorageSystem{}
	for _, serial := range []hal.Serial{"H1A", "H1B"} {
		d := zos.New(ctx, zos.Options{Serial: serial, Host: "SYSA", Addr: spec.Addresses[0], Sysplex: "PLEX1",
			Manager: "m", User: "z", Password: "zp", TLS: wire.ClientTLSConfig(roots, "")})
		t.Cleanup(func() { d.Close() })
		conns[serial] = d
	}
	if err := cfg.Topology.Establish(ctx, clock.Real(), conns, 1, 30*time.Second); err != nil {
		t.Fatal(err)
	}

	h, err := zos.OpenSwapHost(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	events, err := h.SwapEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LoadSwap(ctx, 1, "HS", cfg.Topology.Pairs); err != nil {
		t.Fatal(err)
	}
	if st, err := h.SwapStatus(ctx, 1); err != nil || len(st) != 1 || !st[0].Ready {
		t.Fatalf("status after load: %+v, %v", st, err)
	}

	call := func(req Request) *Response {
		t.Helper()
		resp, err := Call(ctx, sock, req)
		if err != nil {
			t.Fatalf("%s: %v", req.Op, err)
		}
		return resp
	}
	resp := call(Request{Op: "workload", Workload: &WorkloadParam{Action: "start", Chains: 8, VolumesPerChain: 4, ViaHost: "SYSA"}})
	if resp.ViaHost != "SYSA" {
		t.Fatalf("workload start answered via host %q", resp.ViaHost)
	}
	writes := func() uint64 {
		return call(Request{Op: "workload", Workload: &WorkloadParam{Action: "status"}}).Workload.Writes
	}
	waitWrites := func(n uint64) {
		t.Helper()
		for writes() < n {
			if ctx.Err() != nil {
				t.Fatalf("the workload never reached %d writes (at %d)", n, writes())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitWrites(200)

	call(Request{Op: "fault", Fault: &Fault{Kind: "crash", System: "H1A"}})
	var ev hal.SwapEvent
	select {
	case ev = <-events:
	case <-ctx.Done():
		t.Fatal("the manager heard no swap")
	}
	if ev.Session != "HS" || ev.Planned || ev.Host != "SYSA" || !strings.Contains(ev.Trigger, "H1A crashed") {
		t.Fatalf("swap event %+v", ev)
	}
	atSwap := writes()
	waitWrites(atSwap + 500) // the application goes on, on H2

	if st, err := h.SwapStatus(ctx, 1); err != nil || len(st) != 1 || !st[0].Swapped {
		t.Fatalf("status after the crash: %+v, %v", st, err)
	}
	call(Request{Op: "workload", Workload: &WorkloadParam{Action: "stop"}})
	resp = call(Request{Op: "check"})
	rep := resp.Report
	if !rep.Consistent || !rep.AckedChecked || rep.Lost != 0 || resp.ViaHost != "SYSA" {
		t.Fatalf("oracle: %s (acked checked %v, via %q)", rep, rep.AckedChecked, resp.ViaHost)
	}
	t.Logf("oracle: %s; %d writes at the swap, %d in all", rep, atSwap, resp.Workload.Writes)
}

// TestWorkloadViaHostRefusals: a host the lab file does not define, and
// one that does not have every system of the workload online, are
// refused before the workload starts.
func TestWorkloadViaHostRefusals(t *testing.T) {
	t.Parallel()
	text := strings.Replace(swapLabFile(), "  [[zos.online]]\n  system = \"H2B\"\n  channels = [\"40\"]\n", "", 1)
	cfg, err := ParseConfig(text)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := Start(ctx, cfg, Options{ControlSocket: filepath.Join(t.TempDir(), "lab.sock")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); srv.Wait() })
	for _, tc := range []struct{ name, host, want string }{
		{"unknown host", "SYSZ", `no such z/OS host`},
		{"system not online", "SYSA", "does not have H2B online"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := srv.Workload(ctx, WorkloadParam{Action: "start", ViaHost: tc.host})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("start via %s: %v, want %q", tc.host, err, tc.want)
			}
		})
	}
}

// TestZOSFaultsDriveTheHostsIO: the host faults of the lab reach its
// applications' I/O: down fails every write, a channel fault fails the
// writes to that system only, a black hole (the agent's link) none.
func TestZOSFaultsDriveTheHostsIO(t *testing.T) {
	t.Parallel()
	cfg, err := ParseConfig(swapLabFile())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := Start(ctx, cfg, Options{ControlSocket: filepath.Join(t.TempDir(), "lab.sock")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); srv.Wait() })
	io := srv.ZOSHost("SYSA")
	a := hal.VolumeRef{Serial: "H1A", Volume: hal.NewVolume(0x10, 0)}
	b := hal.VolumeRef{Serial: "H1B", Volume: hal.NewVolume(0x10, 0)}
	write := func(v hal.VolumeRef) error { return io.Write(ctx, v, 0, []byte("x")) }
	for _, tc := range []struct {
		name         string
		fault        Fault
		wantA, wantB error
	}{
		{"host down", Fault{Kind: "zos", Host: "SYSA", Mode: "down"}, emu.ErrHostDown, emu.ErrHostDown},
		{"host up", Fault{Kind: "zos", Host: "SYSA", Mode: "up"}, nil, nil},
		{"channel down", Fault{Kind: "channel", Host: "SYSA", System: "H1A", Mode: "down"}, emu.ErrNoChannel, nil},
		{"black hole", Fault{Kind: "zos", Host: "SYSA", Mode: "blackhole"}, emu.ErrNoChannel, nil},
		{"channel up", Fault{Kind: "channel", Host: "SYSA", System: "H1A", Mode: "up"}, nil, nil},
	} {
		if err := srv.Inject(tc.fault); err != nil {
			t.Fatal(err)
		}
		if err := write(a); !errors.Is(err, tc.wantA) || (tc.wantA == nil) != (err == nil) {
			t.Fatalf("%s: write to H1A: %v, want %v", tc.name, err, tc.wantA)
		}
		if err := write(b); !errors.Is(err, tc.wantB) || (tc.wantB == nil) != (err == nil) {
			t.Fatalf("%s: write to H1B: %v, want %v", tc.name, err, tc.wantB)
		}
	}
}
