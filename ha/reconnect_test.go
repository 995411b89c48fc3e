package ha_test

import (
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/ha"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func TestNextReconnect(t *testing.T) {
	t.Parallel()
	cfg := ha.Config{ReconnectInterval: time.Minute, ReconnectAttempts: 3}
	tests := []struct {
		name     string
		attempts int
		last     time.Time
		cfg      ha.Config
		want     time.Time
		wantOK   bool
	}{
		{"first attempt one interval after the loss", 0, t0, cfg, t0.Add(time.Minute), true},
		{"second attempt one interval after the first started", 1, t0.Add(time.Minute), cfg, t0.Add(2 * time.Minute), true},
		{"last allowed attempt", 2, t0.Add(2 * time.Minute), cfg, t0.Add(3 * time.Minute), true},
		{"attempts spent", 3, t0.Add(3 * time.Minute), cfg, time.Time{}, false},
		{"beyond the count", 7, t0, cfg, time.Time{}, false},
		{"no automatic reconnection", 0, t0, ha.Config{ReconnectInterval: time.Minute}, time.Time{}, false},
		{"default interval", 0, t0, ha.Config{ReconnectAttempts: 1}, t0.Add(ha.DefaultReconnectInterval), true},
		{"negative interval is the default", 0, t0, ha.Config{ReconnectInterval: -time.Second, ReconnectAttempts: 1}, t0.Add(time.Minute), true},
		{"negative attempts are none", 0, t0, ha.Config{ReconnectAttempts: -1}, time.Time{}, false},
		{"defaults: ten attempts", 9, t0, ha.DefaultConfig(), t0.Add(time.Minute), true},
		{"defaults: the eleventh is not made", 10, t0, ha.DefaultConfig(), time.Time{}, false},
		{"long interval", 0, t0, ha.Config{ReconnectInterval: time.Hour, ReconnectAttempts: 1}, t0.Add(time.Hour), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := ha.NextReconnect(tt.attempts, tt.last, tt.cfg)
			if ok != tt.wantOK || !got.Equal(tt.want) {
				t.Errorf("NextReconnect(%d, %v) = %v, %t; want %v, %t", tt.attempts, tt.last, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestWakeup(t *testing.T) {
	t.Parallel()
	next := t0.Add(time.Minute)
	sched := ha.Schedule{Attempts: 1, Last: t0, Next: next}
	peer := ha.Peer{Addr: "tcp://b:9730", Name: "b"}
	tests := []struct {
		name   string
		s      ha.State
		wantOK bool
	}{
		{"active disconnected consistent", ha.State{Role: ha.Active, Conn: ha.DisconnectedConsistent, Peer: peer, Reconnect: sched}, true},
		{"active unknown", ha.State{Role: ha.Active, Conn: ha.Unknown, Peer: peer, Reconnect: sched}, true},
		{"active disconnected: manual only", ha.State{Role: ha.Active, Conn: ha.Disconnected, Peer: peer, Reconnect: sched}, false},
		{"attempt under way", ha.State{Role: ha.Active, Conn: ha.DisconnectedConsistent, Peer: peer, Dialing: true, Reconnect: sched}, false},
		{"linked", ha.State{Role: ha.Active, Conn: ha.DisconnectedConsistent, Peer: peer, Link: 3, Reconnect: sched}, false},
		{"series over", ha.State{Role: ha.Active, Conn: ha.DisconnectedConsistent, Peer: peer, Reconnect: ha.Schedule{Attempts: 3, Last: t0}}, false},
		{"standby never schedules", ha.State{Role: ha.Standby, Conn: ha.DisconnectedConsistent, Peer: peer, Reconnect: sched}, false},
		{"standalone", ha.State{Reconnect: sched}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := ha.Wakeup(tt.s)
			if ok != tt.wantOK || (ok && !got.Equal(next)) {
				t.Errorf("Wakeup = %v, %t; want %t (at %v)", got, ok, tt.wantOK, next)
			}
		})
	}
}
