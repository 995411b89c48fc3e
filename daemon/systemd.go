package daemon

import (
	"context"
	"log/slog"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"

	"github.com/lockstep-io/lockstep/hal/clock"
)

// Notifier sends sd_notify states to the service manager.
type Notifier interface {
	Notify(state string) error
}

// SystemdNotifier talks to systemd through $NOTIFY_SOCKET; without it
// (not started by systemd) every Notify is a no-op.
type SystemdNotifier struct{}

func (SystemdNotifier) Notify(state string) error {
	_, err := sd.SdNotify(false, state)
	return err
}

// WatchdogInterval is half of systemd's WATCHDOG_USEC, or zero when the
// watchdog is off.
func WatchdogInterval() time.Duration {
	d, err := sd.SdWatchdogEnabled(false)
	if err != nil || d <= 0 {
		return 0
	}
	return d / 2
}

// Watchdog pings the service manager while progress moves.
type Watchdog struct {
	Notifier Notifier
	Interval time.Duration // half of WATCHDOG_USEC
	Progress func() uint64 // the freeze core's loop counter
	Clock    clock.Clock
	Logger   *slog.Logger
	// Withheld, if set, is told once per stall that the ping is withheld
	// (the NMS hears of a wedged core before systemd restarts it); it is
	// told again only after the core moved in between.
	Withheld func(progress uint64, since time.Duration)
}

// Run pings every Interval if Progress moved since the last look, until
// ctx ends. A still counter means a wedged core: no ping, an error log,
// and systemd restarts the daemon when WATCHDOG_USEC passes.
func (w *Watchdog) Run(ctx context.Context) error {
	if w.Interval <= 0 {
		<-ctx.Done()
		return nil
	}
	clk := clock.OrReal(w.Clock)
	log := w.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := clk.NewTicker(w.Interval)
	defer t.Stop()
	last := w.Progress()
	stalled := time.Duration(0) // how long the counter has stood still
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
			now := w.Progress()
			if now == last {
				stalled += w.Interval
				log.Error("the freeze core made no progress: withholding the watchdog ping", "progress", now, "stalled", stalled)
				if stalled == w.Interval && w.Withheld != nil {
					w.Withheld(now, stalled)
				}
				continue
			}
			last, stalled = now, 0
			if err := w.Notifier.Notify(sd.SdNotifyWatchdog); err != nil {
				log.Warn("watchdog ping failed", "err", err)
			}
		}
	}
}
