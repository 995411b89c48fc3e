package freeze

import (
	"errors"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestDeriveH(t *testing.T) {
	t.Parallel()
	def := DefaultTimings()
	for _, tc := range []struct {
		name     string
		lowestCG time.Duration
		t        Timings
		want     time.Duration
		wantErr  bool
	}{
		{"FB default", 60 * time.Second, def, 53 * time.Second, false},
		{"CKD default", 120 * time.Second, def, 113 * time.Second, false},
		{"short CG leaves no room", 10 * time.Second, def, 0, true},
		{"H exactly at the floor", 12 * time.Second, def, 5 * time.Second, false},
		{"H one tick under the floor", 12*time.Second - time.Nanosecond, def, 0, true},
		{"detection window under the interval", 60 * time.Second,
			Timings{Interval: 2 * time.Second, DetectionWindow: time.Second, RequestTimeout: time.Second,
				PollInterval: time.Second, RetryInterval: time.Second}, 0, true},
		{"zero request timeout", 60 * time.Second,
			Timings{Interval: time.Second, DetectionWindow: 2 * time.Second, PollInterval: time.Second,
				RetryInterval: time.Second}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, err := DeriveH(tc.lowestCG, tc.t)
			if (err != nil) != tc.wantErr || h != tc.want {
				t.Fatalf("DeriveH(%v) = %v, %v; want %v, error %v", tc.lowestCG, h, err, tc.want, tc.wantErr)
			}
			if err != nil && !errors.Is(err, ErrTiming) {
				t.Fatalf("error %v is not ErrTiming", err)
			}
			if err == nil && h+tc.t.Margin() > tc.lowestCG {
				t.Fatalf("H %v + margin %v exceeds the CG timeout %v", h, tc.t.Margin(), tc.lowestCG)
			}
		})
	}
}

func TestSafeAtAndDoubtful(t *testing.T) {
	t.Parallel()
	if got := SafeAt(t0, 53*time.Second, 2*time.Second); !got.Equal(t0.Add(55 * time.Second)) {
		t.Fatalf("SafeAt = %v", got)
	}
	for _, tc := range []struct {
		since time.Duration
		want  bool
	}{{0, false}, {2*time.Second - time.Nanosecond, false}, {2 * time.Second, true}, {time.Hour, true}} {
		if got := Doubtful(t0.Add(tc.since), t0, 2*time.Second); got != tc.want {
			t.Errorf("Doubtful after %v = %v, want %v", tc.since, got, tc.want)
		}
	}
}

func TestCertainty(t *testing.T) {
	t.Parallel()
	const h, rt = 53 * time.Second, 2 * time.Second
	sent := t0.Add(10 * time.Second)
	for _, tc := range []struct {
		name      string
		now       time.Time
		systems   map[string]SystemFreeze
		heartbeat bool
		certain   bool
		at        time.Time
	}{
		{"all acked", t0, map[string]SystemFreeze{"a": {Acked: true}, "b": {Acked: true}}, false, true, time.Time{}},
		{"unacked without heartbeat: never", t0.Add(time.Hour),
			map[string]SystemFreeze{"a": {Acked: true}, "b": {}}, false, false, time.Time{}},
		{"unacked, heartbeat on but never armed: never", t0.Add(time.Hour),
			map[string]SystemFreeze{"b": {LastSent: sent}}, true, false, time.Time{}},
		{"unacked, armed: a nanosecond early", sent.Add(h + rt - time.Nanosecond),
			map[string]SystemFreeze{"a": {Acked: true}, "b": {Armed: true, LastSent: sent}}, true, false, sent.Add(h + rt)},
		{"unacked, armed: exactly at SafeAt", sent.Add(h + rt),
			map[string]SystemFreeze{"b": {Armed: true, LastSent: sent}}, true, true, time.Time{}},
		{"latest of two unacked", sent.Add(h + rt),
			map[string]SystemFreeze{"b": {Armed: true, LastSent: sent}, "c": {Armed: true, LastSent: sent.Add(time.Second)}},
			true, false, sent.Add(h + rt + time.Second)},
		{"armed but the switch is off", sent.Add(time.Hour),
			map[string]SystemFreeze{"b": {Armed: true, LastSent: sent}}, false, false, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			certain, at := Certainty(tc.now, tc.systems, tc.heartbeat, h, rt)
			if certain != tc.certain || !at.Equal(tc.at) {
				t.Fatalf("Certainty = %v, %v; want %v, %v", certain, at, tc.certain, tc.at)
			}
		})
	}
}
