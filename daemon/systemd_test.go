package daemon

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// fakeSystemd is a unixgram socket standing in for systemd's NOTIFY_SOCKET.
type fakeSystemd struct {
	conn *net.UnixConn
}

func newFakeSystemd(t *testing.T) *fakeSystemd {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return &fakeSystemd{conn: conn}
}

// next returns the next datagram, or "" if none comes within a while.
func (f *fakeSystemd) next() string {
	buf := make([]byte, 4096)
	f.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	n, err := f.conn.Read(buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

// countingNotifier counts watchdog pings; the real socket path is tested
// in TestSystemdNotifierSpeaksTheProtocol.
type countingNotifier struct{ pings atomic.Int64 }

func (c *countingNotifier) Notify(state string) error {
	if state == "WATCHDOG=1" {
		c.pings.Add(1)
	}
	return nil
}

func TestSystemdNotifierSpeaksTheProtocol(t *testing.T) {
	sdm := newFakeSystemd(t)
	var n SystemdNotifier
	for _, state := range []string{"READY=1", "STATUS=role active, HA Synchronized", "RELOADING=1", "STOPPING=1"} {
		if err := n.Notify(state); err != nil {
			t.Fatal(err)
		}
		if got := sdm.next(); got != state {
			t.Fatalf("systemd received %q, want %q", got, state)
		}
	}
}

func TestWatchdogPingsOnlyWhileTheCoreProgresses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var progress atomic.Uint64
		n := &countingNotifier{}
		w := &Watchdog{Notifier: n, Interval: 5 * time.Second, Progress: progress.Load}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()
		// A healthy core: its loop ticks every second.
		stopCore := make(chan struct{})
		go func() {
			for {
				select {
				case <-stopCore:
					return
				case <-time.After(time.Second):
					progress.Add(1)
				}
			}
		}()
		time.Sleep(20*time.Second + time.Millisecond)
		if got := n.pings.Load(); got != 4 {
			t.Fatalf("%d pings in 20 s at a 5 s interval, want 4", got)
		}
		close(stopCore) // the core wedges
		time.Sleep(5 * time.Second)
		before := n.pings.Load()
		time.Sleep(30 * time.Second)
		if got := n.pings.Load(); got != before {
			t.Fatalf("%d pings while the core was wedged", got-before)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

type fakeTask struct {
	name  string
	ready chan struct{}
	fail  error
	delay time.Duration
}

func (f *fakeTask) String() string         { return f.name }
func (f *fakeTask) Ready() <-chan struct{} { return f.ready }
func (f *fakeTask) Run(ctx context.Context) error {
	select {
	case <-time.After(f.delay):
		close(f.ready)
	case <-ctx.Done():
		return nil
	}
	if f.fail != nil {
		return f.fail
	}
	<-ctx.Done()
	return nil
}

func TestReadyOnlyWhenEveryTaskIsReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		journal := &fakeTask{name: "journal replay", ready: make(chan struct{}), delay: 3 * time.Second}
		core := &fakeTask{name: "freeze core", ready: make(chan struct{}), delay: time.Second}
		start := time.Now()
		var readyAt atomic.Int64
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() {
			done <- RunTasks(ctx, []Task{journal, core}, func() { readyAt.Store(int64(time.Since(start))) })
		}()
		time.Sleep(10 * time.Second)
		if readyAt := time.Duration(readyAt.Load()); readyAt != 3*time.Second {
			t.Fatalf("ready after %v, want 3s (the slowest task)", readyAt)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestTaskFailureStopsAll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bad := &fakeTask{name: "ha link", ready: make(chan struct{}), delay: time.Second, fail: errors.New("boom")}
		good := &fakeTask{name: "freeze core", ready: make(chan struct{})}
		err := RunTasks(context.Background(), []Task{bad, good}, func() {})
		if err == nil || err.Error() != "ha link: boom" {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestWatchdogWithheldIsToldOncePerStall: a wedged core withholds every
// ping, but the NMS is told once per stall, not every interval; a core
// that moved and wedged again is told again.
func TestWatchdogWithheldIsToldOncePerStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var progress atomic.Uint64
		var told atomic.Int32
		w := &Watchdog{Notifier: &countingNotifier{}, Interval: 5 * time.Second, Progress: progress.Load,
			Withheld: func(uint64, time.Duration) { told.Add(1) }}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()
		time.Sleep(60*time.Second + time.Millisecond) // wedged from the start: 12 intervals
		if got := told.Load(); got != 1 {
			t.Fatalf("told %d times in one stall, want once", got)
		}
		progress.Add(1)
		time.Sleep(5 * time.Second) // the core moved: a ping
		time.Sleep(30 * time.Second)
		if got := told.Load(); got != 2 {
			t.Fatalf("told %d times after a second stall, want twice", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}
