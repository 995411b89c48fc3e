package daemon

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/config"
	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/registry"
	"github.com/lockstep-io/lockstep/daemon/state"
	"github.com/lockstep-io/lockstep/drivers/wire"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/persist"
)

// storageCA writes a CA certificate and returns the [storage] table that
// names it.
func storageCA(t *testing.T) string {
	t.Helper()
	ss, err := wire.NewSelfSigned(time.Now(), time.Hour, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "storage-ca.pem")
	if err := os.WriteFile(path, ss.CAPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return "[storage]\nca_file = \"" + path + "\"\n"
}

// TestStorageAddNeedsTheCA: without [storage] ca_file a storage system
// cannot be added: its certificate could only be checked against the
// system roots, which are never trusted for storage.
func TestStorageAddNeedsTheCA(t *testing.T) {
	c := startServer(t)
	spec := api.StorageSpec{Serial: "LAB.2107-75P0001", Connections: []api.ConnectionSpec{
		{Name: "direct", Kind: api.Direct, Addresses: []string{"127.0.0.1:1", "127.0.0.1:2"}}}}
	_, err := c.StorageAdd(context.Background(), spec)
	if !errors.Is(err, api.ErrRefused) || !strings.Contains(err.Error(), "storage.ca_file") {
		t.Fatalf("storage add without a CA: %v, want a refusal naming storage.ca_file", err)
	}
	if list, err := c.StorageList(context.Background()); err != nil || len(list) != 0 {
		t.Fatalf("storage list %v, %v: want none", list, err)
	}
}

// TestStartAndCheckNeedTheCAOnceStorageIsDefined: a state that holds a
// storage system makes lockstepd --check-config and the start refuse a
// configuration without [storage] ca_file, naming the key; with it both
// accept.
func TestStartAndCheckNeedTheCAOnceStorageIsDefined(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "state")
	parse := func(extra string) *config.Config {
		t.Helper()
		cfg, err := config.Parse("[server]\nname = \"t\"\nstate_dir = \"" + dir + "\"\n" + extra)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	// A state directory never used: nothing to refuse.
	if w, err := CheckStorageConfig(parse("")); err != nil || len(w) != 0 {
		t.Fatalf("fresh state: %v, %v", w, err)
	}
	store, err := state.Open(dir, persist.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.ProposeRegistry(context.Background(), registry.Record{Version: registry.RecordVersion,
		Kind: registry.KindStorageAdded, Serial: "LAB.2107-75P0001", At: time.Now(),
		Connection: &registry.Connection{Name: "direct", Kind: "direct", Addresses: []string{"127.0.0.1:1"}}}); err != nil {
		t.Fatal(err)
	}
	// While the state is in use, check-config cannot count: it warns.
	if w, err := CheckStorageConfig(parse("")); err != nil || len(w) != 1 || !strings.Contains(w[0], "storage.ca_file") {
		t.Fatalf("state in use: %v, %v; want one warning naming storage.ca_file", w, err)
	}
	store.Close()

	if _, err := CheckStorageConfig(parse("")); !errors.Is(err, ErrNoStorageCA) || !strings.Contains(err.Error(), "storage.ca_file") {
		t.Fatalf("check-config without the CA: %v, want ErrNoStorageCA naming the key", err)
	}
	if _, err := New(Options{Config: parse(""), Notifier: &countingNotifier{}}); !errors.Is(err, ErrNoStorageCA) {
		t.Fatalf("start without the CA: %v, want ErrNoStorageCA", err)
	}
	withCA := parse(storageCA(t))
	if w, err := CheckStorageConfig(withCA); err != nil || len(w) != 0 {
		t.Fatalf("check-config with the CA: %v, %v", w, err)
	}
	srv, err := New(Options{Config: withCA, Notifier: &countingNotifier{}, Drivers: testDrivers()})
	if err != nil {
		t.Fatalf("start with the CA: %v", err)
	}
	srv.store.Close()
	// A CA file that holds no certificate is refused at once.
	bad := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(bad, []byte("not a certificate\n"), 0o644)
	if _, err := CheckStorageConfig(parse("[storage]\nca_file = \"" + bad + "\"\n")); err == nil || !strings.Contains(err.Error(), "storage.ca_file") {
		t.Fatalf("a CA file with no certificate: %v", err)
	}
}

// TestTrapSourcesIncludeHMCs: an HMC's address may send the traps of
// every system it fronts, beside their own cluster addresses.
func TestTrapSourcesIncludeHMCs(t *testing.T) {
	t.Parallel()
	db := registry.NewDB()
	direct := registry.Connection{Name: "d", Kind: hal.Direct, Addresses: []string{"192.0.2.1:1750", "192.0.2.2:1750"}}
	for _, r := range []registry.Record{
		{Kind: registry.KindStorageAdded, Serial: "A", Connection: &direct},
		{Kind: registry.KindHMCAdded, HMC: &registry.HMC{Name: "H", Addresses: []string{"192.0.2.91:1751", "192.0.2.92:1751"}}},
		{Kind: registry.KindHMCAttached, Name: "H", Serials: []hal.Serial{"A", "B"}},
	} {
		r.Version = registry.RecordVersion
		if err := db.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	conns, _ := trapConnections(db)
	ts := &trapSources{}
	got := trapSourceMap(conns, ts.connectionIPs)
	want := map[string][]hal.Serial{"192.0.2.1": {"A"}, "192.0.2.2": {"A"}, "192.0.2.91": {"A", "B"}, "192.0.2.92": {"A", "B"}}
	if len(got) != len(want) {
		t.Fatalf("sources %v", got)
	}
	for a, serials := range want {
		if s := got[netip.MustParseAddr(a)]; !slices.Equal(s, serials) {
			t.Errorf("%s may send traps for %v, want %v", a, s, serials)
		}
	}
}

// TestCheckConfigSaysWhichZOSConnectionsAreUnusable: lockstepd
// --check-config warns, per storage system, of each z/OS connection
// whose host is of another sysplex than [server] sysplex, naming it.
func TestCheckConfigSaysWhichZOSConnectionsAreUnusable(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "state")
	ca := storageCA(t)
	store, err := state.Open(dir, persist.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.ProposeRegistry(context.Background(), registry.Record{Version: registry.RecordVersion,
		Kind: registry.KindStorageAdded, Serial: "LAB.2107-75P0001", At: time.Now(),
		Connection: &registry.Connection{Name: "SYSA", Kind: hal.ZOS, Addresses: []string{"127.0.0.1:5858"}, Sysplex: "PLEX1"}}); err != nil {
		t.Fatal(err)
	}
	store.Close()
	for _, tc := range []struct{ name, server, want string }{
		{name: "no sysplex", server: "", want: "storage system LAB.2107-75P0001: z/OS connection SYSA is unusable: not in sysplex PLEX1"},
		{name: "another sysplex", server: "sysplex = \"PLEX2\"\n", want: "(it is PLEX2)"},
		{name: "the host's sysplex", server: "sysplex = \"PLEX1\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse("[server]\nname = \"t\"\nstate_dir = \"" + dir + "\"\n" + tc.server + ca)
			if err != nil {
				t.Fatal(err)
			}
			w, err := CheckStorageConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.want == "" && len(w) != 0:
				t.Fatalf("warnings %q, want none", w)
			case tc.want != "" && (len(w) != 1 || !strings.Contains(w[0], tc.want)):
				t.Fatalf("warnings %q, want one containing %q", w, tc.want)
			}
		})
	}
}
