package zos_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/drivers/zos"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/haltest"
)

// TestFactoryRefusesWhatCannotConnect: a spec with no CA, no host name or
// not exactly one address is refused at once, before any dial.
func TestFactoryRefusesWhatCannotConnect(t *testing.T) {
	t.Parallel()
	srv := startLab(t)
	roots := pool(t, srv)
	for _, tc := range []struct {
		name string
		spec hal.ConnectionSpec
		want error
	}{
		{name: "no CA", spec: hal.ConnectionSpec{Serial: "A", Name: host, Addresses: []string{"127.0.0.1:1"}}, want: zos.ErrNoCA},
		{name: "no address", spec: hal.ConnectionSpec{Serial: "A", Name: host, Roots: roots}, want: zos.ErrBadAddress},
		{name: "two addresses", spec: hal.ConnectionSpec{Serial: "A", Name: host, Roots: roots,
			Addresses: []string{"127.0.0.1:1", "127.0.0.1:2"}}, want: zos.ErrBadAddress},
		{name: "no host", spec: hal.ConnectionSpec{Serial: "A", Roots: roots, Addresses: []string{"127.0.0.1:1"}}, want: zos.ErrBadAddress},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, err := zos.Factory(t.Context(), tc.spec)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Factory = %v, %v; want %v", d, err, tc.want)
			}
		})
	}
}

// TestFactoryDriverConnectsAndEndsWithItsContext: a driver from the
// factory reaches the storage system through the host, says which host
// carries it, and its goroutines end with the context it was opened in,
// before Close returns.
func TestFactoryDriverConnectsAndEndsWithItsContext(t *testing.T) {
	t.Parallel()
	srv := startLab(t)
	ctx, cancel := context.WithCancel(t.Context())
	ups := make(chan bool, 8)
	d, err := zos.Factory(ctx, hal.ConnectionSpec{Serial: haltest.Primary, Name: host,
		Addresses: []string{srv.ZOSEndpoint(host)}, Sysplex: sysplex, Manager: "m",
		User: "zosuser", Password: "zos-pw", Roots: pool(t, srv),
		Reachability: func(up, _ bool, _ string) { ups <- up }})
	if err != nil {
		t.Fatal(err)
	}
	qctx, qcancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer qcancel()
	if _, err := d.QueryPaths(qctx, 1); err != nil {
		t.Fatalf("query through the factory's driver: %v", err)
	}
	if via := d.Via(); !strings.HasPrefix(via, "z/OS host "+host) {
		t.Fatalf("Via = %q, want the z/OS host", via)
	}
	if up := <-ups; !up {
		t.Fatal("first reachability report is not up")
	}
	cancel()
	done := make(chan struct{})
	go func() { d.Close(); close(done) }()
	select {
	case <-done:
	case <-t.Context().Done():
		t.Fatal("Close did not return after the context ended")
	}
	if via := d.Via(); via != "" {
		t.Fatalf("Via after Close = %q, want none", via)
	}
	after, acancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer acancel()
	if _, err := d.QueryPaths(after, 1); err == nil {
		t.Fatal("a command answered after the driver's context ended")
	}
}
