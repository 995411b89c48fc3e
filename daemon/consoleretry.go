package daemon

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/lockstep-io/lockstep/daemon/registry"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// An HMC connection whose console did not open (its password file
// unreadable, the factory refusing the definition, the drivers not
// started) is opened again on the injected clock with backoff, as the
// drivers redial an HMC (drivers/hmc Backoff), rather than only on the
// next registry change: on an active server nothing else would bring it
// back. Each distinct error is logged once, not once per attempt.

// The pauses between attempts: first, doubling, capped.
const (
	consoleRetryFirst = 500 * time.Millisecond
	consoleRetryLimit = 30 * time.Second
)

// consoleRetry is the state of one HMC connection's retries.
type consoleRetry struct {
	key     string // the definition that failed; another one is tried at once
	attempt int    // failed attempts so far
	err     error  // the last failure
	logged  string // the last failure logged
	timer   clock.Timer
	due     bool // the timer fired: the next console() call opens
}

// consoleBackoff is the pause after the attempt-th failure, attempt >= 1.
func consoleBackoff(attempt int) time.Duration {
	d := consoleRetryFirst
	for i := 1; i < attempt && d < consoleRetryLimit; i++ {
		d *= 2
	}
	return min(d, consoleRetryLimit)
}

// consoleFailed records a failed open of HMC connection name's console
// (definition key) and arms its next attempt.
func (ds *storageDrivers) consoleFailed(name, key string, err error) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.closed || ds.life == nil || errors.Is(err, errNotRunning) {
		return // the start (or nothing) opens it
	}
	r := ds.retries[name]
	if r == nil || r.key != key {
		if r != nil {
			r.timer.Stop()
		}
		r = &consoleRetry{key: key}
		ds.retries[name] = r
	}
	r.attempt++
	r.err, r.due = err, false
	pause := consoleBackoff(r.attempt)
	if msg := err.Error(); msg != r.logged {
		r.logged = msg
		ds.log.Error("HMC connection not opened; retrying with backoff", "hmc", name, "err", err,
			"attempt", r.attempt, "retry_in", pause.String())
	}
	if r.timer != nil {
		r.timer.Stop()
	}
	r.timer = ds.clock.AfterFunc(pause, func() {
		ds.mu.Lock()
		if ds.retries[name] != r {
			ds.mu.Unlock()
			return
		}
		r.due = true
		life := ds.life
		ds.mu.Unlock()
		// Off the clock's goroutine: reopening drivers and handing them
		// to the core takes time.
		ds.goBackground(func(context.Context) { ds.retryConsole(life, name) })
	})
}

// consoleOpened ends HMC connection name's retries.
func (ds *storageDrivers) consoleOpened(name string) {
	ds.mu.Lock()
	r := ds.retries[name]
	delete(ds.retries, name)
	ds.mu.Unlock()
	if r != nil {
		r.timer.Stop()
		ds.log.Info("HMC connection opened after failed attempts", "hmc", name, "attempts", r.attempt)
	}
}

// retryConsole is one attempt to open HMC connection name's console. If
// it opens, the systems behind it are connected through it: those that
// had no driver (it was their only usable connection), and those opened
// without it, which are opened again; the acting core gets the drivers.
func (ds *storageDrivers) retryConsole(ctx context.Context, name string) {
	reg := ds.store.Registry()
	h, ok := reg.HMC(name)
	if !ok {
		return
	}
	if _, err := ds.console(h); err != nil {
		return // consoleFailed armed the next attempt
	}
	for serial, d := range ds.snapshot() {
		uses := slices.ContainsFunc(reg.Connections(serial), func(c registry.Connection) bool { return c.HMC == name })
		has := slices.ContainsFunc(d.parts, func(p part) bool { return p.conn.HMC == name })
		if uses && !has {
			ds.remove(serial)
		}
	}
	ds.reconcile()
	if d := ds.acting.current(); d != nil {
		systems := ds.systems()
		d.engine.SetSystems(systems)
		if err := d.core.SetSystems(ctx, systems); err != nil && ctx.Err() == nil {
			ds.log.Error("freeze core: storage systems", "err", err)
		}
	}
}
