package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/registry"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/daemon/state"
	"github.com/lockstep-io/lockstep/daemon/state/statetest"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/privbus"
	"github.com/lockstep-io/lockstep/persist"
)

// childEnv makes the test binary lockstepd itself: main's run, with a
// SIGUSR1 handler that writes the Go heap to the file it names (see
// heapReport). BenchmarkDaemonMemory100k starts it so.
const childEnv = "LOCKSTEPD_BENCH_HEAP_FILE"

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		reportHeapOn(syscall.SIGUSR1, path)
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// heapReport is what a child lockstepd says of its Go heap.
type heapReport struct {
	LiveHeap  uint64 // /gc/heap/live:bytes after two GCs
	GoTotal   uint64 // /memory/classes/total:bytes: all the runtime maps
	HeapAlloc uint64
}

// reportHeapOn writes a heapReport to path on each sig: two GCs first,
// then the freed pages returned to the system (debug.FreeOSMemory, what
// the runtime's scavenger does on its own over minutes), so that the
// resident set read next is the one the daemon settles at.
func reportHeapOn(sig os.Signal, path string) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sig)
	go func() {
		for range ch {
			runtime.GC()
			runtime.GC()
			debug.FreeOSMemory()
			m := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/total:bytes"},
				{Name: "/memory/classes/heap/objects:bytes"}}
			metrics.Read(m)
			b, _ := json.Marshal(heapReport{LiveHeap: m[0].Value.Uint64(), GoTotal: m[1].Value.Uint64(), HeapAlloc: m[2].Value.Uint64()})
			tmp := path + ".tmp"
			if os.WriteFile(tmp, b, 0o644) == nil {
				os.Rename(tmp, path)
			}
		}
	}()
}

// BenchmarkDaemonMemory100k: the memory of a whole lockstepd (main's run
// in a process of its own, the test binary re-executed) holding 100 000
// copy sets, beside the same daemon with an empty state: its resident
// set (VmRSS) once READY, and again after a GC, its peak (VmHWM), and
// its Go heap (live after a GC), each also as the difference the
// 100 000 copy sets make. The state is statetest.Fill100k's (1 000
// sessions of 100 copy sets, a snapshot and its tail: what Replay100k
// opens), every session started and Prepared, so that the acting
// period's freeze core holds every pair in its consistency groups. The
// four storage systems are defined (direct connections), at an address
// where nothing listens: their drivers exist and retry, but the memory
// of live connections (TLS, event streams) is not in the figure, a cost
// per system, not per copy set. ready-ms is from the exec to READY=1.
// The core's groups of 100 000 pairs are checked in the log: a group it
// refused would leave them out of the figure.
func BenchmarkDaemonMemory100k(b *testing.B) {
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		b.Skip("dbus-daemon missing (make deps installs it)")
	}
	full := filepath.Join(b.TempDir(), "state")
	statetest.Fill100k(b, full, 900)
	storage := defineStorage(b, full)
	startAll(b, full)
	var empty, loaded daemonMemory
	for b.Loop() {
		empty = measureDaemon(b, filepath.Join(b.TempDir(), "state"), "", 0)
		loaded = measureDaemon(b, full, storage, statetest.CopySets)
	}
	mb := func(v float64) float64 { return v / (1 << 20) }
	b.ReportMetric(float64(loaded.ready.Milliseconds()), "ready-ms-100k")
	b.ReportMetric(mb(empty.rssGC), "rss-MB-empty-after-gc")
	b.ReportMetric(mb(loaded.rssReady), "rss-MB-100k-ready")
	b.ReportMetric(mb(loaded.rssGC), "rss-MB-100k-after-gc")
	b.ReportMetric(mb(loaded.hwm), "hwm-MB-100k")
	b.ReportMetric(mb(float64(empty.heap.LiveHeap)), "heap-live-MB-empty")
	b.ReportMetric(mb(float64(loaded.heap.LiveHeap)), "heap-live-MB-100k")
	b.ReportMetric(mb(loaded.rssGC-empty.rssGC), "rss-MB/100k-copysets")
	b.ReportMetric(mb(float64(loaded.heap.LiveHeap)-float64(empty.heap.LiveHeap)), "heap-MB/100k-copysets")
}

// daemonMemory is what one child lockstepd measured.
type daemonMemory struct {
	ready                time.Duration
	rssReady, rssGC, hwm float64 // bytes
	heap                 heapReport
}

// startAll starts every session of the store in dir and records it
// Prepared, through the session manager, on hardware that agrees.
func startAll(b *testing.B, dir string) {
	s, err := state.Open(dir, persist.Options{SnapshotEvery: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	mgr := session.NewManager(s, agreeing{}, nil)
	for _, ses := range s.DB().Sessions() {
		for _, cmd := range []session.Command{session.CmdStartH1H2, session.CmdRefresh} {
			if err := mgr.Command(ctx, ses.Name, cmd); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := s.Snapshot(ctx); err != nil {
		b.Fatal(err)
	}
	for _, ses := range s.DB().Sessions() {
		if ses.State != session.Prepared {
			b.Fatalf("session %s: %s (%s)", ses.Name, ses.State, ses.Reason)
		}
	}
}

// defineStorage defines the storage systems of statetest's copy sets in
// the store in dir, each with a direct connection to a port where
// nothing listens, and returns the [storage] section they need (a CA).
func defineStorage(b *testing.B, dir string) string {
	b.Helper()
	files := b.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	ca := filepath.Join(files, "ca.pem")
	pw := filepath.Join(files, "pw")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	// A port that was free a moment ago: connections are refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	nowhere := l.Addr().String()
	l.Close()
	s, err := state.Open(dir, persist.Options{SnapshotEvery: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	serials := map[hal.Serial]bool{}
	for _, ses := range s.DB().Sessions() {
		for _, cs := range ses.CopySets {
			serials[cs.H1.Serial], serials[cs.H2.Serial] = true, true
		}
	}
	for serial := range serials {
		if err := s.ProposeRegistry(context.Background(), registry.Record{Version: registry.RecordVersion,
			Kind: registry.KindStorageAdded, Serial: serial, At: time.Now(),
			Connection: &registry.Connection{Name: "direct", Kind: hal.Direct, Addresses: []string{nowhere},
				User: "lockstep", PasswordFile: pw}}); err != nil {
			b.Fatal(err)
		}
	}
	return fmt.Sprintf("[storage]\nca_file = %q\n", ca)
}

// agreeing is storage on which every command works and every pair is
// full duplex.
type agreeing struct{}

func (agreeing) StartH1H2(context.Context, *session.Session) error { return nil }
func (agreeing) StartH2H1(context.Context, *session.Session) error { return nil }
func (agreeing) Suspend(context.Context, *session.Session) error   { return nil }
func (agreeing) ReleaseIO(context.Context, *session.Session) error { return nil }
func (agreeing) Recover(context.Context, *session.Session) error   { return nil }
func (agreeing) Terminate(context.Context, *session.Session) error { return nil }
func (agreeing) Refresh(_ context.Context, s *session.Session) (session.Observed, error) {
	return session.Observed{Pairs: map[hal.PairState]int{hal.FullDuplex: len(s.CopySets)}}, nil
}

// measureDaemon runs a child lockstepd on stateDir until READY and its
// CPU settles, reads its memory, and stops it.
func measureDaemon(b *testing.B, stateDir, storage string, copySets int) daemonMemory {
	dir := b.TempDir()
	addr, stopBus, err := privbus.Start(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer stopBus()
	sockPath := filepath.Join(dir, "notify.sock")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		b.Fatal(err)
	}
	defer sock.Close()
	conf := filepath.Join(dir, "lockstep.toml")
	text := fmt.Sprintf("[server]\nname = \"bench\"\nstate_dir = %q\n[control]\nbus = %q\n[log]\nformat = \"text\"\n%s", stateDir, addr, storage)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		b.Fatal(err)
	}
	heapFile := filepath.Join(dir, "heap.json")
	logs, err := os.Create(filepath.Join(dir, "lockstepd.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer logs.Close()
	cmd := exec.Command(os.Args[0], "--config", conf)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sockPath, childEnv+"="+heapFile)
	cmd.Stdout, cmd.Stderr = logs, logs
	began := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	fail := func(format string, args ...any) {
		cmd.Process.Kill()
		<-exited
		log, _ := os.ReadFile(logs.Name())
		b.Fatalf("%s\nlockstepd's log:\n%s", fmt.Sprintf(format, args...), tail(string(log), 30))
	}
	var m daemonMemory
	buf := make([]byte, 4096)
	for m.ready == 0 {
		sock.SetReadDeadline(time.Now().Add(2 * time.Minute))
		n, err := sock.Read(buf)
		if err != nil {
			fail("no READY=1: %v", err)
		}
		if strings.HasPrefix(string(buf[:n]), "READY=1") {
			m.ready = time.Since(began)
		}
	}
	// The acting period syncs the core's groups once its fence pass is
	// done (over unreachable systems, after their request timeouts);
	// what it leaves running is done once the CPU time stops moving.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if log, _ := os.ReadFile(logs.Name()); strings.Contains(string(log), "every reachable storage system now refuses lower epochs") {
			break
		}
		if time.Now().After(deadline) {
			fail("the acting period did not begin")
		}
	}
	for cpu, still := cpuTicks(cmd.Process.Pid), 0; still < 10; {
		time.Sleep(100 * time.Millisecond)
		if c := cpuTicks(cmd.Process.Pid); c == cpu {
			still++
		} else {
			cpu, still = c, 0
		}
	}
	m.rssReady, _ = procStatus(b, cmd.Process.Pid)
	cmd.Process.Signal(syscall.SIGUSR1)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		data, err := os.ReadFile(heapFile)
		if err == nil {
			if err := json.Unmarshal(data, &m.heap); err != nil {
				fail("heap report: %v", err)
			}
			break
		}
		if time.Now().After(deadline) {
			fail("no heap report: %v", err)
		}
	}
	m.rssGC, m.hwm = procStatus(b, cmd.Process.Pid)
	if log, _ := os.ReadFile(logs.Name()); strings.Contains(string(log), "freeze core: consistency groups") {
		fail("the freeze core did not take the consistency groups")
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			log, _ := os.ReadFile(logs.Name())
			b.Fatalf("lockstepd with %d copy sets: exit %v\n%s", copySets, err, tail(string(log), 30))
		}
	case <-time.After(time.Minute):
		fail("no exit on SIGTERM")
	}
	return m
}

// procStatus reads VmRSS and VmHWM of a process, in bytes.
func procStatus(b *testing.B, pid int) (rss, hwm float64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Skipf("no /proc status: %v", err)
	}
	for line := range strings.Lines(string(data)) {
		for _, f := range []struct {
			key string
			v   *float64
		}{{"VmRSS:", &rss}, {"VmHWM:", &hwm}} {
			if rest, ok := strings.CutPrefix(line, f.key); ok {
				kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
				if err != nil {
					b.Fatalf("%s %q: %v", f.key, rest, err)
				}
				*f.v = kb * 1024
			}
		}
	}
	return rss, hwm
}

// cpuTicks is the CPU time a process has used (utime + stime of
// /proc/PID/stat), in clock ticks; -1 when unknown.
func cpuTicks(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return -1
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}
