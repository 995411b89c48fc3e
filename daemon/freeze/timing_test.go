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
		{"CG timeout unknown", 0, def, 0, true},
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

func TestJudge(t *testing.T) {
	t.Parallel()
	tm := DefaultTimings() // interval 1s, window 2s, request timeout 2s
	h := 53 * time.Second
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	for _, tc := range []struct {
		name                        string
		now, reply, ackedSent, late time.Duration // from t0; late < 0: never late
		want                        Verdict
	}{
		{"answered within the window", 1500 * time.Millisecond, 0, 0, -1, Healthy},
		{"window just reached, core on time", 2 * time.Second, 0, 0, -1, Silent},
		{"silent long after, core on time", 10 * time.Second, 0, 0, -1, Silent},
		{"core late before the last reply proves nothing either way", 3 * time.Second, time.Second, time.Second, 500 * time.Millisecond, Silent},
		{"core woke late inside the silence: recheck", 5 * time.Second, 0, 0, 5 * time.Second, Recheck},
		{"recheck while the window since the lateness runs", 6*time.Second + 999*time.Millisecond, 0, 0, 5 * time.Second, Recheck},
		{"silent for a window after the lateness", 7 * time.Second, 0, 0, 5 * time.Second, Silent},
		{"late, but last acked heartbeat + H passed", 53 * time.Second, 0, 0, 53 * time.Second, MayHaveExpired},
		{"late, one tick before last acked heartbeat + H", 53*time.Second - time.Nanosecond, 0, 0, 53*time.Second - time.Nanosecond, Recheck},
		{"acked heartbeat sent before the reply counts from its sending", 55 * time.Second, 3 * time.Second, time.Second, 55 * time.Second, MayHaveExpired},
		{"healthy even when late", time.Second, 0, 0, time.Second, Healthy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var late time.Time
			if tc.late >= 0 {
				late = at(tc.late)
			}
			if got := Judge(at(tc.now), at(tc.reply), at(tc.ackedSent), late, h, tm); got != tc.want {
				t.Fatalf("Judge = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestLateness(t *testing.T) {
	t.Parallel()
	tm := DefaultTimings() // tolerance 500ms
	for _, tc := range []struct {
		name      string
		prev, now time.Duration
		woke      bool
	}{
		{"first tick", -1, time.Second, false},
		{"on time", 0, time.Second, false},
		{"jitter", 0, 1500 * time.Millisecond, false},
		{"a tick missed", 0, 1500*time.Millisecond + 1, true},
		{"stopped for 3 s", 0, 4 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var prev time.Time
			if tc.prev >= 0 {
				prev = t0.Add(tc.prev)
			}
			if got := WokeLate(t0.Add(tc.now), prev, tm); got != tc.woke {
				t.Fatalf("WokeLate = %v, want %v", got, tc.woke)
			}
		})
	}
	for _, tc := range []struct {
		name  string
		delay time.Duration
		want  bool
	}{{"at once", 0, false}, {"within tolerance", 500 * time.Millisecond, false}, {"late", 501 * time.Millisecond, true}} {
		t.Run("ran "+tc.name, func(t *testing.T) {
			t.Parallel()
			if got := RanLate(t0, t0.Add(tc.delay), tm); got != tc.want {
				t.Fatalf("RanLate after %v = %v, want %v", tc.delay, got, tc.want)
			}
		})
	}
	if RanLate(time.Time{}, t0, tm) {
		t.Fatal("nothing planned cannot be late")
	}
}

func TestContactLost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		since time.Duration
		want  bool
	}{{"just lost", time.Second, false}, {"exactly the CG timeout", 60 * time.Second, false}, {"past it", 60*time.Second + 1, true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := ContactLost(t0.Add(tc.since), t0, 60*time.Second); got != tc.want {
				t.Fatalf("ContactLost after %v = %v, want %v", tc.since, got, tc.want)
			}
		})
	}
	if ContactLost(t0, time.Time{}, time.Second) {
		t.Fatal("no contact time known: not lost")
	}
}

func TestHoldEnds(t *testing.T) {
	t.Parallel()
	h, rt := 53*time.Second, 2*time.Second
	for _, tc := range []struct {
		name   string
		hold   Hold
		want   time.Time
		wantOK bool
	}{
		{"freeze only", Hold{LastFreezeSent: t0, HighestCG: 60 * time.Second}, t0.Add(62 * time.Second), true},
		{"armed: its expiry may restart the hold", Hold{LastFreezeSent: t0, Armed: true, LastHeartbeatSent: t0,
			HighestCG: 60 * time.Second}, t0.Add(115 * time.Second), true},
		{"armed, heartbeat long before the freeze", Hold{LastFreezeSent: t0.Add(time.Hour), Armed: true,
			LastHeartbeatSent: t0, HighestCG: 60 * time.Second}, t0.Add(time.Hour + 62*time.Second), true},
		{"CG timeout unknown", Hold{LastFreezeSent: t0}, time.Time{}, false},
		{"no freeze sent", Hold{HighestCG: time.Minute}, time.Time{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := HoldEnds(tc.hold, h, rt)
			if ok != tc.wantOK || !got.Equal(tc.want) {
				t.Fatalf("HoldEnds = %v, %v; want %v, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}
