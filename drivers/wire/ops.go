package wire

import (
	"fmt"
	"math"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

// Op names the command a Request carries: one per hal.StorageSystem
// command, plus Ping.
type Op uint8

const (
	OpPing             Op = 0x01
	OpEstablishPaths   Op = 0x02
	OpEstablishPairs   Op = 0x03
	OpFreeze           Op = 0x04
	OpThaw             Op = 0x05
	OpSuspend          Op = 0x06
	OpRecover          Op = 0x07
	OpFailback         Op = 0x08
	OpEnableHeartbeat  Op = 0x09
	OpHeartbeat        Op = 0x0A
	OpDisableHeartbeat Op = 0x0B
	OpQueryPairs       Op = 0x0C
	OpQueryPaths       Op = 0x0D
	OpQueryLSSs        Op = 0x0E
	// OpAttached asks an HMC which storage systems it fronts and whether
	// its private link to each is up; a storage endpoint answers with
	// its own serial. Answered by the endpoint, not a storage system.
	OpAttached Op = 0x0F
	// OpQueryOnline is the z/OS extension's discovery: the storage
	// systems a z/OS host has online (zos.go).
	OpQueryOnline Op = 0x10
	// OpRemovePairs and OpRemovePaths end pairs and remove paths
	// (terminate). Added to version 2: a server that predates them
	// answers unsupported, which is what a manager needs to hear.
	OpRemovePairs Op = 0x11
	OpRemovePaths Op = 0x12
	// The HyperSwap ops (version 3, swap.go): hal.SwapHost on a z/OS
	// host's discovery connection.
	OpLoadSwap   Op = 0x13
	OpUnloadSwap Op = 0x14
	OpSwap       Op = 0x15
	OpSwapStatus Op = 0x16
)

var opNames = map[Op]string{
	OpPing:             "ping",
	OpEstablishPaths:   "establish-paths",
	OpEstablishPairs:   "establish-pairs",
	OpFreeze:           "freeze",
	OpThaw:             "thaw",
	OpSuspend:          "suspend",
	OpRecover:          "recover",
	OpFailback:         "failback",
	OpEnableHeartbeat:  "enable-heartbeat",
	OpHeartbeat:        "heartbeat",
	OpDisableHeartbeat: "disable-heartbeat",
	OpQueryPairs:       "query-pairs",
	OpQueryPaths:       "query-paths",
	OpQueryLSSs:        "query-lsss",
	OpAttached:         "attached",
	OpQueryOnline:      "query-online",
	OpRemovePairs:      "remove-pairs",
	OpRemovePaths:      "remove-paths",
	OpLoadSwap:         "load-swap",
	OpUnloadSwap:       "unload-swap",
	OpSwap:             "swap",
	OpSwapStatus:       "swap-status",
}

func (o Op) String() string {
	if s, ok := opNames[o]; ok {
		return s
	}
	return fmt.Sprintf("op(0x%02x)", uint8(o))
}

// Known reports whether o is an op of this protocol version.
func (o Op) Known() bool {
	_, ok := opNames[o]
	return ok
}

// heartbeatOp reports whether o needs a connection with the heartbeat
// capability.
func (o Op) heartbeatOp() bool {
	return o == OpEnableHeartbeat || o == OpHeartbeat || o == OpDisableHeartbeat
}

// Args are the decoded arguments of a Request; which field an op uses is
// noted beside it, the others stay zero.
type Args struct {
	Paths       []hal.PathSpec    // OpEstablishPaths
	Pairs       []hal.PairSpec    // OpEstablishPairs
	LSSPairs    []hal.LSSPair     // OpFreeze, OpRemovePaths
	LSSs        []hal.LSS         // OpThaw
	VolumePairs []hal.VolumePair  // OpSuspend, OpRecover, OpFailback, OpRemovePairs
	Heartbeat   hal.HeartbeatSpec // OpEnableHeartbeat
	Session     string            // OpHeartbeat, OpDisableHeartbeat, the swap ops
	// VolumePairs also carries OpLoadSwap's pairs.
}

// EncodeArgs returns the arguments of op as carried in Request.Args.
func EncodeArgs(op Op, a Args) ([]byte, error) {
	e := encoder{what: op.String(), part: " args", b: make([]byte, 0, argsSize(a))}
	switch op {
	case OpPing, OpQueryPairs, OpQueryPaths, OpQueryLSSs, OpAttached, OpQueryOnline, OpSwapStatus:
		// no arguments
	case OpLoadSwap:
		e.name("session", a.Session)
		if len(a.VolumePairs) > MaxSwapPairs {
			e.fail("%d pairs, limit %d", len(a.VolumePairs), MaxSwapPairs)
		}
		putList(&e, "volume pairs", a.VolumePairs, e.volumePair)
	case OpUnloadSwap, OpSwap:
		e.name("session", a.Session)
	case OpEstablishPaths:
		putList(&e, "paths", a.Paths, func(p hal.PathSpec) {
			e.lssPair(p.LSSPair)
			e.boolean(p.ConsistencyGroup)
		})
	case OpEstablishPairs:
		putList(&e, "pairs", a.Pairs, func(p hal.PairSpec) {
			e.volumePair(p.VolumePair)
			e.u8(uint8(p.Mode))
		})
	case OpFreeze, OpRemovePaths:
		putList(&e, "lss pairs", a.LSSPairs, e.lssPair)
	case OpThaw:
		putList(&e, "lsss", a.LSSs, func(l hal.LSS) { e.u8(uint8(l)) })
	case OpSuspend, OpRecover, OpFailback, OpRemovePairs:
		putList(&e, "volume pairs", a.VolumePairs, e.volumePair)
	case OpEnableHeartbeat:
		e.name("session", a.Heartbeat.Session)
		e.i64(int64(a.Heartbeat.Timeout))
		putList(&e, "lss pairs", a.Heartbeat.Pairs, e.lssPair)
	case OpHeartbeat, OpDisableHeartbeat:
		e.name("session", a.Session)
	default:
		return nil, fmt.Errorf("%w: %s", ErrUnknownOp, op)
	}
	return e.done()
}

// argsSize is about what EncodeArgs writes for a: the buffer is made
// once, not grown pair by pair (a freeze names 16 LSS pairs, and the
// manager encodes one per storage system per freeze).
func argsSize(a Args) int {
	const perPair = 2 * (1 + 24 + 1) // two LSS or volume refs: a serial of up to 24 bytes, its length, the rest
	n := len(a.LSSPairs) + len(a.Paths) + len(a.Pairs) + len(a.VolumePairs) + len(a.Heartbeat.Pairs)
	return 16 + len(a.Session) + len(a.Heartbeat.Session) + len(a.LSSs) + n*(perPair+2)
}

// DecodeArgs decodes the arguments of op. An unknown op gives an error
// wrapping ErrUnknownOp, anything else undecodable one wrapping
// ErrMalformed.
func DecodeArgs(op Op, b []byte) (Args, error) {
	d := decoder{what: op.String(), part: " args", b: b}
	var a Args
	switch op {
	case OpPing, OpQueryPairs, OpQueryPaths, OpQueryLSSs, OpAttached, OpQueryOnline, OpSwapStatus:
		// no arguments
	case OpLoadSwap:
		a.Session = d.name()
		a.VolumePairs = list(&d, "volume pairs", minVolumePair, d.volumePair)
		if d.err == nil && len(a.VolumePairs) > MaxSwapPairs {
			d.fail("%d pairs, limit %d", len(a.VolumePairs), MaxSwapPairs)
		}
	case OpUnloadSwap, OpSwap:
		a.Session = d.name()
	case OpEstablishPaths:
		a.Paths = list(&d, "paths", minPathSpec, func() hal.PathSpec {
			return hal.PathSpec{LSSPair: d.lssPair(), ConsistencyGroup: d.boolean("consistency group")}
		})
	case OpEstablishPairs:
		a.Pairs = list(&d, "pairs", minPairSpec, func() hal.PairSpec {
			return hal.PairSpec{VolumePair: d.volumePair(), Mode: hal.CopyMode(d.u8())}
		})
	case OpFreeze, OpRemovePaths:
		a.LSSPairs = list(&d, "lss pairs", minLSSPair, d.lssPair)
	case OpThaw:
		a.LSSs = list(&d, "lsss", 1, func() hal.LSS { return hal.LSS(d.u8()) })
	case OpSuspend, OpRecover, OpFailback, OpRemovePairs:
		a.VolumePairs = list(&d, "volume pairs", minVolumePair, d.volumePair)
	case OpEnableHeartbeat:
		a.Heartbeat.Session = d.name()
		a.Heartbeat.Timeout = time.Duration(d.i64())
		a.Heartbeat.Pairs = list(&d, "lss pairs", minLSSPair, d.lssPair)
	case OpHeartbeat, OpDisableHeartbeat:
		a.Session = d.name()
	default:
		return Args{}, fmt.Errorf("%w: %s", ErrUnknownOp, op)
	}
	if err := d.finish(); err != nil {
		return Args{}, err
	}
	return a, nil
}

// Result is the decoded result of a successful Response; which field an
// op fills is noted beside it. The other ops have an empty result.
type Result struct {
	Pairs []hal.PairStatus // OpQueryPairs
	Paths []hal.PathStatus // OpQueryPaths
	LSSs  []hal.LSSStatus  // OpQueryLSSs
	// Attached answers OpAttached.
	Attached []AttachedSystem
	// Online: OpQueryOnline (z/OS extension).
	Online []OnlineSystem
	// Swaps: OpSwapStatus (HyperSwap, swap.go).
	Swaps []hal.SwapState
}

// AttachedSystem is one storage system an endpoint fronts, as OpAttached
// reports it.
type AttachedSystem struct {
	Serial hal.Serial
	// LinkUp says whether the endpoint can reach the system now (an HMC:
	// its private link is up and the system answers).
	LinkUp bool
}

// minAttached is the smallest AttachedSystem: empty serial, link bool.
const minAttached = 1 + 1

// EncodeResult returns the result of op as carried in Response.Result.
func EncodeResult(op Op, r Result) ([]byte, error) {
	e := encoder{what: op.String(), part: " result"}
	switch op {
	case OpQueryPairs:
		putList(&e, "pairs", r.Pairs, func(p hal.PairStatus) {
			e.volumePair(p.VolumePair)
			e.u8(uint8(p.State))
			e.u8(uint8(p.Reason))
			if p.OutOfSync < 0 {
				e.fail("pair %v has %d out-of-sync blocks", p.VolumePair, p.OutOfSync)
			}
			e.u64(uint64(p.OutOfSync))
		})
	case OpQueryPaths:
		putList(&e, "paths", r.Paths, func(p hal.PathStatus) {
			e.lssPair(p.LSSPair)
			e.boolean(p.ConsistencyGroup)
			e.u8(uint8(p.State))
		})
	case OpQueryLSSs:
		putList(&e, "lsss", r.LSSs, func(l hal.LSSStatus) {
			e.u8(uint8(l.LSS))
			e.u8(uint8(l.Type))
			e.i64(int64(l.CGTimeout))
			e.time("elb until", l.ELBUntil)
		})
	case OpAttached:
		putList(&e, "attached", r.Attached, func(a AttachedSystem) {
			e.name("serial", string(a.Serial))
			e.boolean(a.LinkUp)
		})
	case OpQueryOnline:
		putList(&e, "online", r.Online, func(o OnlineSystem) {
			e.name("serial", string(o.Serial))
			e.boolean(o.ChannelsUp)
		})
	case OpSwapStatus:
		putSwapStates(&e, r.Swaps)
	default:
		if !op.Known() {
			return nil, fmt.Errorf("%w: %s", ErrUnknownOp, op)
		}
	}
	return e.done()
}

// DecodeResult decodes the result of op.
func DecodeResult(op Op, b []byte) (Result, error) {
	d := decoder{what: op.String(), part: " result", b: b}
	var r Result
	switch op {
	case OpQueryPairs:
		r.Pairs = list(&d, "pairs", minPairStatus, func() hal.PairStatus {
			p := hal.PairStatus{VolumePair: d.volumePair(), State: hal.PairState(d.u8()), Reason: hal.SuspendReason(d.u8())}
			oos := d.u64()
			if oos > math.MaxInt {
				d.fail("out-of-sync count %d overflows", oos)
			}
			p.OutOfSync = int(oos)
			return p
		})
	case OpQueryPaths:
		r.Paths = list(&d, "paths", minPathStatus, func() hal.PathStatus {
			return hal.PathStatus{LSSPair: d.lssPair(), ConsistencyGroup: d.boolean("consistency group"), State: hal.PathState(d.u8())}
		})
	case OpQueryLSSs:
		r.LSSs = list(&d, "lsss", minLSSStatus, func() hal.LSSStatus {
			return hal.LSSStatus{LSS: hal.LSS(d.u8()), Type: hal.LSSType(d.u8()), CGTimeout: time.Duration(d.i64()), ELBUntil: d.time()}
		})
	case OpAttached:
		r.Attached = list(&d, "attached", minAttached, func() AttachedSystem {
			return AttachedSystem{Serial: hal.Serial(d.name()), LinkUp: d.boolean("link up")}
		})
	case OpQueryOnline:
		r.Online = list(&d, "online", 2, func() OnlineSystem {
			return OnlineSystem{Serial: hal.Serial(d.name()), ChannelsUp: d.boolean("channels up")}
		})
	case OpSwapStatus:
		r.Swaps = getSwapStates(&d)
	default:
		if !op.Known() {
			return Result{}, fmt.Errorf("%w: %s", ErrUnknownOp, op)
		}
	}
	if err := d.finish(); err != nil {
		return Result{}, err
	}
	return r, nil
}
