package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lockstep-io/lockstep/daemon/engine"
	"github.com/lockstep-io/lockstep/daemon/registry"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// swapHosts owns the HyperSwap side of the z/OS connections
// (Options.SwapHosts): one hal.SwapHostConn per z/OS connection (zos
// add) of this server's sysplex, opened when first needed in the
// drivers' life and closed with them (closeAll), or when the connection
// is removed or changed. A nil factory: HyperSwap is unavailable, and
// every HyperSwap session's start is refused saying so.
//
// The z/OS hosts of a HyperSwap session are every z/OS connection of the
// sysplex that has each of its H1 and H2 systems online (named at zos
// add): each runs its own host I/O, so each is given the pairs and each
// swaps. A session none of them covers is refused at start and
// hyperswap, naming the systems that no connection has online.
type swapHosts struct {
	factory hal.SwapHostFactory
	ds      *storageDrivers

	// events carries every open connection's swap reports to the
	// acting period's watch (which hands them to the engine). Each
	// connection is subscribed the moment it opens, before anything
	// can be loaded through it: a watch that subscribed on its own only
	// at its next poll missed the report of a swap made in between (a
	// session started right after its zos add), and the session showed
	// Suspended (Partial) until the status poll caught up. A report that
	// finds the buffer full is dropped; the status poll is the backstop.
	events chan hal.SwapEvent

	mu   sync.Mutex
	open map[string]openSwap // by z/OS connection name
	// failed says why a connection's SwapHost could not be opened.
	failed map[string]string
}

// swapEventBuffer is how many swap reports wait for a watch.
const swapEventBuffer = 256

type openSwap struct {
	key  string
	conn hal.SwapHostConn
	// unsubscribe ends the connection's forwarding to events.
	unsubscribe context.CancelFunc
}

func newSwapHosts(f hal.SwapHostFactory, ds *storageDrivers) *swapHosts {
	return &swapHosts{factory: f, ds: ds, open: map[string]openSwap{}, failed: map[string]string{},
		events: make(chan hal.SwapEvent, swapEventBuffer)}
}

// subscribe forwards conn's swap reports to sh.events until unsubscribe
// or the connection closes. Called with sh.mu.
func (sh *swapHosts) subscribe(name string, conn hal.SwapHostConn) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := conn.SwapEvents(ctx)
	if err != nil {
		sh.ds.log.Warn("z/OS host's swap reports not followed: its status poll records its swaps", "zos", name, "err", err)
		return cancel
	}
	go func() {
		for ev := range ch {
			select {
			case sh.events <- ev:
			default:
				sh.ds.log.Warn("z/OS host's swap report dropped (too many waiting): its status poll records it",
					"zos", name, "session", ev.Session)
			}
		}
	}()
	return cancel
}

// close ends the forwarding of the connection's reports and closes it
// (after sh.mu).
func (o openSwap) close() {
	if o.unsubscribe != nil {
		o.unsubscribe()
	}
	_ = o.conn.Close()
}

// mine are the z/OS connections of this server's sysplex, by name.
func (sh *swapHosts) mine() (string, []registry.ZOS) {
	plex := sh.ds.sysplex()
	if plex == "" {
		return "", nil
	}
	var out []registry.ZOS
	for _, z := range sh.ds.store.Registry().ZOSs() {
		if z.Sysplex == plex {
			out = append(out, z)
		}
	}
	return plex, out
}

// sync opens the SwapHost of every z/OS connection of the sysplex not
// yet open (or changed), closes those no longer defined, and returns
// the open ones by name.
func (sh *swapHosts) sync() map[string]hal.SwapHost {
	if sh == nil || sh.factory == nil {
		return nil
	}
	_, zs := sh.mine()
	cfg := sh.ds.cfg()
	var stale []openSwap
	out := map[string]hal.SwapHost{}
	sh.mu.Lock()
	defer func() {
		sh.mu.Unlock()
		for _, o := range stale {
			o.close()
		}
	}()
	want := map[string]bool{}
	for _, z := range zs {
		want[z.Name] = true
		key := fmt.Sprintf("%q|%s|%s|%s|%x", z.Addresses, z.Sysplex, z.User, z.PasswordFile, cfg.Storage.Pins["zos:"+z.Name])
		if o, ok := sh.open[z.Name]; ok && o.key == key {
			out[z.Name] = o.conn
			continue
		} else if ok {
			stale = append(stale, o)
			delete(sh.open, z.Name)
		}
		conn, err := sh.openOne(z)
		if err != nil {
			if sh.failed[z.Name] != err.Error() {
				sh.ds.log.Error("z/OS HyperSwap connection not opened", "zos", z.Name, "err", err)
			}
			sh.failed[z.Name] = err.Error()
			continue
		}
		delete(sh.failed, z.Name)
		sh.open[z.Name] = openSwap{key: key, conn: conn, unsubscribe: sh.subscribe(z.Name, conn)}
		out[z.Name] = conn
	}
	for name, o := range sh.open {
		if !want[name] {
			stale = append(stale, o)
			delete(sh.open, name)
		}
	}
	for name := range sh.failed {
		if !want[name] {
			delete(sh.failed, name)
		}
	}
	return out
}

// openOne opens one z/OS connection's SwapHost. Called with sh.mu.
func (sh *swapHosts) openOne(z registry.ZOS) (hal.SwapHostConn, error) {
	life, err := sh.ds.lifetime(hal.Serial("z/OS " + z.Name))
	if err != nil {
		return nil, err
	}
	if sh.ds.roots == nil {
		return nil, fmt.Errorf("z/OS %s: %w: the z/OS hosts' certificates cannot be checked", z.Name, ErrNoStorageCA)
	}
	pw, err := password(registry.Connection{PasswordFile: z.PasswordFile})
	if err != nil {
		return nil, fmt.Errorf("z/OS %s: %w", z.Name, err)
	}
	cfg := sh.ds.cfg()
	return sh.factory(life, hal.ConnectionSpec{Name: z.Name, Addresses: z.Addresses, Sysplex: z.Sysplex,
		Manager: cfg.Server.Name, User: z.User, Password: pw, Roots: sh.ds.roots, Pin: cfg.Storage.Pins["zos:"+z.Name],
		Clock: sh.ds.clock, Logger: sh.ds.log, DialTimedOut: sh.ds.dialTimedOut, KeepAlive: cfg.Storage.KeepAlive})
}

// forSerials are the z/OS hosts that HyperSwap a session on serials
// (engine.Options.SwapHosts), or why there is none.
func (sh *swapHosts) forSerials(serials []hal.Serial) ([]engine.SwapHost, error) {
	if sh == nil || sh.factory == nil {
		return nil, fmt.Errorf("%w (this build has no z/OS HyperSwap support)", engine.ErrNoHyperSwap)
	}
	plex, zs := sh.mine()
	if plex == "" {
		return nil, errors.New("this server is in no sysplex ([server] sysplex): it cannot use z/OS connections, " +
			"which a HyperSwap session needs")
	}
	var eligible []string
	online := map[hal.Serial]bool{}
	for _, z := range zs {
		for _, serial := range z.Systems {
			online[serial] = true
		}
		if !slices.ContainsFunc(serials, func(s hal.Serial) bool { return !slices.Contains(z.Systems, s) }) {
			eligible = append(eligible, z.Name)
		}
	}
	if len(eligible) == 0 {
		var missing []string
		for _, serial := range serials {
			if !online[serial] {
				missing = append(missing, string(serial))
			}
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("no z/OS connection of sysplex %s has %s online: a HyperSwap session needs one with "+
				"every H1 and H2 system online (lockstepctl zos add ... --serial)", plex, strings.Join(missing, ", "))
		}
		return nil, fmt.Errorf("no single z/OS connection of sysplex %s has all of %s online: a HyperSwap session "+
			"needs one with every H1 and H2 system online", plex, joinSerials(serials))
	}
	open := sh.sync()
	var out []engine.SwapHost
	var why []string
	for _, name := range eligible {
		if h, ok := open[name]; ok {
			out = append(out, engine.SwapHost{Name: name, SwapHost: h})
			continue
		}
		sh.mu.Lock()
		why = append(why, fmt.Sprintf("%s: %s", name, sh.failed[name]))
		sh.mu.Unlock()
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the z/OS connections with its systems online could not be opened: %s", strings.Join(why, "; "))
	}
	return out, nil
}

func joinSerials(ss []hal.Serial) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return strings.Join(out, ", ")
}

// closeAll closes every SwapHost and waits for each.
func (sh *swapHosts) closeAll() {
	if sh == nil {
		return
	}
	sh.mu.Lock()
	open := sh.open
	sh.open = map[string]openSwap{}
	sh.mu.Unlock()
	for _, o := range open {
		o.close()
	}
}

// watch follows the z/OS hosts for an acting period until ctx ends: it
// hands the hosts' swap reports to the engine (an unplanned swap is
// recorded at once; each connection is subscribed when it opens, see
// events) and reads each host's status at once and then every poll
// interval, the backstop of a report lost (the manager down, a
// takeover, the connection down when the host swapped). A host added
// later is opened at its first use (a start) or at the next poll.
func (sh *swapHosts) watch(ctx context.Context, eng *engine.Engine, epoch hal.Epoch, clk clock.Clock,
	poll, timeout func() time.Duration) {
	if sh == nil || sh.factory == nil {
		return
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		for {
			select {
			case ev := <-sh.events:
				eng.Swapped(ev)
			case <-ctx.Done():
				return
			}
		}
	})
	t := clk.NewTicker(poll())
	defer t.Stop()
	for {
		hosts := sh.sync()
		for _, name := range slices.Sorted(maps.Keys(hosts)) {
			h := hosts[name]
			qctx, cancel := clock.WithTimeout(ctx, clk, timeout())
			states, err := h.SwapStatus(qctx, epoch)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					sh.ds.log.Warn("z/OS host's HyperSwap status not read", "zos", name, "err", err)
				}
				continue
			}
			eng.FoundSwapped(name, states)
		}
		t.Reset(poll())
		select {
		case <-t.C():
		case <-ctx.Done():
			return
		}
	}
}
