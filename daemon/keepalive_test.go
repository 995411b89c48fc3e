package daemon

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/drivers/direct"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/hapair"
)

// TestStorageKeepAliveFromTheConfig: [storage] keepalive reaches every
// storage connection lockstepd opens, and the connection works with it.
func TestStorageKeepAliveFromTheConfig(t *testing.T) {
	r := newLabRig(t, 5*time.Second)
	r.extra = "keepalive = \"300ms\"\n" // in [storage]
	var mu sync.Mutex
	got := map[hal.Serial]time.Duration{}
	r.drivers = Drivers{hal.Direct: func(ctx context.Context, spec hal.ConnectionSpec) (hal.Driver, error) {
		mu.Lock()
		got[spec.Serial] = spec.KeepAlive
		mu.Unlock()
		return direct.Factory(ctx, spec)
	}}
	c, _ := r.start(safeFor5s, &countingNotifier{})
	ctx := context.Background()
	for _, st := range r.lab.Status() {
		if _, err := c.StorageAdd(ctx, api.StorageSpec{Serial: hal.Serial(st.Serial), Connections: []api.ConnectionSpec{{
			Name: "direct", Kind: api.Direct, Addresses: []string{st.Endpoints[0], st.Endpoints[1]},
			User: "lockstep", PasswordFile: hapair.PasswordFile(r.dir, hal.Serial(st.Serial))}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := eventually(func() bool {
		sts, err := c.StorageList(ctx)
		if err != nil {
			return false
		}
		for _, s := range sts {
			if !s.Reachable {
				return false
			}
		}
		return len(sts) == len(r.lab.Status())
	}); err != nil {
		t.Fatal("the storage systems were not reached with a keep-alive of 300 ms")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, st := range r.lab.Status() {
		if d := got[hal.Serial(st.Serial)]; d != 300*time.Millisecond {
			t.Errorf("%s opened with keep-alive %v, want the configured 300ms", st.Serial, d)
		}
	}
}
