package lab

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/drivers/direct"
	"github.com/lockstep-io/lockstep/drivers/wire"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/emu"
)

// overTheWire connects a manager to system A of the lab through its TLS
// endpoints, as a daemon would.
func overTheWire(t *testing.T, srv *Server, manager string) hal.StorageSystem {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(srv.CAPEM()) {
		t.Fatal("lab CA does not parse")
	}
	opt := direct.Options{Serial: "A", Manager: manager, User: "u", Password: "p",
		TLS: wire.ClientTLSConfig(pool, "127.0.0.1")}
	for _, st := range srv.Status() {
		if st.Serial == "A" {
			opt.Endpoints = st.Endpoints
		}
	}
	d := direct.New(t.Context(), opt)
	t.Cleanup(func() { d.Close() })
	return d
}

// TestCommandsOverTheControlAPI: commands of two managers sent over the
// wire, the second taking over with a higher epoch, read back through the
// control socket with the managers' handshake names, both epochs and the
// outcomes; paging with a limit, and a bounded log that reports what it
// dropped.
func TestCommandsOverTheControlAPI(t *testing.T) {
	t.Parallel()
	cfg, err := ParseConfig(goodSystem)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	clk := clock.NewFake(now)
	const logSize = 8
	srv, err := Start(ctx, cfg, Options{Clock: clk, CommandLogSize: logSize,
		ControlSocket: filepath.Join(t.TempDir(), "lab.sock")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); srv.Wait() })
	sock := srv.ControlAddr()

	cmdCtx, cmdCancel := context.WithTimeout(ctx, 30*time.Second)
	defer cmdCancel()
	old, taker := overTheWire(t, srv, "lockstep-a"), overTheWire(t, srv, "lockstep-b")
	if _, err := old.QueryPairs(cmdCtx, 1); err != nil {
		t.Fatal(err)
	}
	if err := old.Heartbeat(cmdCtx, 1, "none"); !errors.Is(err, hal.ErrRefused) {
		t.Fatalf("heartbeat of an unarmed session: %v, want refused", err)
	}
	if err := taker.Thaw(cmdCtx, 2, []hal.LSS{0x10}); err != nil {
		t.Fatal(err)
	}
	if err := old.Freeze(cmdCtx, 1, nil); !errors.Is(err, hal.ErrFenced) {
		t.Fatalf("freeze from the stale epoch: %v, want fenced", err)
	}

	rec := func(seq uint64, manager string, epoch, sysEpoch hal.Epoch, op, outcome string) emu.CommandRecord {
		return emu.CommandRecord{Seq: seq, At: now, Serial: "A", Manager: manager, Epoch: epoch,
			SystemEpoch: sysEpoch, Op: op, Outcome: outcome}
	}
	want := []emu.CommandRecord{
		rec(1, "lockstep-a", 1, 0, emu.OpQueryPairs, emu.OutcomeOK),
		rec(2, "lockstep-a", 1, 1, emu.OpHeartbeat, emu.OutcomeRefused),
		rec(3, "lockstep-b", 2, 1, emu.OpThaw, emu.OutcomeOK),
		rec(4, "lockstep-a", 1, 2, emu.OpFreeze, emu.OutcomeFenced),
	}
	want[1].Session = "none" // a heartbeat command's record names its session
	got, dropped, err := FetchCommands(ctx, sock, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !equalRecords(want, got) || dropped != 0 {
		t.Fatalf("commands: dropped %d (want 0)\n(-want +got):\n-%+v\n+%+v", dropped, want, got)
	}

	// One page of two, then the rest.
	resp, err := Call(ctx, sock, Request{Op: "commands", Commands: &CommandsParam{After: 1, Limit: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if !equalRecords(want[1:3], resp.Commands) || !resp.More || resp.Dropped != 0 {
		t.Fatalf("page after 1, limit 2: more=%v dropped=%d\n(-want +got):\n-%+v\n+%+v",
			resp.More, resp.Dropped, want[1:3], resp.Commands)
	}
	resp, err = Call(ctx, sock, Request{Op: "commands", Commands: &CommandsParam{After: 3}})
	if err != nil {
		t.Fatal(err)
	}
	if !equalRecords(want[3:], resp.Commands) || resp.More {
		t.Fatalf("page after 3: more=%v\n(-want +got):\n-%+v\n+%+v", resp.More, want[3:], resp.Commands)
	}
	if _, err := Call(ctx, sock, Request{Op: "commands", Commands: &CommandsParam{Limit: -1}}); err == nil {
		t.Fatal("a negative limit was accepted")
	}

	// Six more commands: ten in all, the log holds the last eight.
	for range 6 {
		if _, err := taker.QueryPaths(cmdCtx, 2); err != nil {
			t.Fatal(err)
		}
	}
	got, dropped, err = FetchCommands(ctx, sock, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != logSize || got[0].Seq != 3 || got[logSize-1].Seq != 10 || dropped != 2 {
		t.Fatalf("after 10 commands: %d records from %v, dropped %d; want 8 records 3..10, dropped 2",
			len(got), seqsOf(got), dropped)
	}
	if !equalRecords(want[2:], got[:2]) {
		t.Fatalf("oldest held (-want +got):\n-%+v\n+%+v", want[2:], got[:2])
	}
	// A reader whose cursor is at 1 lost exactly record 2.
	if _, dropped, _ = FetchCommands(ctx, sock, 1); dropped != 1 {
		t.Fatalf("after 1: dropped %d, want 1", dropped)
	}
}

// equalRecords compares records, times by instant.
func equalRecords(want, got []emu.CommandRecord) bool {
	if len(want) != len(got) {
		return false
	}
	for i := range want {
		w, g := want[i], got[i]
		if !w.At.Equal(g.At) {
			return false
		}
		w.At, g.At = time.Time{}, time.Time{}
		if !reflect.DeepEqual(w, g) {
			return false
		}
	}
	return true
}

func seqsOf(recs []emu.CommandRecord) []string {
	var out []string
	for _, r := range recs {
		out = append(out, fmt.Sprint(r.Seq))
	}
	return out
}

// TestEachClusterHasItsOwnCertificate: like a real array's clusters, each
// endpoint serves a certificate of its own that names the storage system
// (urn:lockstep:serial:SERIAL) and that endpoint's address only.
func TestEachClusterHasItsOwnCertificate(t *testing.T) {
	t.Parallel()
	cfg, err := ParseConfig(strings.NewReplacer(`"127.0.0.1:0", "127.0.0.1:0"`, `"127.0.0.71:0", "127.0.0.72:0"`).Replace(goodSystem))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := Start(ctx, cfg, Options{ControlSocket: filepath.Join(t.TempDir(), "lab.sock")})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(srv.CAPEM()) {
		t.Fatal("lab CA does not parse")
	}
	eps := srv.Status()[0].Endpoints
	var leaves [2]*x509.Certificate
	for i, ep := range eps {
		host, _, _ := net.SplitHostPort(ep)
		conn, err := tls.Dial("tcp", ep, wire.ClientTLSConfig(pool, host))
		if err != nil {
			t.Fatalf("cluster %d verified against its own address: %v", i, err)
		}
		leaves[i] = conn.ConnectionState().PeerCertificates[0]
		if err := wire.VerifyIdentity(conn.ConnectionState(), "A", nil); err != nil {
			t.Fatalf("cluster %d: %v", i, err)
		}
		conn.Close()
		other, _, _ := net.SplitHostPort(eps[1-i])
		if conn, err := tls.Dial("tcp", ep, wire.ClientTLSConfig(pool, other)); err == nil {
			conn.Close()
			t.Fatalf("cluster %d's certificate verified for the other cluster's address %s", i, other)
		}
	}
	if leaves[0].Equal(leaves[1]) {
		t.Fatal("both clusters serve the same certificate")
	}
}
