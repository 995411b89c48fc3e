package wire

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

// Sample values shared by the codec, fuzz and connection tests.
var (
	serialP = hal.Serial("LAB.2107-75P0001")
	serialS = hal.Serial("LAB.2107-75S0001")
	sampleT = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

	lssPairA = hal.LSSPair{Source: hal.LSSRef{Serial: serialP, LSS: 0x10}, Target: hal.LSSRef{Serial: serialS, LSS: 0x20}}
	lssPairB = hal.LSSPair{Source: hal.LSSRef{Serial: serialP, LSS: 0xFE}, Target: hal.LSSRef{Serial: "", LSS: 0x00}}
	volPairA = hal.VolumePair{Source: hal.VolumeRef{Serial: serialP, Volume: 0x1001}, Target: hal.VolumeRef{Serial: serialS, Volume: 0x2001}}
	volPairB = hal.VolumePair{Source: hal.VolumeRef{Serial: serialP, Volume: 0xFEFF}, Target: hal.VolumeRef{Serial: serialS, Volume: 0x0000}}

	samplePaths = []hal.PathSpec{{LSSPair: lssPairA, ConsistencyGroup: true}, {LSSPair: lssPairB}}
	samplePairs = []hal.PairSpec{{VolumePair: volPairA, Mode: hal.FullCopy}, {VolumePair: volPairB, Mode: hal.Resync}}
	sampleHB    = hal.HeartbeatSpec{Session: "payroll", Pairs: []hal.LSSPair{lssPairA, lssPairB}, Timeout: 55 * time.Second}

	samplePairStatus = []hal.PairStatus{
		{VolumePair: volPairA, State: hal.FullDuplex},
		{VolumePair: volPairB, State: hal.Suspended, Reason: hal.ReasonFreeze, OutOfSync: math.MaxInt64},
	}
	samplePathStatus = []hal.PathStatus{
		{LSSPair: lssPairA, ConsistencyGroup: true, State: hal.PathUp},
		{LSSPair: lssPairB, State: hal.PathFailed},
	}
	sampleLSSStatus = []hal.LSSStatus{
		{LSS: 0x10, Type: hal.CKD, CGTimeout: 120 * time.Second, ELBUntil: sampleT},
		{LSS: 0x11, Type: hal.FB, CGTimeout: 60 * time.Second},
	}

	sampleEvents = []hal.Event{
		{Kind: hal.EventSuspend, Serial: serialP, Seq: 1, At: sampleT, LSSPair: lssPairA,
			Reason: hal.ReasonPath, Volumes: hal.VolumeSet{1, 0, 0, 1 << 63}},
		{Kind: hal.EventHeartbeatExpiry, Serial: serialP, Seq: 2, At: sampleT.Add(time.Second), Session: "payroll"},
		{Kind: hal.EventFenced, Serial: serialP, Seq: math.MaxUint64, Epoch: 42},
		{Kind: 200, Reason: 200}, // unknown enum values are carried as is
	}
)

// sampleArgs has arguments for every op (each op appears at least once;
// TestEveryOpHasCases checks).
var sampleArgs = []struct {
	name string
	op   Op
	args Args
}{
	{"ping", OpPing, Args{}},
	{"establish-paths", OpEstablishPaths, Args{Paths: samplePaths}},
	{"establish-paths/empty", OpEstablishPaths, Args{}},
	{"establish-pairs", OpEstablishPairs, Args{Pairs: samplePairs}},
	{"freeze", OpFreeze, Args{LSSPairs: []hal.LSSPair{lssPairA, lssPairB}}},
	{"thaw", OpThaw, Args{LSSs: []hal.LSS{0x00, 0x10, 0xFE, 0xFF}}},
	{"suspend", OpSuspend, Args{VolumePairs: []hal.VolumePair{volPairA}}},
	{"recover", OpRecover, Args{VolumePairs: []hal.VolumePair{volPairA, volPairB}}},
	{"failback", OpFailback, Args{VolumePairs: []hal.VolumePair{volPairB}}},
	{"enable-heartbeat", OpEnableHeartbeat, Args{Heartbeat: sampleHB}},
	{"enable-heartbeat/no-pairs", OpEnableHeartbeat, Args{Heartbeat: hal.HeartbeatSpec{Session: "s", Timeout: -1}}},
	{"heartbeat", OpHeartbeat, Args{Session: "payroll"}},
	{"heartbeat/long-session", OpHeartbeat, Args{Session: strings.Repeat("s", MaxName)}},
	{"disable-heartbeat", OpDisableHeartbeat, Args{Session: "payroll"}},
	{"query-pairs", OpQueryPairs, Args{}},
	{"query-paths", OpQueryPaths, Args{}},
	{"query-lsss", OpQueryLSSs, Args{}},
	{"attached", OpAttached, Args{}},
	{"query-online", OpQueryOnline, Args{}},
	{"remove-pairs", OpRemovePairs, Args{VolumePairs: []hal.VolumePair{volPairA, volPairB}}},
	{"remove-pairs/empty", OpRemovePairs, Args{}},
	{"remove-paths", OpRemovePaths, Args{LSSPairs: []hal.LSSPair{lssPairA}}},
	{"load-swap", OpLoadSwap, Args{Session: "hs", VolumePairs: []hal.VolumePair{volPairA, volPairB}}},
	{"unload-swap", OpUnloadSwap, Args{Session: "hs"}},
	{"swap", OpSwap, Args{Session: "hs"}},
	{"swap-status", OpSwapStatus, Args{}},
}

var sampleResults = []struct {
	name string
	op   Op
	res  Result
}{
	{"ping", OpPing, Result{}},
	{"establish-paths", OpEstablishPaths, Result{}},
	{"establish-pairs", OpEstablishPairs, Result{}},
	{"freeze", OpFreeze, Result{}},
	{"thaw", OpThaw, Result{}},
	{"suspend", OpSuspend, Result{}},
	{"recover", OpRecover, Result{}},
	{"failback", OpFailback, Result{}},
	{"enable-heartbeat", OpEnableHeartbeat, Result{}},
	{"heartbeat", OpHeartbeat, Result{}},
	{"disable-heartbeat", OpDisableHeartbeat, Result{}},
	{"query-pairs", OpQueryPairs, Result{Pairs: samplePairStatus}},
	{"query-pairs/empty", OpQueryPairs, Result{}},
	{"query-paths", OpQueryPaths, Result{Paths: samplePathStatus}},
	{"query-lsss", OpQueryLSSs, Result{LSSs: sampleLSSStatus}},
	{"attached", OpAttached, Result{Attached: []AttachedSystem{{Serial: serialP, LinkUp: true}, {Serial: "LAB.2107-75S0001"}}}},
	{"attached/none", OpAttached, Result{}},
	{"query-online", OpQueryOnline, Result{Online: []OnlineSystem{{Serial: serialP, ChannelsUp: true}, {Serial: serialS}}}},
	{"remove-pairs", OpRemovePairs, Result{}},
	{"remove-paths", OpRemovePaths, Result{}},
	{"load-swap", OpLoadSwap, Result{}},
	{"unload-swap", OpUnloadSwap, Result{}},
	{"swap", OpSwap, Result{}},
	{"swap-status", OpSwapStatus, Result{Swaps: []hal.SwapState{
		{Session: "a", Pairs: []hal.VolumePair{volPairA}, Ready: true},
		{Session: "b", Pairs: []hal.VolumePair{volPairA, volPairB}, Swapped: true, Why: "swapped: the host writes to the H2 volumes"}}}},
	{"swap-status/none", OpSwapStatus, Result{}},
}

var (
	sampleHello = Hello{Version: Version, Manager: "lockstepd-a", Serial: serialP, User: "admin", Password: "secret"}
	sampleOK    = HelloOK{Version: Version, Serial: serialP, Capabilities: hal.Capabilities{Heartbeat: true}, Epoch: 7}
)

// codecCase round-trips one value through its encoder and decoder.
type codecCase struct {
	name string
	want any
	enc  func() ([]byte, error)
	dec  func([]byte) (any, error)
}

func rt[T any](name string, v T, enc func(T) ([]byte, error), dec func([]byte) (T, error)) codecCase {
	return codecCase{
		name: name,
		want: v,
		enc:  func() ([]byte, error) { return enc(v) },
		dec:  func(b []byte) (any, error) { return dec(b) },
	}
}

func codecCases() []codecCase {
	cs := []codecCase{
		rt("hello", sampleHello, EncodeHello, DecodeHello),
		rt("hello/empty-fields", Hello{Version: Version}, EncodeHello, DecodeHello),
		rt("hello/max-names", Hello{Version: Version, Manager: strings.Repeat("m", MaxName), Serial: hal.Serial(strings.Repeat("s", MaxName)),
			Sysplex: strings.Repeat("x", MaxName), User: strings.Repeat("u", MaxName), Password: strings.Repeat("p", MaxName)}, EncodeHello, DecodeHello),
		rt("hello/sysplex", Hello{Version: Version, Manager: "m", Serial: serialP, Sysplex: "PLEX1", User: "u", Password: "p"}, EncodeHello, DecodeHello),
		rt("hello-ok", sampleOK, EncodeHelloOK, DecodeHelloOK),
		rt("hello-ok/no-heartbeat", HelloOK{Version: Version, Serial: serialP}, EncodeHelloOK, DecodeHelloOK),
		rt("hello/to-hmc", Hello{Version: Version, ToHMC: true, Manager: "m", HMC: "HMC1", User: "u", Password: "p"}, EncodeHello, DecodeHello),
		rt("hello/to-any-hmc", Hello{Version: Version, ToHMC: true}, EncodeHello, DecodeHello),
		rt("hello-ok/hmc", HelloOK{Version: Version, Capabilities: hal.Capabilities{Heartbeat: true}, HMC: "HMC1",
			Attached: []hal.Serial{serialP, "LAB.2107-75S0001"}}, EncodeHelloOK, DecodeHelloOK),
		rt("hello-ok/hmc-fronting-none", HelloOK{Version: Version, HMC: "HMC1"}, EncodeHelloOK, DecodeHelloOK),
		rt("request/target", Request{ID: 2, Epoch: 3, Timeout: time.Second, Op: OpFreeze, Target: serialP, Args: []byte{0, 0, 0, 0}}, EncodeRequest, DecodeRequest),
		rt("hello-reject", HelloReject{Code: RejectAuth, Text: "wrong user or password"}, EncodeHelloReject, DecodeHelloReject),
		rt("hello-reject/unknown-code", HelloReject{Code: 99, Text: strings.Repeat("x", MaxText)}, EncodeHelloReject, DecodeHelloReject),
		rt("request", Request{ID: 1, Epoch: 3, Timeout: 250 * time.Millisecond, Op: OpFreeze, Args: []byte{0, 0, 0, 0}}, EncodeRequest, DecodeRequest),
		rt("request/no-args", Request{ID: math.MaxUint64, Epoch: math.MaxUint64, Timeout: math.MaxInt64, Op: OpPing}, EncodeRequest, DecodeRequest),
		rt("request/unknown-op", Request{ID: 9, Timeout: 1, Op: 0x7F, Args: []byte{1}}, EncodeRequest, DecodeRequest),
		rt("response/ok", Response{ID: 1, Status: StatusOK, Result: []byte{0, 0, 0, 0}}, EncodeResponse, DecodeResponse),
		rt("response/ok-empty", Response{ID: 2}, EncodeResponse, DecodeResponse),
		rt("response/fenced", Response{ID: 3, Status: StatusFenced, Text: "epoch 3 < 5"}, EncodeResponse, DecodeResponse),
		rt("response/unreachable", Response{ID: 4, Status: StatusUnreachable, Text: "lost"}, EncodeResponse, DecodeResponse),
	}
	for i, ev := range sampleEvents {
		cs = append(cs, rt(fmt.Sprintf("event/%d-%s", i, ev.Kind), ev, EncodeEvent, DecodeEvent))
	}
	for _, a := range sampleArgs {
		op := a.op
		cs = append(cs, rt("args/"+a.name, a.args,
			func(v Args) ([]byte, error) { return EncodeArgs(op, v) },
			func(b []byte) (Args, error) { return DecodeArgs(op, b) }))
	}
	for _, r := range sampleResults {
		op := r.op
		cs = append(cs, rt("result/"+r.name, r.res,
			func(v Result) ([]byte, error) { return EncodeResult(op, v) },
			func(b []byte) (Result, error) { return DecodeResult(op, b) }))
	}
	return cs
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range codecCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := tc.enc()
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			got, err := tc.dec(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(tc.want, got) {
				t.Fatalf("round trip (-want +got):\n-%#v\n+%#v", tc.want, got)
			}
		})
	}
}

func TestEveryOpHasCases(t *testing.T) {
	t.Parallel()
	for op := range opNames {
		var args, res bool
		for _, a := range sampleArgs {
			args = args || a.op == op
		}
		for _, r := range sampleResults {
			res = res || r.op == op
		}
		if !args || !res {
			t.Errorf("op %s: args case %v, result case %v", op, args, res)
		}
	}
}

// TestGolden pins the byte layout documented in doc.go.
func TestGolden(t *testing.T) {
	t.Parallel()
	freeze, err := EncodeArgs(OpFreeze, Args{LSSPairs: []hal.LSSPair{{
		Source: hal.LSSRef{Serial: "P", LSS: 0x10}, Target: hal.LSSRef{Serial: "S", LSS: 0x20}}}})
	if err != nil {
		t.Fatal(err)
	}
	req, err := EncodeRequest(Request{ID: 1, Epoch: 2, Timeout: time.Second, Op: OpFreeze, Args: freeze})
	if err != nil {
		t.Fatal(err)
	}
	var frame bytes.Buffer
	if err := WriteFrame(&frame, Frame{Type: MsgRequest, Body: req}); err != nil {
		t.Fatal(err)
	}
	event := func() ([]byte, error) {
		return EncodeEvent(hal.Event{Kind: hal.EventSuspend, Serial: "S", Seq: 5, At: time.Unix(0, 1000),
			LSSPair: hal.LSSPair{Source: hal.LSSRef{Serial: "P", LSS: 0x10}, Target: hal.LSSRef{Serial: "S", LSS: 0x20}},
			Reason:  hal.ReasonPath, Volumes: hal.VolumeSet{2, 0, 0, 1 << 63}})
	}
	tests := []struct {
		name string
		enc  func() ([]byte, error)
		want string // hex, spaces ignored
	}{
		{"hello", func() ([]byte, error) {
			return EncodeHello(Hello{Version: 3, Manager: "m", Serial: "S", User: "u", Password: "p"})
		}, "4C4B5350 0003 00 016D 0153 00 00 0175 0170"},
		{"hello-to-hmc", func() ([]byte, error) {
			return EncodeHello(Hello{Version: 3, ToHMC: true, Manager: "m", HMC: "H", User: "u", Password: "p"})
		}, "4C4B5350 0003 01 016D 00 0148 00 0175 0170"},
		{"hello-sysplex", func() ([]byte, error) {
			return EncodeHello(Hello{Version: 3, Manager: "m", Serial: "S", Sysplex: "X", User: "u", Password: "p"})
		}, "4C4B5350 0003 00 016D 0153 00 0158 0175 0170"},
		{"hello-ok", func() ([]byte, error) {
			return EncodeHelloOK(HelloOK{Version: 3, Serial: "S", Capabilities: hal.Capabilities{Heartbeat: true}, Epoch: 7})
		}, "0003 0153 00000001 0000000000000007 00 00000000"},
		{"hello-ok-hmc", func() ([]byte, error) {
			return EncodeHelloOK(HelloOK{Version: 3, Capabilities: hal.Capabilities{Heartbeat: true}, HMC: "H", Attached: []hal.Serial{"P", "S"}})
		}, "0003 00 00000001 0000000000000000 0148 00000002 0150 0153"},
		{"hello-reject", func() ([]byte, error) { return EncodeHelloReject(HelloReject{Code: RejectAuth, Text: "no"}) },
			"02 0002 6E6F"},
		{"freeze-request-frame", func() ([]byte, error) { return frame.Bytes(), nil },
			"00000025 10 0000000000000001 0000000000000002 000000003B9ACA00 04 00 00000001 015010 015320"},
		{"response", func() ([]byte, error) { return EncodeResponse(Response{ID: 1, Status: StatusFenced, Text: "old"}) },
			"0000000000000001 01 0003 6F6C64"},
		{"event", event, "01 0153 0000000000000005 00000000000003E8 015010 015320 01 " +
			"0000000000000002 0000000000000000 0000000000000000 8000000000000000 00 0000000000000000"},
		{"query-lsss-result", func() ([]byte, error) {
			return EncodeResult(OpQueryLSSs, Result{LSSs: []hal.LSSStatus{{LSS: 0x10, Type: hal.CKD, CGTimeout: 120 * time.Second}}})
		}, "00000001 10 01 0000001BF08EB000 0000000000000000"},
		{"enable-heartbeat-args", func() ([]byte, error) {
			return EncodeArgs(OpEnableHeartbeat, Args{Heartbeat: hal.HeartbeatSpec{Session: "s", Timeout: time.Second}})
		}, "0173 000000003B9ACA00 00000000"},
		{"query-pairs-result", func() ([]byte, error) {
			return EncodeResult(OpQueryPairs, Result{Pairs: []hal.PairStatus{{
				VolumePair: hal.VolumePair{Source: hal.VolumeRef{Serial: "P", Volume: 0x1001}, Target: hal.VolumeRef{Serial: "S", Volume: 0x2001}},
				State:      hal.Suspended, Reason: hal.ReasonFreeze, OutOfSync: 3}}})
		}, "00000001 01501001 01532001 03 02 0000000000000003"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.enc()
			if err != nil {
				t.Fatal(err)
			}
			want, err := hex.DecodeString(strings.ReplaceAll(tc.want, " ", ""))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("encoding (-want +got):\n-%X\n+%X", want, got)
			}
		})
	}
}

// malformedCase decodes bad input and expects an error wrapping want.
type malformedCase struct {
	name string
	dec  func() error
	want error
}

func decodeErr[T any](dec func([]byte) (T, error), b []byte) func() error {
	return func() error { _, err := dec(b); return err }
}

// mustEnc returns a must function for encoder results.
func mustEnc(t testing.TB) func([]byte, error) []byte {
	return func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

func hexBytes(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readFrameErr(b []byte, limit int) func() error {
	return func() error { _, err := ReadFrame(bytes.NewReader(b), limit); return err }
}

func malformedCases(t testing.TB) []malformedCase {
	must := mustEnc(t)
	hello := must(EncodeHello(sampleHello))
	ok := must(EncodeHelloOK(sampleOK))
	reject := must(EncodeHelloReject(HelloReject{Code: RejectVersion, Text: "v"}))
	event := must(EncodeEvent(sampleEvents[0]))
	req := must(EncodeRequest(Request{ID: 1, Epoch: 1, Timeout: time.Second, Op: OpPing}))
	resp := must(EncodeResponse(Response{ID: 1, Status: StatusRefused, Text: "no such volume"}))

	var cs []malformedCase
	// Every proper prefix of a self-delimiting message is malformed; for
	// requests and responses, every prefix of the fixed part.
	truncate := func(name string, b []byte, upto int, dec func([]byte) error) {
		for n := range upto {
			cs = append(cs, malformedCase{fmt.Sprintf("%s/truncated-%d", name, n), func() error { return dec(b[:n]) }, ErrMalformed})
		}
	}
	wrap := func(f func([]byte) error) func([]byte) error { return f }
	truncate("hello", hello, len(hello), wrap(func(b []byte) error { _, err := DecodeHello(b); return err }))
	truncate("hello-ok", ok, len(ok), wrap(func(b []byte) error { _, err := DecodeHelloOK(b); return err }))
	truncate("hello-reject", reject, len(reject), wrap(func(b []byte) error { _, err := DecodeHelloReject(b); return err }))
	truncate("event", event, len(event), wrap(func(b []byte) error { _, err := DecodeEvent(b); return err }))
	truncate("request", req, requestHeader, wrap(func(b []byte) error { _, err := DecodeRequest(b); return err }))
	truncate("response", resp, len(resp), wrap(func(b []byte) error { _, err := DecodeResponse(b); return err }))
	for _, a := range sampleArgs {
		b := must(EncodeArgs(a.op, a.args))
		op := a.op
		truncate("args/"+a.name, b, len(b), func(b []byte) error { _, err := DecodeArgs(op, b); return err })
		cs = append(cs, malformedCase{"args/" + a.name + "/trailing", decodeErr(func(b []byte) (Args, error) { return DecodeArgs(op, b) }, append(b, 0)), ErrMalformed})
	}
	for _, r := range sampleResults {
		b := must(EncodeResult(r.op, r.res))
		op := r.op
		truncate("result/"+r.name, b, len(b), func(b []byte) error { _, err := DecodeResult(op, b); return err })
		cs = append(cs, malformedCase{"result/" + r.name + "/trailing", decodeErr(func(b []byte) (Result, error) { return DecodeResult(op, b) }, append(b, 0)), ErrMalformed})
	}

	args := func(op Op, s string) func() error {
		return decodeErr(func(b []byte) (Args, error) { return DecodeArgs(op, b) }, hexBytes(t, s))
	}
	result := func(op Op, s string) func() error {
		return decodeErr(func(b []byte) (Result, error) { return DecodeResult(op, b) }, hexBytes(t, s))
	}
	helloV1 := append([]byte(Magic), hexBytes(t, "0001 016D 0153 0175 0170")...)
	helloV4 := append([]byte(Magic), hexBytes(t, "0004 00 016D 0153 00 0175 0170")...)
	cs = append(cs,
		malformedCase{"hello/trailing", decodeErr(DecodeHello, append(hello, 0)), ErrMalformed},
		malformedCase{"hello/bad-magic", decodeErr(DecodeHello, append([]byte("HTTP"), hello[4:]...)), ErrMalformed},
		malformedCase{"hello/version-1", decodeErr(DecodeHello, helloV1), ErrBadVersion},
		malformedCase{"hello/version-4", decodeErr(DecodeHello, helloV4), ErrBadVersion},
		malformedCase{"hello/unknown-flag", decodeErr(DecodeHello, append([]byte(Magic), hexBytes(t, "0003 02 016D 0153 00 00 0175 0170")...)), ErrMalformed},
		malformedCase{"hello/hmc-with-serial", decodeErr(DecodeHello, append([]byte(Magic), hexBytes(t, "0003 01 016D 0153 00 00 0175 0170")...)), ErrMalformed},
		malformedCase{"hello/storage-with-hmc", decodeErr(DecodeHello, append([]byte(Magic), hexBytes(t, "0003 00 016D 0153 0148 00 0175 0170")...)), ErrMalformed},
		malformedCase{"hello-ok/storage-with-attached", decodeErr(DecodeHelloOK, hexBytes(t, "0003 0153 00000001 0000000000000007 00 00000001 0150")), ErrMalformed},
		malformedCase{"hello-ok/hmc-with-serial", decodeErr(DecodeHelloOK, hexBytes(t, "0003 0153 00000001 0000000000000007 0148 00000000")), ErrMalformed},
		malformedCase{"hello-ok/attached-count-overflow", decodeErr(DecodeHelloOK, hexBytes(t, "0003 00 00000001 0000000000000007 0148 FFFFFFFF 0150")), ErrMalformed},
		malformedCase{"hello/version-0", decodeErr(DecodeHello, append([]byte(Magic), 0, 0)), ErrBadVersion},
		malformedCase{"hello-ok/trailing", decodeErr(DecodeHelloOK, append(ok, 0)), ErrMalformed},
		malformedCase{"hello-ok/version-1", decodeErr(DecodeHelloOK, hexBytes(t, "0001 0153 00000001 0000000000000007")), ErrBadVersion},
		malformedCase{"hello-ok/unknown-capability", decodeErr(DecodeHelloOK, hexBytes(t, "0003 0153 00000003 0000000000000007 00 00000000")), ErrMalformed},
		malformedCase{"hello-reject/trailing", decodeErr(DecodeHelloReject, append(reject, 0)), ErrMalformed},
		malformedCase{"hello-reject/text-truncated", decodeErr(DecodeHelloReject, hexBytes(t, "01 FFFF 00")), ErrMalformed},
		malformedCase{"event/trailing", decodeErr(DecodeEvent, append(event, 0)), ErrMalformed},
		malformedCase{"request/timeout-zero", decodeErr(DecodeRequest, hexBytes(t, "0000000000000001 0000000000000001 0000000000000000 01")), ErrMalformed},
		malformedCase{"request/timeout-negative", decodeErr(DecodeRequest, hexBytes(t, "0000000000000001 0000000000000001 FFFFFFFFFFFFFFFF 01")), ErrMalformed},
		malformedCase{"response/unknown-status", decodeErr(DecodeResponse, hexBytes(t, "0000000000000001 08 0000")), ErrMalformed},
		malformedCase{"response/error-with-result", decodeErr(DecodeResponse, hexBytes(t, "0000000000000001 02 0000 00")), ErrMalformed},
		malformedCase{"response/text-truncated", decodeErr(DecodeResponse, hexBytes(t, "0000000000000001 02 0400")), ErrMalformed},
		malformedCase{"response/text-over-limit", decodeErr(DecodeResponse, append(hexBytes(t, "0000000000000001 02 0401"), make([]byte, MaxText+1)...)), ErrMalformed},
		malformedCase{"hello-reject/text-over-limit", decodeErr(DecodeHelloReject, append(hexBytes(t, "01 0401"), make([]byte, MaxText+1)...)), ErrMalformed},
		malformedCase{"args/freeze/huge-count", args(OpFreeze, "FFFFFFFF 015010 015320"), ErrMalformed},
		malformedCase{"args/thaw/count-over-bytes", args(OpThaw, "00000002 10"), ErrMalformed},
		malformedCase{"args/paths/huge-count", args(OpEstablishPaths, "40000000"), ErrMalformed},
		malformedCase{"args/paths/bad-bool", args(OpEstablishPaths, "00000001 015010 015320 02"), ErrMalformed},
		malformedCase{"args/heartbeat/huge-count", args(OpEnableHeartbeat, "0173 000000003B9ACA00 7FFFFFFF"), ErrMalformed},
		malformedCase{"args/ping/trailing", args(OpPing, "00"), ErrMalformed},
		malformedCase{"args/unknown-op", args(0x7F, ""), ErrUnknownOp},
		malformedCase{"args/op-zero", args(0, ""), ErrUnknownOp},
		malformedCase{"result/unknown-op", result(0xFF, ""), ErrUnknownOp},
		malformedCase{"result/pairs/huge-count", result(OpQueryPairs, "10000000 00"), ErrMalformed},
		malformedCase{"result/pairs/out-of-sync-overflow", result(OpQueryPairs, "00000001 01501001 01532001 03 02 8000000000000000"), ErrMalformed},
		malformedCase{"result/paths/bad-bool", result(OpQueryPaths, "00000001 015010 015320 FF 00"), ErrMalformed},
		malformedCase{"result/freeze/not-empty", result(OpFreeze, "00"), ErrMalformed},

		malformedCase{"frame/empty-stream", readFrameErr(nil, MaxFrameSize), io.EOF},
		malformedCase{"frame/truncated-length", readFrameErr(hexBytes(t, "0000"), MaxFrameSize), io.ErrUnexpectedEOF},
		malformedCase{"frame/truncated-type", readFrameErr(hexBytes(t, "00000002"), MaxFrameSize), io.ErrUnexpectedEOF},
		malformedCase{"frame/truncated-body", readFrameErr(hexBytes(t, "00000003 11 00"), MaxFrameSize), io.ErrUnexpectedEOF},
		malformedCase{"frame/length-zero", readFrameErr(hexBytes(t, "00000000 10"), MaxFrameSize), ErrMalformed},
		malformedCase{"frame/length-max-plus-one", readFrameErr(binary.BigEndian.AppendUint32(nil, MaxFrameSize+1), MaxFrameSize), ErrFrameTooLarge},
		malformedCase{"frame/length-all-ones", readFrameErr(hexBytes(t, "FFFFFFFF 10"), MaxFrameSize), ErrFrameTooLarge},
		malformedCase{"frame/over-handshake-limit", readFrameErr(binary.BigEndian.AppendUint32(nil, MaxHandshakeFrame+1), MaxHandshakeFrame), ErrFrameTooLarge},
		malformedCase{"frame/limit-above-max-is-capped", readFrameErr(binary.BigEndian.AppendUint32(nil, MaxFrameSize+1), math.MaxInt), ErrFrameTooLarge},
		malformedCase{"frame/unknown-type", readFrameErr(hexBytes(t, "00000001 EE"), MaxFrameSize), ErrUnknownType},
		malformedCase{"frame/type-zero", readFrameErr(hexBytes(t, "00000001 00"), MaxFrameSize), ErrUnknownType},
	)
	return cs
}

func TestMalformed(t *testing.T) {
	t.Parallel()
	for _, tc := range malformedCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.dec()
			if !errors.Is(err, tc.want) {
				t.Fatalf("error = %v, want one wrapping %v", err, tc.want)
			}
		})
	}
}

func TestEncodeRefusesOutOfBounds(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", MaxName+1)
	manyLSSs := make([]hal.LSSStatus, MaxFrameSize/minLSSStatus+1)
	tests := []struct {
		name string
		enc  func() ([]byte, error)
		want error
	}{
		{"hello/long-password", func() ([]byte, error) { return EncodeHello(Hello{Version: Version, Password: long}) }, ErrMalformed},
		{"hello-ok/long-serial", func() ([]byte, error) { return EncodeHelloOK(HelloOK{Serial: hal.Serial(long)}) }, ErrMalformed},
		{"reject/long-text", func() ([]byte, error) {
			return EncodeHelloReject(HelloReject{Text: strings.Repeat("x", MaxText+1)})
		}, ErrMalformed},
		{"request/zero-timeout", func() ([]byte, error) { return EncodeRequest(Request{Op: OpPing}) }, ErrMalformed},
		{"request/args-over-frame", func() ([]byte, error) {
			return EncodeRequest(Request{Timeout: 1, Op: OpPing, Args: make([]byte, MaxFrameSize)})
		}, ErrFrameTooLarge},
		{"response/unknown-status", func() ([]byte, error) { return EncodeResponse(Response{Status: 99}) }, ErrMalformed},
		{"response/error-with-result", func() ([]byte, error) {
			return EncodeResponse(Response{Status: StatusRefused, Result: []byte{1}})
		}, ErrMalformed},
		{"event/long-session", func() ([]byte, error) { return EncodeEvent(hal.Event{Session: long}) }, ErrMalformed},
		{"event/time-out-of-range", func() ([]byte, error) {
			return EncodeEvent(hal.Event{At: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)})
		}, ErrMalformed},
		{"args/long-serial", func() ([]byte, error) {
			return EncodeArgs(OpFreeze, Args{LSSPairs: []hal.LSSPair{{Source: hal.LSSRef{Serial: hal.Serial(long)}}}})
		}, ErrMalformed},
		{"args/unknown-op", func() ([]byte, error) { return EncodeArgs(0x7F, Args{}) }, ErrUnknownOp},
		{"result/negative-out-of-sync", func() ([]byte, error) {
			return EncodeResult(OpQueryPairs, Result{Pairs: []hal.PairStatus{{OutOfSync: -1}}})
		}, ErrMalformed},
		{"result/over-frame", func() ([]byte, error) { return EncodeResult(OpQueryLSSs, Result{LSSs: manyLSSs}) }, ErrFrameTooLarge},
		{"frame/over-max", func() ([]byte, error) {
			return nil, WriteFrame(io.Discard, Frame{Type: MsgResponse, Body: make([]byte, MaxFrameSize)})
		}, ErrFrameTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := tc.enc(); !errors.Is(err, tc.want) {
				t.Fatalf("error = %v, want one wrapping %v", err, tc.want)
			}
		})
	}
}

func TestReadFrameRoundTrip(t *testing.T) {
	t.Parallel()
	frames := []Frame{
		{Type: MsgHello, Body: []byte("x")},
		{Type: MsgEvent, Body: nil},
		{Type: MsgResponse, Body: bytes.Repeat([]byte{0xAB}, MaxFrameSize-1)}, // exactly the limit
	}
	var buf bytes.Buffer
	for _, f := range frames {
		if err := WriteFrame(&buf, f); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range frames {
		got, err := ReadFrame(&buf, MaxFrameSize)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if got.Type != want.Type || !bytes.Equal(got.Body, want.Body) {
			t.Fatalf("frame %d: got type %s, %d bytes; want type %s, %d bytes", i, got.Type, len(got.Body), want.Type, len(want.Body))
		}
	}
	if _, err := ReadFrame(&buf, MaxFrameSize); err != io.EOF {
		t.Fatalf("after the last frame: err = %v, want io.EOF", err)
	}
}

// TestRequestFrame: the client's framed request is WriteFrame of
// EncodeRequest, byte for byte, and refuses what EncodeRequest refuses,
// from the same size on.
func TestRequestFrame(t *testing.T) {
	t.Parallel()
	fits := requestHeader + 8 // the largest body a frame holds, with an 8-byte target
	for _, n := range []int{0, 1, 100, MaxFrameSize - 1 - fits, MaxFrameSize - fits} {
		m := Request{ID: 7, Epoch: 3, Timeout: time.Second, Op: OpFreeze, Target: "LAB.2107", Args: bytes.Repeat([]byte{0xCD}, n)}
		body, berr := EncodeRequest(m)
		got, ferr := requestFrame(m)
		if tooLarge := n > MaxFrameSize-1-fits; tooLarge || berr != nil || ferr != nil {
			if !tooLarge || !errors.Is(berr, ErrFrameTooLarge) || !errors.Is(ferr, ErrFrameTooLarge) {
				t.Fatalf("%d bytes of args: EncodeRequest %v, requestFrame %v, want both refused as too large: %v", n, berr, ferr, tooLarge)
			}
			continue
		}
		var want bytes.Buffer
		if err := WriteFrame(&want, Frame{Type: MsgRequest, Body: body}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("%d bytes of args: requestFrame differs from WriteFrame of EncodeRequest", n)
		}
	}
}

// TestReadFrameChecksLengthBeforeAllocating feeds headers claiming 4 GiB
// and checks that ReadFrame allocated almost nothing for them.
func TestReadFrameChecksLengthBeforeAllocating(t *testing.T) {
	// Not parallel: it measures the process's allocations.
	hdr := hexBytes(t, "FFFFFFFF 10")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 100 {
		if _, err := ReadFrame(bytes.NewReader(hdr), MaxFrameSize); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("err = %v", err)
		}
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("100 oversized headers allocated %d bytes", n)
	}
}

// TestHugeCountsDoNotAllocate decodes lists claiming billions of elements
// in a few bytes: the count must be refused before the slice is made.
func TestHugeCountsDoNotAllocate(t *testing.T) {
	// Not parallel: it measures the process's allocations.
	inputs := []struct {
		op     Op
		result bool
		hex    string
	}{
		{OpFreeze, false, "FFFFFFFF 015010 015320"},
		{OpEstablishPaths, false, "FFFFFFFF"},
		{OpEstablishPairs, false, "7FFFFFFF 00"},
		{OpThaw, false, "FFFFFFFF 10"},
		{OpRecover, false, "FFFFFFFF"},
		{OpEnableHeartbeat, false, "0173 000000003B9ACA00 FFFFFFFF"},
		{OpQueryPairs, true, "FFFFFFFF"},
		{OpQueryPaths, true, "FFFFFFFF"},
		{OpQueryLSSs, true, "FFFFFFFF"},
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, in := range inputs {
		b := hexBytes(t, in.hex)
		var err error
		if in.result {
			_, err = DecodeResult(in.op, b)
		} else {
			_, err = DecodeArgs(in.op, b)
		}
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "count") {
			t.Errorf("%s: error = %v, want the count refused", in.op, err)
		}
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("decoding huge counts allocated %d bytes", n)
	}
}

func TestStatusMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err    error
		status Status
		is     error // what the status's error must wrap on the client
	}{
		{nil, StatusOK, nil},
		{fmt.Errorf("epoch 3: %w", hal.ErrFenced), StatusFenced, hal.ErrFenced},
		{fmt.Errorf("no volume: %w", hal.ErrRefused), StatusRefused, hal.ErrRefused},
		{hal.ErrHeartbeatExpired, StatusHeartbeatExpired, hal.ErrHeartbeatExpired},
		{hal.ErrUnsupported, StatusUnsupported, hal.ErrUnsupported},
		{hal.ErrTimeout, StatusTimeout, hal.ErrTimeout},
		{context.DeadlineExceeded, StatusTimeout, hal.ErrTimeout},
		{fmt.Errorf("x: %w", context.Canceled), StatusTimeout, hal.ErrTimeout},
		{hal.ErrUnreachable, StatusUnreachable, hal.ErrUnreachable},
		{errors.New("disk on fire"), StatusInternal, ErrInternal},
		{hal.ErrAuth, StatusInternal, ErrInternal},
		{fmt.Errorf("relayed: %w", &RemoteError{Status: StatusHeartbeatExpired}), StatusHeartbeatExpired, hal.ErrHeartbeatExpired},
	}
	for _, tc := range tests {
		got := StatusOf(tc.err)
		if got != tc.status {
			t.Errorf("StatusOf(%v) = %s, want %s", tc.err, got, tc.status)
		}
		back := got.Err("detail")
		if tc.is == nil {
			if back != nil {
				t.Errorf("%s.Err = %v, want nil", got, back)
			}
			continue
		}
		if !errors.Is(back, tc.is) {
			t.Errorf("%s.Err = %v, want one wrapping %v", got, back, tc.is)
		}
		if !strings.Contains(back.Error(), "detail") {
			t.Errorf("%s.Err = %q lost the text", got, back)
		}
	}
	if !errors.Is(Status(200).Err(""), ErrInternal) {
		t.Error("an unknown status does not read as internal")
	}
}

func TestTruncateText(t *testing.T) {
	t.Parallel()
	if got := TruncateText("short"); got != "short" {
		t.Fatalf("short text changed: %q", got)
	}
	long := strings.Repeat("é", MaxText) // 2 bytes each
	got := TruncateText(long)
	if len(got) > MaxText || !strings.HasSuffix(got, "...") {
		t.Fatalf("len %d, suffix %q", len(got), got[len(got)-3:])
	}
	if !strings.HasPrefix(long, strings.TrimSuffix(got, "...")) || strings.ContainsRune(got, '\uFFFD') {
		t.Fatal("cut inside a rune")
	}
	for _, r := range strings.TrimSuffix(got, "...") {
		if r != 'é' {
			t.Fatalf("cut inside a rune: %q", r)
		}
	}
}

func TestCheckCredentials(t *testing.T) {
	t.Parallel()
	tests := []struct {
		user, password string
		ok             bool
	}{
		{"admin", "secret", true},
		{"admin", "secreT", false},
		{"admin", "", false},
		{"Admin", "secret", false},
		{"", "", false},
	}
	for _, tc := range tests {
		err := CheckCredentials(Hello{User: tc.user, Password: tc.password}, "admin", "secret")
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, hal.ErrAuth)) {
			t.Errorf("%q/%q: err = %v, want ok=%v", tc.user, tc.password, err, tc.ok)
		}
		if err != nil && strings.Contains(err.Error(), tc.password) && tc.password != "" {
			t.Errorf("error %q reveals the password", err)
		}
	}
}

// TestFreezeArgsDecodeWithoutCopyingEachName: the arguments of a freeze
// of 16 LSS pairs name the same two systems 32 times; the decoder keeps
// one string of each, not 32 copies (the server decodes one per system
// per freeze, the client one event per LSS pair frozen).
//
// Not parallel: testing.AllocsPerRun counts the whole process's.
func TestFreezeArgsDecodeWithoutCopyingEachName(t *testing.T) {
	var pairs []hal.LSSPair
	for l := range 16 {
		pairs = append(pairs, hal.LSSPair{Source: hal.LSSRef{Serial: "IBM.2107-75PRIM01", LSS: hal.LSS(l)},
			Target: hal.LSSRef{Serial: "IBM.2107-75SECO01", LSS: hal.LSS(l)}})
	}
	b, err := EncodeArgs(OpFreeze, Args{LSSPairs: pairs})
	if err != nil {
		t.Fatal(err)
	}
	var got Args
	allocs := testing.AllocsPerRun(100, func() {
		if got, err = DecodeArgs(OpFreeze, b); err != nil {
			t.Fatal(err)
		}
	})
	if !slices.Equal(got.LSSPairs, pairs) {
		t.Fatalf("decoded %v, want %v", got.LSSPairs, pairs)
	}
	// The slice and the two names (and the list's own bookkeeping);
	// a copy per name is 32 more.
	if allocs > 6 {
		t.Errorf("decoding a freeze of 16 LSS pairs allocates %v times, want at most 6", allocs)
	}
}

// TestAppendEventsToOneBuffer: events appended one after the other to
// one buffer (the server's send loop) decode each from its own part, a
// frame's size limit applies to each event alone, and an event that
// cannot be encoded leaves the buffer as it was.
func TestAppendEventsToOneBuffer(t *testing.T) {
	var buf []byte
	var ends []int
	for _, ev := range sampleEvents {
		var err error
		if buf, err = appendEvent(buf, ev); err != nil {
			t.Fatal(err)
		}
		ends = append(ends, len(buf))
	}
	// Past one frame's size in all: each event still fits its own.
	for len(buf) < MaxFrameSize {
		var err error
		if buf, err = appendEvent(buf, sampleEvents[0]); err != nil {
			t.Fatalf("at %d bytes: %v", len(buf), err)
		}
	}
	before := slices.Clone(buf)
	got, err := appendEvent(buf, hal.Event{Session: strings.Repeat("s", MaxName+1)})
	if !errors.Is(err, ErrMalformed) || !bytes.Equal(got, before) {
		t.Fatalf("a bad event: %v, %d bytes after it, want ErrMalformed and the %d bytes before", err, len(got), len(before))
	}
	start := 0
	for i, end := range ends {
		ev, err := DecodeEvent(buf[start:end])
		if err != nil || !reflect.DeepEqual(ev, sampleEvents[i]) {
			t.Fatalf("event %d: %+v, %v; want %+v", i, ev, err, sampleEvents[i])
		}
		start = end
	}
}
