package lab

import (
	"context"
	"crypto/x509"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/drivers/wire"
	"github.com/lockstep-io/lockstep/drivers/zos"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// TestZOSCommandsWaitTheChannelLatency: on the lab's clock, every command
// through the host waits its channel latency (1 ms by default), plus the
// latency a fault adds; nothing else holds it.
func TestZOSCommandsWaitTheChannelLatency(t *testing.T) {
	t.Parallel()
	text := goodSystem + strings.Replace(goodZOS, `"127.0.0.1"`, `"127.0.0.1:0"`, 1)
	cfg, err := ParseConfig(text)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := clock.NewFake(time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	srv, err := Start(ctx, cfg, Options{Clock: clk, ControlSocket: filepath.Join(t.TempDir(), "lab.sock")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); srv.Wait() })
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CAPEM())
	d := zos.New(t.Context(), zos.Options{Serial: "A", Host: "SYSA", Addr: srv.ZOSEndpoint("SYSA"), Sysplex: "PLEX1",
		Manager: "m", User: "z", Password: "zp", TLS: wire.ClientTLSConfig(pool, "127.0.0.1")})
	t.Cleanup(func() { d.Close() })

	cmdCtx, cmdCancel := context.WithTimeout(ctx, 30*time.Second)
	defer cmdCancel()
	// held runs a command and returns once it is asleep on the lab clock
	// for want; advancing by want lets it finish.
	held := func(want time.Duration) {
		t.Helper()
		done := make(chan error, 1)
		start := clk.Now()
		go func() {
			_, err := d.QueryLSSs(cmdCtx, 1)
			done <- err
		}()
		for {
			if next, ok := clk.Next(); ok && next.Equal(start.Add(want)) {
				break
			}
			select {
			case err := <-done:
				t.Fatalf("the command finished (%v) without waiting %v on the lab clock", err, want)
			case <-cmdCtx.Done():
				next, _ := clk.Next()
				t.Fatalf("no sleep of %v armed; next timer at +%v", want, next.Sub(start))
			case <-time.After(time.Millisecond):
			}
		}
		clk.Advance(want)
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-cmdCtx.Done():
			t.Fatalf("the command did not finish once %v passed", want)
		}
	}
	held(time.Millisecond)
	if err := srv.Inject(Fault{Kind: "zos", Host: "SYSA", Latency: "2s"}); err != nil {
		t.Fatal(err)
	}
	held(2*time.Second + time.Millisecond)
}
