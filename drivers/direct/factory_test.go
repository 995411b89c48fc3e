package direct_test

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/drivers/direct"
	"github.com/lockstep-io/lockstep/hal"
)

// TestFactoryRefusesWhatCannotConnect: the factory refuses, at once and
// by name, a spec no retry would mend.
func TestFactoryRefusesWhatCannotConnect(t *testing.T) {
	t.Parallel()
	roots := x509.NewCertPool()
	for _, tc := range []struct {
		name  string
		spec  hal.ConnectionSpec
		want  error
		wants string
	}{
		{name: "no CA", spec: hal.ConnectionSpec{Serial: "A", Addresses: []string{"127.0.0.1:1"}}, want: direct.ErrNoCA},
		{name: "no address", spec: hal.ConnectionSpec{Serial: "A", Roots: roots}, want: direct.ErrBadEndpoint, wants: "not 0"},
		{name: "three addresses", spec: hal.ConnectionSpec{Serial: "A", Roots: roots,
			Addresses: []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}}, want: direct.ErrBadEndpoint, wants: "not 3"},
		{name: "no port", spec: hal.ConnectionSpec{Serial: "A", Roots: roots, Addresses: []string{"127.0.0.1"}},
			want: direct.ErrBadEndpoint, wants: `"127.0.0.1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, err := direct.Factory(t.Context(), tc.spec)
			if !errors.Is(err, tc.want) || d != nil {
				t.Fatalf("Factory = %v, %v; want %v", d, err, tc.want)
			}
			if tc.wants != "" && !contains(err.Error(), tc.wants) {
				t.Fatalf("error %q does not say %q", err, tc.wants)
			}
		})
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// TestFactoryDriverConnectsAndEndsWithItsContext: a driver from the
// factory reaches the lab through its one address (serving both
// clusters), says which cluster carries it, and its goroutines end with
// the context it was opened in, before Close returns.
func TestFactoryDriverConnectsAndEndsWithItsContext(t *testing.T) {
	t.Parallel()
	srv := startLab(t, "A")
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(srv.CAPEM())
	var ep string
	for _, st := range srv.Status() {
		ep = st.Endpoints[0]
	}
	ctx, cancel := context.WithCancel(t.Context())
	ups := make(chan bool, 8)
	d, err := direct.Factory(ctx, hal.ConnectionSpec{Serial: "A", Addresses: []string{ep}, Manager: "m",
		User: "lockstep", Password: "pw-A", Roots: roots,
		Reachability: func(up, _ bool, _ string) { ups <- up }})
	if err != nil {
		t.Fatal(err)
	}
	qctx, qcancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer qcancel()
	if _, err := d.QueryPaths(qctx, 1); err != nil {
		t.Fatalf("query through the factory's driver: %v", err)
	}
	if via := d.Via(); via != "cluster 0" && via != "cluster 1" {
		t.Fatalf("Via = %q, want a cluster", via)
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
	after, acancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer acancel()
	if _, err := d.QueryPaths(after, 1); err == nil {
		t.Fatal("a command answered after the driver's context ended")
	}
}
