package emu

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/lockstep-io/lockstep/hal"
)

// Errors of a z/OS host's I/O.
var (
	// ErrHostDown: the z/OS host itself is down; nothing it runs writes.
	ErrHostDown = errors.New("emu: z/OS host is down")
	// ErrNoChannel: no channel path from the host to the storage system
	// is online; the host's I/O to it fails.
	ErrNoChannel = errors.New("emu: no channel path to the storage system is online")
)

// OpSwapFreeze and OpSwapRecover are what a z/OS host's HyperSwap records
// in the command log: the freeze of the H1 LSS pairs and the recover of
// the H2 volumes it issues in-band itself (Host).
const (
	OpSwapFreeze  = "hyperswap-freeze"
	OpSwapRecover = "hyperswap-recover"
)

// HostConfig describes an emulated z/OS host's I/O view.
type HostConfig struct {
	// Name is the host (its system name), as SwapEvent.Host reports it.
	Name string
	// Online are the storage systems the host has channels to; I/O to any
	// other fails with ErrNoChannel.
	Online []hal.Serial
	// AtSwap, if set, is called during each swap of a session once its
	// H1 LSS pairs are frozen and its H2 volumes recovered, before the
	// host writes anything to them: the session's I/O is held, so H2
	// holds exactly what the application had been told was written (an
	// oracle reads it there). It must not call the host.
	AtSwap func(session string)
}

// Host is an emulated z/OS host as its applications see storage: every
// write goes through the host's device map (its UCBs) to the device a
// volume is on now, over the host's channels, and fails when the host's
// channel to that storage system is down or the system crashed. It runs
// HyperSwap (hal.SwapHost) for the sessions a manager loads:
//
//   - Swap (planned): hold the session's host I/O (new writes wait),
//     abandon its writes in flight to H1, freeze its LSS pairs through the
//     host's channels where they reach, recover (fail over) the H2
//     volumes, point the device map at H2, and re-drive the held and the
//     abandoned writes there.
//   - Unplanned: a write to an H1 volume of a loaded session fails (the
//     system crashed, or the host's channels to it are down) while the
//     session is swap-ready (every pair full-duplex as the host knows
//     them): the host swaps as above, and the failed write is re-driven on
//     H2, never reported failed. A session that is not swap-ready reports
//     the I/O error. A replication path loss alone fails no host write: it
//     suspends the pairs (the host hears it and the session is no longer
//     swap-ready) and the manager freezes as usual.
//
// A write that was in flight to H1 when a swap began is never
// acknowledged on the strength of H1: ELB may have held it and then
// completed it locally, unmirrored, so it is re-driven on H2 (the same
// block and data: idempotent), and acknowledged once it is there.
//
// The host knows a pair's state from what it heard: a query when the
// session is loaded and when a channel comes back, every state-change
// interrupt its channels carry (StateChanges), and the ending status of
// its own writes (a write that was not mirrored). A crashed system raises
// nothing, so its pairs stay full-duplex as far as the host knows: that is
// what lets it swap away from it.
//
// Lock order: the fabric's lock before h.mu (interrupts are heard under
// the fabric's lock); h.mu is never held while calling the fabric.
type Host struct {
	fab    *Fabric
	name   string
	atSwap func(session string) // HostConfig.AtSwap
	online map[hal.Serial]bool
	detach []func()

	mu          sync.Mutex
	epoch       hal.Epoch
	down        bool
	channelDown map[hal.Serial]bool
	dev         map[hal.VolumeRef]hal.VolumeRef // device as applications name it -> volume it is on now; identity if absent
	sessions    map[string]*swapSession
	bySource    map[hal.VolumeRef]*swapSession // H1 volume -> loaded, unswapped session
	subs        map[chan hal.SwapEvent]struct{}

	// afterWrite, set by tests before any write, runs after storage
	// answered a write and before the host looks at the answer.
	afterWrite func(phys hal.VolumeRef)
}

// swapSession is one loaded HyperSwap session.
type swapSession struct {
	name    string
	epoch   hal.Epoch // of the last LoadSwap or Swap: what the host's own commands carry
	pairs   []hal.VolumePair
	state   map[hal.VolumePair]hal.PairState // as the host knows it
	why     map[hal.VolumePair]string        // why a pair is not full-duplex
	swapped bool
	// gen counts swaps begun: a write that began under an older gen is not
	// acknowledged on what H1 answered.
	gen uint64
	// swapping is non-nil, and closed when done, while a swap runs; new
	// writes to the session's H1 volumes wait on it.
	swapping chan struct{}
	swapErr  error
	inflight map[*inflightWrite]struct{}
}

type inflightWrite struct{ cancel context.CancelFunc }

var _ hal.SwapHost = (*Host)(nil)

// NewHost attaches a z/OS host to the fabric's systems it has online.
// Close detaches it.
func (f *Fabric) NewHost(cfg HostConfig) (*Host, error) {
	if cfg.Name == "" {
		return nil, fmt.Errorf("%w: z/OS host without a name", ErrConfig)
	}
	h := &Host{fab: f, name: cfg.Name, atSwap: cfg.AtSwap, online: map[hal.Serial]bool{}, channelDown: map[hal.Serial]bool{},
		dev: map[hal.VolumeRef]hal.VolumeRef{}, sessions: map[string]*swapSession{},
		bySource: map[hal.VolumeRef]*swapSession{}, subs: map[chan hal.SwapEvent]struct{}{}}
	for _, serial := range cfg.Online {
		s := f.System(serial)
		if s == nil {
			return nil, fmt.Errorf("%w: z/OS host %s: unknown storage system %s", ErrConfig, cfg.Name, serial)
		}
		h.online[serial] = true
		// An attachment that queues nothing: the host hears each
		// interrupt under the fabric's lock, at the instant it is raised.
		a := &attachment{wake: make(chan struct{}, 1), hears: func(sc StateChange) bool { h.hear(sc); return false }}
		f.mu.Lock()
		if s.attached == nil {
			s.attached = map[*attachment]struct{}{}
		}
		s.attached[a] = struct{}{}
		f.mu.Unlock()
		h.detach = append(h.detach, func() {
			f.mu.Lock()
			delete(s.attached, a)
			f.mu.Unlock()
		})
	}
	return h, nil
}

// Name is the host's name.
func (h *Host) Name() string { return h.name }

// Close detaches the host from the fabric.
func (h *Host) Close() {
	for _, d := range h.detach {
		d()
	}
	h.detach = nil
}

// SetDown takes the host down (every write fails with ErrHostDown) or
// back up; coming up, it queries the pairs it holds again.
func (h *Host) SetDown(down bool) {
	h.mu.Lock()
	h.down = down
	h.mu.Unlock()
	if !down {
		h.revalidate(nil)
	}
}

// SetChannel fails or restores the host's channels to one storage system.
// Restored, the host queries that system's pairs again: it may have missed
// their state changes meanwhile.
func (h *Host) SetChannel(serial hal.Serial, up bool) {
	h.mu.Lock()
	h.channelDown[serial] = !up
	h.mu.Unlock()
	if up {
		h.revalidate(&serial)
	}
}

// reachesLocked: the host is up and has a working channel to serial.
func (h *Host) reachesLocked(serial hal.Serial) bool {
	return !h.down && h.online[serial] && !h.channelDown[serial]
}

func (h *Host) reaches(serial hal.Serial) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reachesLocked(serial)
}

// hear takes an interrupt, under the fabric's lock: a pair of a loaded
// session that leaves full duplex makes it not swap-ready; one that
// reaches full duplex counts again.
func (h *Host) hear(sc StateChange) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.reachesLocked(sc.Serial) || sc.Kind == ExtendedLongBusy {
		return // no channel, no interrupt
	}
	for n := range 256 {
		if !sc.Volumes.Has(uint8(n)) {
			continue
		}
		src := hal.VolumeRef{Serial: sc.Serial, Volume: hal.NewVolume(sc.LSSPair.Source.LSS, uint8(n))}
		sess := h.bySource[src]
		if sess == nil {
			continue
		}
		for _, vp := range sess.pairs {
			if vp.Source != src || vp.Target.Serial != sc.LSSPair.Target.Serial {
				continue
			}
			switch sc.Kind {
			case PairFullDuplex:
				sess.state[vp], sess.why[vp] = hal.FullDuplex, ""
			case PairPending:
				sess.state[vp], sess.why[vp] = hal.CopyPending, fmt.Sprintf("pair %s is copying", vp)
			case PairSuspending, PairSuspended:
				sess.state[vp], sess.why[vp] = hal.Suspended, fmt.Sprintf("pair %s is suspended (%s)", vp, sc.Reason)
			}
		}
	}
}

// revalidate queries the pairs of every loaded session whose source is on
// serial (nil: any), through the host's channels.
func (h *Host) revalidate(serial *hal.Serial) {
	h.mu.Lock()
	var sessions []*swapSession
	for _, sess := range h.sessions {
		if !sess.swapped {
			sessions = append(sessions, sess)
		}
	}
	h.mu.Unlock()
	for _, sess := range sessions {
		h.mu.Lock()
		pairs := slices.Clone(sess.pairs)
		h.mu.Unlock()
		if serial != nil {
			pairs = slices.DeleteFunc(pairs, func(vp hal.VolumePair) bool { return vp.Source.Serial != *serial })
		}
		states := h.query(pairs)
		h.mu.Lock()
		if h.sessions[sess.name] == sess {
			for vp, st := range states {
				sess.state[vp], sess.why[vp] = st.state, st.why
			}
		}
		h.mu.Unlock()
	}
}

type knownState struct {
	state hal.PairState
	why   string
}

// query reads the pairs' states on their source systems, where the host's
// channels reach them. Not under h.mu.
func (h *Host) query(pairs []hal.VolumePair) map[hal.VolumePair]knownState {
	out := make(map[hal.VolumePair]knownState, len(pairs))
	reach := map[hal.Serial]bool{}
	for _, vp := range pairs {
		if _, ok := reach[vp.Source.Serial]; !ok {
			reach[vp.Source.Serial] = h.reaches(vp.Source.Serial)
		}
	}
	f := h.fab
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, vp := range pairs {
		s, v, err := f.volumeLocked(vp.Source)
		switch {
		case err != nil:
			out[vp] = knownState{hal.Simplex, fmt.Sprintf("pair %s: %v", vp, err)}
		case !reach[vp.Source.Serial] || s.crashed:
			out[vp] = knownState{hal.Simplex, fmt.Sprintf("pair %s: the host cannot reach %s", vp, vp.Source.Serial)}
		case v.pair == nil || v.pair.target != vp.Target:
			out[vp] = knownState{hal.Simplex, fmt.Sprintf("pair %s does not exist", vp)}
		case v.pair.state != hal.FullDuplex:
			out[vp] = knownState{v.pair.state, fmt.Sprintf("pair %s is %s", vp, v.pair.state)}
		default:
			out[vp] = knownState{hal.FullDuplex, ""}
		}
	}
	return out
}

// checkEpochLocked fences a command of a stale manager.
func (h *Host) checkEpochLocked(epoch hal.Epoch) error {
	if epoch < h.epoch {
		return fmt.Errorf("%w: z/OS host %s: epoch %d is below %d", hal.ErrFenced, h.name, epoch, h.epoch)
	}
	h.epoch = epoch
	return nil
}

// LoadSwap gives the host a session's pairs (hal.SwapHost). Loading the
// pairs it holds again keeps the session as it is (swapped or not);
// other pairs replace them, unswapped. The host queries the pairs' states.
func (h *Host) LoadSwap(ctx context.Context, epoch hal.Epoch, session string, pairs []hal.VolumePair) error {
	if session == "" || len(pairs) == 0 {
		return fmt.Errorf("%w: z/OS host %s: load-swap needs a session and its pairs", hal.ErrRefused, h.name)
	}
	pairs = slices.Clone(pairs)
	slices.SortFunc(pairs, comparePairs)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.checkEpochLocked(epoch); err != nil {
		return err
	}
	for i, vp := range pairs {
		if !h.online[vp.Source.Serial] || !h.online[vp.Target.Serial] {
			return fmt.Errorf("%w: z/OS host %s: pair %s: the host does not have both systems online", hal.ErrRefused, h.name, vp)
		}
		if i > 0 && pairs[i-1].Source == vp.Source {
			return fmt.Errorf("%w: z/OS host %s: volume %s is the source of two pairs", hal.ErrRefused, h.name, vp.Source)
		}
		if o := h.bySource[vp.Source]; o != nil && o.name != session {
			return fmt.Errorf("%w: z/OS host %s: volume %s is in session %s", hal.ErrRefused, h.name, vp.Source, o.name)
		}
	}
	old := h.sessions[session]
	if old != nil && slices.Equal(old.pairs, pairs) {
		old.epoch = epoch
		return nil
	}
	if old != nil && old.swapping != nil {
		return fmt.Errorf("%w: z/OS host %s: session %s is swapping", hal.ErrRefused, h.name, session)
	}
	h.unloadLocked(session)
	sess := &swapSession{name: session, epoch: epoch, pairs: pairs, state: map[hal.VolumePair]hal.PairState{},
		why: map[hal.VolumePair]string{}, inflight: map[*inflightWrite]struct{}{}}
	for _, vp := range pairs {
		sess.state[vp], sess.why[vp] = hal.Simplex, fmt.Sprintf("pair %s: state not known yet", vp)
		h.bySource[vp.Source] = sess
	}
	h.sessions[session] = sess
	h.mu.Unlock()
	states := h.query(pairs)
	h.mu.Lock()
	if h.sessions[session] == sess {
		for vp, st := range states {
			// An interrupt heard since the query is newer: keep it.
			if sess.why[vp] == fmt.Sprintf("pair %s: state not known yet", vp) {
				sess.state[vp], sess.why[vp] = st.state, st.why
			}
		}
	}
	return nil
}

func comparePairs(a, b hal.VolumePair) int {
	return cmp.Or(compareRef(a.Source, b.Source), compareRef(a.Target, b.Target))
}

func compareRef(a, b hal.VolumeRef) int {
	return cmp.Or(compareSerial(a.Serial, b.Serial), cmp.Compare(a.Volume, b.Volume))
}

// UnloadSwap forgets a session (hal.SwapHost); the device map stays as it
// is: a swapped session's applications keep writing to H2.
func (h *Host) UnloadSwap(ctx context.Context, epoch hal.Epoch, session string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.checkEpochLocked(epoch); err != nil {
		return err
	}
	if s := h.sessions[session]; s != nil && s.swapping != nil {
		return fmt.Errorf("%w: z/OS host %s: session %s is swapping", hal.ErrRefused, h.name, session)
	}
	h.unloadLocked(session)
	return nil
}

func (h *Host) unloadLocked(session string) {
	s := h.sessions[session]
	if s == nil {
		return
	}
	for _, vp := range s.pairs {
		if h.bySource[vp.Source] == s {
			delete(h.bySource, vp.Source)
		}
	}
	delete(h.sessions, session)
}

// SwapStatus lists the sessions the host holds (hal.SwapHost).
func (h *Host) SwapStatus(ctx context.Context, epoch hal.Epoch) ([]hal.SwapState, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.checkEpochLocked(epoch); err != nil {
		return nil, err
	}
	out := make([]hal.SwapState, 0, len(h.sessions))
	for _, name := range slices.Sorted(maps.Keys(h.sessions)) {
		s := h.sessions[name]
		ready, why := h.readyLocked(s)
		out = append(out, hal.SwapState{Session: name, Pairs: slices.Clone(s.pairs), Swapped: s.swapped, Ready: ready, Why: why})
	}
	return out, nil
}

// readyLocked: the host would swap the session now.
func (h *Host) readyLocked(s *swapSession) (bool, string) {
	switch {
	case h.down:
		return false, "the z/OS host is down"
	case s.swapped:
		return false, "swapped: the host writes to the H2 volumes"
	case s.swapping != nil:
		return false, "swapping"
	}
	for _, vp := range s.pairs {
		if s.state[vp] != hal.FullDuplex {
			return false, s.why[vp]
		}
		if !h.reachesLocked(vp.Target.Serial) {
			return false, fmt.Sprintf("no channel to %s, which holds the H2 volume %s", vp.Target.Serial, vp.Target)
		}
	}
	return true, ""
}

// SwapEvents subscribes to the host's swaps (hal.SwapHost).
func (h *Host) SwapEvents(ctx context.Context) (<-chan hal.SwapEvent, error) {
	ch := make(chan hal.SwapEvent, 64)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	context.AfterFunc(ctx, func() {
		h.mu.Lock()
		delete(h.subs, ch)
		close(ch)
		h.mu.Unlock()
	})
	return ch, nil
}

// Swap is the planned HyperSwap (hal.SwapHost): it does not need the
// session to be swap-ready (the manager froze it and judges the image);
// it needs the host to reach every H2 volume.
func (h *Host) Swap(ctx context.Context, epoch hal.Epoch, session string) error {
	h.mu.Lock()
	if err := h.checkEpochLocked(epoch); err != nil {
		h.mu.Unlock()
		return err
	}
	s := h.sessions[session]
	switch {
	case s == nil:
		h.mu.Unlock()
		return fmt.Errorf("%w: z/OS host %s: session %s is not loaded", hal.ErrRefused, h.name, session)
	case h.down:
		h.mu.Unlock()
		return fmt.Errorf("%w: z/OS host %s is down", hal.ErrUnreachable, h.name)
	case s.swapped:
		h.mu.Unlock()
		return nil
	case s.swapping != nil:
		done := s.swapping
		h.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("%w: z/OS host %s: swap of %s: %w", hal.ErrTimeout, h.name, session, ctx.Err())
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		return s.swapErr
	}
	for _, vp := range s.pairs {
		if !h.reachesLocked(vp.Target.Serial) {
			h.mu.Unlock()
			return fmt.Errorf("%w: z/OS host %s: no channel to %s, which holds the H2 volume %s",
				hal.ErrUnreachable, h.name, vp.Target.Serial, vp.Target)
		}
	}
	s.epoch = epoch
	h.beginSwapLocked(s)
	h.mu.Unlock()
	return h.runSwap(s, true, "hyperswap command")
}

// beginSwapLocked holds the session's I/O and abandons its writes in
// flight to H1: each one's result no longer counts, it is re-driven.
func (h *Host) beginSwapLocked(s *swapSession) {
	s.gen++
	s.swapping = make(chan struct{})
	s.swapErr = nil
	for w := range s.inflight {
		w.cancel()
	}
}

// runSwap freezes, recovers and flips the device map: the body of a swap
// begun by beginSwapLocked. Not under h.mu.
func (h *Host) runSwap(s *swapSession, planned bool, trigger string) error {
	h.mu.Lock()
	pairs, epoch := slices.Clone(s.pairs), s.epoch
	h.mu.Unlock()
	err := h.swapStorage(pairs, epoch)
	if err == nil && h.atSwap != nil {
		h.atSwap(s.name)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s.swapErr = err
	if err == nil {
		s.swapped = true
		for _, vp := range pairs {
			// Every device on the H1 volume moves to H2, the H1 volume's
			// own name too (no entry: it was on itself).
			if _, named := h.dev[vp.Source]; !named {
				h.dev[vp.Source] = vp.Source
			}
			for d, p := range h.dev {
				if p == vp.Source {
					h.dev[d] = vp.Target
				}
			}
			if h.bySource[vp.Source] == s {
				delete(h.bySource, vp.Source)
			}
		}
		ev := hal.SwapEvent{Session: s.name, Planned: planned, Trigger: trigger, Host: h.name, At: h.fab.clock.Now()}
		for ch := range h.subs {
			select {
			case ch <- ev:
			default: // a subscriber that does not keep up loses it: SwapStatus is the backstop
			}
		}
	}
	close(s.swapping)
	s.swapping = nil
	return err
}

// swapStorage freezes the session's LSS pairs on the H1 systems the host
// reaches and recovers every H2 volume: the host's own in-band commands,
// which no storage system fences (a host is not a manager). Not under
// h.mu.
func (h *Host) swapStorage(pairs []hal.VolumePair, epoch hal.Epoch) error {
	f := h.fab
	lssPairs := map[hal.Serial][]hal.LSSPair{}
	recover := map[hal.Serial][]hal.VolumePair{}
	for _, vp := range pairs {
		lp := vp.LSSPair()
		if !slices.Contains(lssPairs[vp.Source.Serial], lp) {
			lssPairs[vp.Source.Serial] = append(lssPairs[vp.Source.Serial], lp)
		}
		recover[vp.Target.Serial] = append(recover[vp.Target.Serial], vp)
	}
	for _, serial := range slices.Sorted(maps.Keys(lssPairs)) {
		if !h.reaches(serial) {
			continue // the failed system or channel: nothing to freeze through
		}
		f.mu.Lock()
		if s := f.systems[serial]; s != nil && !s.crashed {
			s.freezeLocked(lssPairs[serial], hal.ReasonFreeze, false)
			h.recordLocked(s, epoch, OpSwapFreeze, nil)
		}
		f.mu.Unlock()
	}
	for _, serial := range slices.Sorted(maps.Keys(recover)) {
		if !h.reaches(serial) {
			return fmt.Errorf("%w: z/OS host %s: no channel to %s: cannot recover its H2 volumes", hal.ErrUnreachable, h.name, serial)
		}
		f.mu.Lock()
		s := f.systems[serial]
		var err error
		switch {
		case s == nil:
			err = fmt.Errorf("%w: z/OS host %s: unknown storage system %s", hal.ErrRefused, h.name, serial)
		case s.crashed:
			err = fmt.Errorf("%w: z/OS host %s: %s is down: cannot recover its H2 volumes", hal.ErrUnreachable, h.name, serial)
		default:
			err = s.recoverLocked(recover[serial])
			h.recordLocked(s, epoch, OpSwapRecover, err)
		}
		f.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

func (h *Host) recordLocked(s *System, epoch hal.Epoch, op string, err error) {
	rec := CommandRecord{At: h.fab.clock.Now(), Serial: s.serial, Manager: "z/OS host " + h.name,
		Epoch: epoch, SystemEpoch: s.epoch, Op: op, Outcome: OutcomeOK}
	if err != nil {
		rec.Outcome = OutcomeRefused
	}
	h.fab.commands.add(rec)
}

// physLocked is the volume a device is on now.
func (h *Host) physLocked(dev hal.VolumeRef) hal.VolumeRef {
	if p, ok := h.dev[dev]; ok {
		return p
	}
	return dev
}

// Device is the volume the host's I/O to dev goes to now.
func (h *Host) Device(dev hal.VolumeRef) hal.VolumeRef {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.physLocked(dev)
}

// trigger reports whether a failed write is a primary failure that swaps
// a swap-ready session.
func trigger(err error) bool {
	return errors.Is(err, ErrStorageDown) || errors.Is(err, ErrNoChannel)
}

// Write is an application's write to device dev (workload.Host): it goes
// to the volume the device is on now. See Host for the swap it may cause.
func (h *Host) Write(ctx context.Context, dev hal.VolumeRef, block uint32, data []byte) error {
	for {
		h.mu.Lock()
		if h.down {
			h.mu.Unlock()
			return fmt.Errorf("%w: %s", ErrHostDown, h.name)
		}
		phys := h.physLocked(dev)
		s := h.bySource[phys]
		if s != nil && s.swapping != nil {
			done := s.swapping
			h.mu.Unlock()
			select {
			case <-done: // I/O held by the swap: look at the map again
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		reach := h.reachesLocked(phys.Serial)
		wctx, cancel := context.WithCancel(ctx)
		w := &inflightWrite{cancel: cancel}
		var gen uint64
		if s != nil {
			gen = s.gen
			s.inflight[w] = struct{}{}
		}
		h.mu.Unlock()

		var mirrored bool
		var err error
		if reach {
			mirrored, err = h.fab.write(wctx, phys, block, data)
		} else {
			err = fmt.Errorf("%w: z/OS host %s to %s", ErrNoChannel, h.name, phys.Serial)
		}
		cancel()
		if h.afterWrite != nil {
			h.afterWrite(phys)
		}

		h.mu.Lock()
		if s == nil {
			h.mu.Unlock()
			return err
		}
		delete(s.inflight, w)
		if s.gen != gen {
			// A swap began while the write was out: what H1 answered does
			// not count (ELB may have held it and completed it unmirrored).
			h.mu.Unlock()
			continue
		}
		if err == nil {
			if !mirrored {
				for _, vp := range s.pairs {
					if vp.Source == phys {
						s.state[vp], s.why[vp] = hal.Suspended, fmt.Sprintf("pair %s: a write to it was not mirrored", vp)
					}
				}
			}
			h.mu.Unlock()
			return nil
		}
		if ctx.Err() != nil || !trigger(err) || h.bySource[phys] != s {
			h.mu.Unlock()
			return err
		}
		if ready, _ := h.readyLocked(s); !ready {
			h.mu.Unlock()
			return err
		}
		h.beginSwapLocked(s)
		h.mu.Unlock()
		cause := fmt.Sprintf("I/O to %s failed", phys.Serial)
		if errors.Is(err, ErrStorageDown) {
			cause = fmt.Sprintf("storage system %s crashed", phys.Serial)
		}
		if serr := h.runSwap(s, false, cause); serr != nil {
			// The swap could not be done: the application sees its I/O
			// error, and the session stays on H1.
			return fmt.Errorf("%w (HyperSwap failed: %w)", err, serr)
		}
		// Re-driven on H2 at the top of the loop.
	}
}
