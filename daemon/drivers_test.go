package daemon

import (
	"slices"

	"context"
	"errors"
	"github.com/lockstep-io/lockstep/daemon/control/api"
	"testing"

	"github.com/lockstep-io/lockstep/daemon/config"
	"github.com/lockstep-io/lockstep/daemon/registry"
	"github.com/lockstep-io/lockstep/hal"
)

// TestDriverChoiceByKind: the connection that carries a storage
// system's driver is the first, by kind, that this build has a factory
// for; without one, the reason names what is missing.
func TestDriverChoiceByKind(t *testing.T) {
	t.Parallel()
	f := func(context.Context, hal.ConnectionSpec) (hal.Driver, error) { return nil, errors.New("unused") }
	direct := registry.Connection{Name: "d", Kind: hal.Direct, Addresses: []string{"a:1"}}
	cf := func(context.Context, hal.ConsoleSpec) (hal.Console, error) { return nil, errors.New("unused") }
	hmc := registry.Connection{Name: "h", Kind: hal.HMC, Addresses: []string{"h1:1751", "h2:1751"}, HMC: "h"}
	legacy := registry.Connection{Name: "old", Kind: hal.HMC, Addresses: []string{"h:1751"}}
	zos := registry.Connection{Name: "z", Kind: hal.ZOS, Addresses: []string{"z:5858"}, Sysplex: "PLEX1"}
	for _, tc := range []struct {
		name      string
		factories Drivers
		consoles  Consoles
		conns     []registry.Connection
		want      string // the chosen connection's name
		wantErr   string // connect's error without one
		wantWhy   string // readiness without a driver
		sysplex   string // this server's [server] sysplex
	}{
		{name: "zos build, outside the host's sysplex", factories: Drivers{hal.Direct: f, hal.ZOS: f},
			conns:   []registry.Connection{zos},
			wantErr: "S has no direct or zos connection (hmc connections are not supported by this build)",
			wantWhy: "no usable connection: z/OS host z: no IP connection, and not in sysplex PLEX1: this server's " +
				"[server] sysplex is not the z/OS host's (none is set)"},
		{name: "zos build, another sysplex", factories: Drivers{hal.Direct: f, hal.ZOS: f}, sysplex: "PLEX2",
			conns:   []registry.Connection{zos},
			wantErr: "S has no direct or zos connection (hmc connections are not supported by this build)",
			wantWhy: "no usable connection: z/OS host z: no IP connection, and not in sysplex PLEX1: this server's " +
				"[server] sysplex is not the z/OS host's (it is PLEX2)"},
		{name: "zos build, in the host's sysplex", factories: Drivers{hal.Direct: f, hal.ZOS: f}, sysplex: "PLEX1",
			conns: []registry.Connection{zos}, want: "z", wantWhy: "its zos connection is not started yet"},
		{name: "zos build prefers direct", factories: Drivers{hal.Direct: f, hal.ZOS: f}, sysplex: "PLEX1",
			conns: []registry.Connection{zos, direct}, want: "d", wantWhy: "its direct connection is not started yet"},
		{name: "direct build, direct connection", factories: Drivers{hal.Direct: f},
			conns: []registry.Connection{zos, direct}, want: "d", wantWhy: "its direct connection is not started yet"},
		{name: "direct build, hmc and zos only", factories: Drivers{hal.Direct: f}, conns: []registry.Connection{zos, hmc},
			wantErr: "S has no direct connection (hmc and zos connections are not supported by this build)",
			wantWhy: "no usable connection: z/OS host z: no IP connection, and this build cannot issue commands " +
				"through z/OS; HMC h1:1751;h2:1751: this build cannot reach storage through an HMC"},
		{name: "hmc build prefers direct", factories: Drivers{hal.Direct: f}, consoles: Consoles{hal.HMC: cf},
			conns: []registry.Connection{direct, hmc}, want: "d", wantWhy: "its direct connection is not started yet"},
		{name: "hmc build, hmc connection", factories: Drivers{hal.Direct: f}, consoles: Consoles{hal.HMC: cf},
			conns: []registry.Connection{zos, hmc}, want: "h", wantWhy: "its hmc connection is not started yet"},
		{name: "a storage add --kind hmc record is not used", factories: Drivers{hal.Direct: f}, consoles: Consoles{hal.HMC: cf},
			conns:   []registry.Connection{legacy},
			wantErr: "S has no direct or hmc connection (zos connections are not supported by this build)",
			wantWhy: "no usable connection: HMC h:1751: " + legacyHMC},
		{name: "no driver at all", factories: nil, conns: []registry.Connection{direct},
			wantErr: "S: this build has no storage driver",
			wantWhy: "no usable connection: direct: not supported by this build"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ds := newStorageDrivers(tc.factories, tc.consoles)
			cfg := &config.Config{Server: config.Server{Sysplex: tc.sysplex}}
			ds.cfg = func() *config.Config { return cfg }
			c := ds.pick(tc.conns)
			switch {
			case tc.want == "" && c != nil:
				t.Fatalf("picked %q, want none", c.Name)
			case tc.want != "" && (c == nil || c.Name != tc.want):
				t.Fatalf("picked %v, want %q", c, tc.want)
			}
			if tc.wantErr != "" {
				if err := ds.noUsableConnection("S"); err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
			}
			db := registry.NewDB()
			for _, conn := range tc.conns {
				recs := []registry.Record{{Version: registry.RecordVersion, Kind: registry.KindStorageAdded,
					Serial: "S", Connection: &conn}}
				if conn.HMC != "" {
					recs = []registry.Record{
						{Version: registry.RecordVersion, Kind: registry.KindHMCAdded, HMC: &registry.HMC{Name: conn.HMC, Addresses: conn.Addresses}},
						{Version: registry.RecordVersion, Kind: registry.KindHMCAttached, Name: conn.HMC, Serials: []hal.Serial{"S"}},
					}
				}
				for _, r := range recs {
					if err := db.Apply(r); err != nil {
						t.Fatal(err)
					}
				}
			}
			if got := ds.noDriverReason(db, "S"); got != tc.wantWhy {
				t.Fatalf("reason %q, want %q", got, tc.wantWhy)
			}
		})
	}
}

// fakeDriver is a driver that records its life: the context it was
// opened in, and its Close.
type fakeDriver struct {
	hal.StorageSystem
	ctx    context.Context
	closed chan struct{}
}

func (d *fakeDriver) Via() string  { return "" }
func (d *fakeDriver) Close() error { close(d.closed); return nil }

// TestDriversOutliveRunsCancellation: a driver lives in Run's context
// without its cancellation (a freeze in flight at a stop must still
// reach storage) and ends when the set closes it; retain closes the
// drivers of systems no longer registered; nothing opens after closeAll.
func TestDriversOutliveRunsCancellation(t *testing.T) {
	t.Parallel()
	var opened []*fakeDriver
	f := func(ctx context.Context, spec hal.ConnectionSpec) (hal.Driver, error) {
		d := &fakeDriver{ctx: ctx, closed: make(chan struct{})}
		opened = append(opened, d)
		return d, nil
	}
	ds := newStorageDrivers(Drivers{hal.Direct: f}, nil)
	if err := ds.add(f, hal.Direct, hal.ConnectionSpec{Serial: "A"}); !errors.Is(err, errNotRunning) {
		t.Fatalf("add before start: %v, want errNotRunning", err)
	}
	run, cancel := context.WithCancel(t.Context())
	ds.start(run)
	for _, serial := range []hal.Serial{"A", "B"} {
		if err := ds.add(f, hal.Direct, hal.ConnectionSpec{Serial: serial}); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if err := opened[0].ctx.Err(); err != nil {
		t.Fatalf("a driver's context ended with Run's: %v", err)
	}
	if missing := ds.retain([]hal.Serial{"B", "C"}); len(missing) != 1 || missing[0] != "C" {
		t.Fatalf("retain: missing %q, want [C]", missing)
	}
	select {
	case <-opened[0].closed:
	default:
		t.Fatal("the driver of a system no longer registered is not closed")
	}
	ds.closeAll()
	select {
	case <-opened[1].closed:
	default:
		t.Fatal("closeAll left a driver open")
	}
	if opened[1].ctx.Err() == nil {
		t.Fatal("the drivers' context outlives closeAll")
	}
	if err := ds.add(f, hal.Direct, hal.ConnectionSpec{Serial: "C"}); !errors.Is(err, errNotRunning) {
		t.Fatalf("add after closeAll: %v, want errNotRunning", err)
	}
}

// fakeConsole is an HMC connection whose HMCs are as given.
type fakeConsole struct {
	hal.Console
	eps []hal.ConsoleEndpoint
}

func (c fakeConsole) Endpoints() []hal.ConsoleEndpoint { return c.eps }

// TestReadinessNamesTheHMCsNotReached: a system this server could reach
// only through an HMC connection whose HMCs it cannot reach is reported
// with each HMC and why; one that also has a direct connection is
// reported as not connected, as before.
func TestReadinessNamesTheHMCsNotReached(t *testing.T) {
	t.Parallel()
	db := registry.NewDB()
	direct := registry.Connection{Name: "d", Kind: hal.Direct, Addresses: []string{"a:1"}}
	for _, r := range []registry.Record{
		{Kind: registry.KindHMCAdded, HMC: &registry.HMC{Name: "HMCS", Addresses: []string{"h1:1751", "h2:1751"}}},
		{Kind: registry.KindHMCAttached, Name: "HMCS", Serials: []hal.Serial{"A", "B"}},
		{Kind: registry.KindStorageAdded, Serial: "B", Connection: &direct},
	} {
		r.Version = registry.RecordVersion
		if err := db.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	ds := newStorageDrivers(Drivers{hal.Direct: func(context.Context, hal.ConnectionSpec) (hal.Driver, error) { return nil, nil }},
		Consoles{hal.HMC: func(context.Context, hal.ConsoleSpec) (hal.Console, error) { return nil, nil }})
	ds.consoles["HMCS"] = openConsole{Console: fakeConsole{eps: []hal.ConsoleEndpoint{
		{Addr: "h1:1751", Detail: "dial tcp h1:1751: i/o timeout"},
		{Addr: "h2:1751", Name: "LAB-HMC2", Detail: "connection refused"}}}}
	for _, serial := range []hal.Serial{"A", "B"} {
		d := &fakeDriver{closed: make(chan struct{})}
		var parts []part
		for _, c := range ds.plan(db.Connections(serial)) {
			parts = append(parts, part{conn: c, Driver: d})
		}
		ds.open[serial] = openDriver{Driver: d, parts: parts}
	}
	got := ds.readiness(db)
	want := []api.ReadinessDoc{
		{Serial: "A", Reason: "reachable only through HMC connection HMCS, which this server cannot reach: " +
			"HMC h1:1751 unreachable: dial tcp h1:1751: i/o timeout; HMC LAB-HMC2 (h2:1751) unreachable: connection refused"},
		{Serial: "B", Reason: "not connected: no answer from either cluster yet"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("readiness\n got %q\nwant %q", got, want)
	}
}
