package emu

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// Errors of host I/O. Commands answer the hal errors.
var (
	ErrNoSuchVolume   = errors.New("emu: no such volume")
	ErrWriteProtected = errors.New("emu: volume is a Metro Mirror target and not writable")
	ErrStorageDown    = errors.New("emu: storage system is down")
	ErrConfig         = errors.New("emu: bad configuration")
)

// DefaultCopyPerBlock is how long the initial copy or a resync takes per
// block copied.
const DefaultCopyPerBlock = 100 * time.Microsecond

// Options configure a Fabric.
type Options struct {
	Clock clock.Clock // nil: real time
	// CopyPerBlock is the copy time per block of an establish or resync;
	// zero means DefaultCopyPerBlock.
	CopyPerBlock time.Duration
	// CommandLogSize bounds the record of commands (see Commands); zero
	// means DefaultCommandLogSize.
	CommandLogSize int
}

// LSSConfig describes one logical subsystem of a system.
type LSSConfig struct {
	LSS       hal.LSS
	Type      hal.LSSType
	CGTimeout time.Duration // zero: the type's default
	Volumes   int           // volumes 00..Volumes-1 of this LSS
}

// SystemConfig describes one emulated storage system.
type SystemConfig struct {
	Serial hal.Serial
	LSSs   []LSSConfig
}

// Fabric is a set of emulated storage systems and the links between them.
type Fabric struct {
	clock        clock.Clock
	copyPerBlock time.Duration

	// mu guards everything below and all system state. Held exclusively,
	// it excludes everything else. The commands that touch only their own
	// system and the targets of the LSS pairs they name (freeze, thaw,
	// heartbeat, queries: the hot path of a freeze fan-out) hold it
	// shared, with the mutex of each system they touch (System.mu, taken
	// in serial order): so freezes of different systems run at once,
	// while each is still atomic with respect to host writes, mirrors and
	// faults, which hold it exclusively. State of a system is written
	// only under mu held exclusively, or shared with that system's mutex;
	// what the fabric holds itself (systems, cut links) only exclusively.
	mu      sync.RWMutex
	systems map[hal.Serial]*System
	// Injected path faults: an LSS pair is cut when it is listed here or
	// when either of its systems has all its paths cut or is crashed.
	cutPairs   map[hal.LSSPair]bool
	cutSystems map[hal.Serial]bool
	commands   *commandLog // its own mutex
}

// NewFabric returns an empty fabric.
func NewFabric(opt Options) *Fabric {
	cp := opt.CopyPerBlock
	if cp <= 0 {
		cp = DefaultCopyPerBlock
	}
	logSize := opt.CommandLogSize
	if logSize <= 0 {
		logSize = DefaultCommandLogSize
	}
	return &Fabric{
		clock:        clock.OrReal(opt.Clock),
		copyPerBlock: cp,
		systems:      map[hal.Serial]*System{},
		cutPairs:     map[hal.LSSPair]bool{},
		cutSystems:   map[hal.Serial]bool{},
		// Made at once, up to the default size: no pointer, so never
		// scanned, and the pages untouched until used; grown by append, the
		// ring was the largest garbage of a long run before it filled.
		commands: &commandLog{size: logSize, recs: make([]storedCommand, 0, min(logSize, DefaultCommandLogSize))},
	}
}

// Clock is the fabric's clock.
func (f *Fabric) Clock() clock.Clock { return f.clock }

// AddSystem creates a storage system.
func (f *Fabric) AddSystem(cfg SystemConfig) (*System, error) {
	if cfg.Serial == "" {
		return nil, fmt.Errorf("%w: system without serial", ErrConfig)
	}
	s := &System{
		fabric:     f,
		serial:     cfg.Serial,
		lss:        map[hal.LSS]*lss{},
		volumes:    map[hal.Volume]*volume{},
		paths:      map[hal.LSSPair]*path{},
		heartbeats: map[string]*heartbeat{},
		managers:   map[string]*manager{},
	}
	for _, lc := range cfg.LSSs {
		if !lc.LSS.Valid() {
			return nil, fmt.Errorf("%w: %s: LSS %s out of range", ErrConfig, cfg.Serial, lc.LSS)
		}
		if _, dup := s.lss[lc.LSS]; dup {
			return nil, fmt.Errorf("%w: %s: LSS %s defined twice", ErrConfig, cfg.Serial, lc.LSS)
		}
		if lc.Volumes < 0 || lc.Volumes > 256 {
			return nil, fmt.Errorf("%w: %s: LSS %s: %d volumes (0 to 256)", ErrConfig, cfg.Serial, lc.LSS, lc.Volumes)
		}
		cg := lc.CGTimeout
		if cg <= 0 {
			cg = hal.DefaultCGTimeout(lc.Type)
		}
		l := &lss{id: lc.LSS, typ: lc.Type, cgTimeout: cg}
		s.lss[lc.LSS] = l
		for n := range lc.Volumes {
			id := hal.NewVolume(lc.LSS, uint8(n))
			v := &volume{id: id, blocks: map[uint32][]byte{}}
			s.volumes[id] = v
			l.volumes = append(l.volumes, v)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, dup := f.systems[cfg.Serial]; dup {
		return nil, fmt.Errorf("%w: system %s defined twice", ErrConfig, cfg.Serial)
	}
	f.systems[cfg.Serial] = s
	return s, nil
}

// System returns the system with the serial, or nil.
func (f *Fabric) System(serial hal.Serial) *System {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.systems[serial]
}

// Systems lists the fabric's systems, sorted by serial.
func (f *Fabric) Systems() []*System {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := slices.Collect(maps.Values(f.systems))
	slices.SortFunc(out, func(a, b *System) int { return compareSerial(a.serial, b.serial) })
	return out
}

func compareSerial(a, b hal.Serial) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Write is a host write: it blocks while the volume's LSS is in ELB, and
// completes once the block is on the source and, for a mirroring pair, on
// the target.
func (f *Fabric) Write(ctx context.Context, ref hal.VolumeRef, block uint32, data []byte) error {
	_, err := f.write(ctx, ref, block, data)
	return err
}

// write is Write that also says whether the write was mirrored: the
// ending status a host sees, which tells a z/OS host that a pair it
// counts on for HyperSwap stopped mirroring (swap.go). A write whose ctx
// ends while ELB holds it fails with the ctx's error: it never reports
// success for a write it did not complete.
func (f *Fabric) write(ctx context.Context, ref hal.VolumeRef, block uint32, data []byte) (mirrored bool, err error) {
	for {
		f.mu.Lock()
		s, v, err := f.volumeLocked(ref)
		if err == nil && s.crashed {
			err = fmt.Errorf("%w: %s", ErrStorageDown, s.serial)
		}
		if err == nil && v.target != nil {
			err = fmt.Errorf("%w: %s", ErrWriteProtected, ref)
		}
		if err != nil {
			f.mu.Unlock()
			return false, err
		}
		if l := s.lss[ref.Volume.LSS()]; l.elb {
			if l.elbRelease == nil {
				l.elbRelease = make(chan struct{})
			}
			release := l.elbRelease
			f.mu.Unlock()
			select {
			case <-release:
				continue // ELB ended: look at the pair again
			case <-ctx.Done():
				return false, ctx.Err()
			}
		}
		if p := v.pair; p != nil && p.state.Mirroring() {
			if reason, ok := f.mirrorLocked(s, v, block, data); !ok {
				// The target could not take it: the pair suspends now and
				// the write is looked at again (ELB may hold it).
				s.suspendLocked([]*volume{v}, reason)
				f.mu.Unlock()
				continue
			}
			delete(p.outOfSync, block)
			s.stats.MirroredWrites++
			mirrored = true
		} else if p != nil {
			p.outOfSync[block] = struct{}{}
		}
		v.blocks[block] = slices.Clone(data)
		s.stats.HostWrites++
		f.mu.Unlock()
		return mirrored, nil
	}
}

// Read returns a copy of a block as stored on the volume (nil if never
// written). It reads the disks directly, crashed system or not: it is how
// the oracle inspects the secondary image after a scenario.
func (f *Fabric) Read(ref hal.VolumeRef, block uint32) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, v, err := f.volumeLocked(ref)
	if err != nil {
		return nil, err
	}
	return slices.Clone(v.blocks[block]), nil
}

func (f *Fabric) volumeLocked(ref hal.VolumeRef) (*System, *volume, error) {
	s := f.systems[ref.Serial]
	if s == nil {
		return nil, nil, fmt.Errorf("%w: %s: unknown storage system", ErrNoSuchVolume, ref)
	}
	v := s.volumes[ref.Volume]
	if v == nil {
		return nil, nil, fmt.Errorf("%w: %s", ErrNoSuchVolume, ref)
	}
	return s, v, nil
}

// mirrorLocked sends one block over the pair's path. It reports false,
// with the suspend reason, when the path or the target cannot take it.
func (f *Fabric) mirrorLocked(s *System, v *volume, block uint32, data []byte) (hal.SuspendReason, bool) {
	p := v.pair
	lp := p.lssPair(s.serial, v.id)
	if path := s.paths[lp]; path == nil || path.state != hal.PathUp || !f.linkUpLocked(lp) {
		return hal.ReasonPath, false
	}
	t := f.systems[p.target.Serial].volumes[p.target.Volume]
	if t.target == nil || *t.target != (hal.VolumeRef{Serial: s.serial, Volume: v.id}) {
		return hal.ReasonTarget, false
	}
	t.blocks[block] = slices.Clone(data)
	return hal.ReasonNone, true
}

// linkUpLocked reports whether the link under an LSS pair can carry data:
// no injected cut, both systems up.
func (f *Fabric) linkUpLocked(lp hal.LSSPair) bool {
	// Read-only, and what it reads is written only under f.mu held
	// exclusively: safe for a command holding it shared.
	if f.cutPairs[lp] || f.cutSystems[lp.Source.Serial] || f.cutSystems[lp.Target.Serial] {
		return false
	}
	src, tgt := f.systems[lp.Source.Serial], f.systems[lp.Target.Serial]
	return src != nil && tgt != nil && !src.crashed && !tgt.crashed
}

// SetPath cuts (up=false) or restores the link of one LSS pair. Cutting it
// fails its path at once; restoring it brings the path back up, but the
// suspended pairs stay suspended until a manager resyncs them.
func (f *Fabric) SetPath(lp hal.LSSPair, up bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if up {
		delete(f.cutPairs, lp)
	} else {
		f.cutPairs[lp] = true
	}
	f.reconcilePathsLocked()
}

// SetSystemPaths cuts or restores every link from or to a system.
func (f *Fabric) SetSystemPaths(serial hal.Serial, up bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if up {
		delete(f.cutSystems, serial)
	} else {
		f.cutSystems[serial] = true
	}
	f.reconcilePathsLocked()
}

// reconcilePathsLocked makes every established path's state match its
// link, suspending the pairs of paths that just failed.
func (f *Fabric) reconcilePathsLocked() {
	for _, s := range f.systems {
		if s.crashed {
			continue
		}
		// Only the paths that just failed are sorted (their suspensions
		// raise events in that order): sorting every path of every
		// system at each link change was a tenth of what a loopback
		// freeze bench allocated, all of it garbage.
		var failed []hal.LSSPair
		for lp, path := range s.paths {
			up := f.linkUpLocked(lp)
			switch {
			case up && path.state == hal.PathFailed:
				path.state = hal.PathUp
			case !up && path.state == hal.PathUp:
				failed = append(failed, lp)
			}
		}
		sortLSSPairs(failed)
		for _, lp := range failed {
			s.paths[lp].state = hal.PathFailed
			s.suspendLocked(s.mirroringOn(lp), hal.ReasonPath)
		}
	}
}

func sortedPaths(m map[hal.LSSPair]*path) []hal.LSSPair {
	keys := slices.Collect(maps.Keys(m))
	sortLSSPairs(keys)
	return keys
}

func sortLSSPairs(keys []hal.LSSPair) {
	slices.SortFunc(keys, func(a, b hal.LSSPair) int {
		if c := compareLSSRef(a.Source, b.Source); c != 0 {
			return c
		}
		return compareLSSRef(a.Target, b.Target)
	})
}

func compareLSSRef(a, b hal.LSSRef) int {
	if c := compareSerial(a.Serial, b.Serial); c != 0 {
		return c
	}
	return int(a.LSS) - int(b.LSS)
}

// Snapshot is a point-in-time copy of some volumes, taken atomically with
// respect to every host write, mirror and fault: what the oracle reads
// while a workload still runs.
type Snapshot struct {
	blocks map[hal.VolumeRef]map[uint32][]byte
}

// Snapshot copies the given volumes at one instant.
func (f *Fabric) Snapshot(vols []hal.VolumeRef) (*Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	snap := &Snapshot{blocks: make(map[hal.VolumeRef]map[uint32][]byte, len(vols))}
	for _, ref := range vols {
		_, v, err := f.volumeLocked(ref)
		if err != nil {
			return nil, err
		}
		m := make(map[uint32][]byte, len(v.blocks))
		for b, data := range v.blocks {
			m[b] = slices.Clone(data)
		}
		snap.blocks[ref] = m
	}
	return snap, nil
}

// Read returns a block of the snapshot (nil if never written).
func (s *Snapshot) Read(ref hal.VolumeRef, block uint32) ([]byte, error) {
	m, ok := s.blocks[ref]
	if !ok {
		return nil, fmt.Errorf("%w: %s is not in the snapshot", ErrNoSuchVolume, ref)
	}
	return m[block], nil
}

// lockShared takes f.mu shared and the mutexes of s and of the systems
// named in others, in serial order (so that two commands locking
// overlapping sets never deadlock), and returns what releases them.
func (f *Fabric) lockShared(s *System, others []hal.Serial) (unlock func()) {
	f.mu.RLock()
	locked := []*System{s}
	for _, serial := range others {
		if o := f.systems[serial]; o != nil && !slices.Contains(locked, o) {
			locked = append(locked, o)
		}
	}
	slices.SortFunc(locked, func(a, b *System) int { return compareSerial(a.serial, b.serial) })
	for _, o := range locked {
		o.mu.Lock()
	}
	return func() {
		for i := len(locked) - 1; i >= 0; i-- {
			locked[i].mu.Unlock()
		}
		f.mu.RUnlock()
	}
}
