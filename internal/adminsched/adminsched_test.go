package adminsched

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// seeds is how many schedules a run plays: LOCKSTEP_ADMIN_SEEDS=N, or
// 3000 with LOCKSTEP_SOAK=1 (make soak), or 200 (make test), or 4 for a
// plain go test (-race included): each schedule is a lockstepd, a lab and
// a dbus-daemon for several seconds.
func seeds() (first, n uint64) {
	if s, err := strconv.ParseUint(os.Getenv("LOCKSTEP_ADMIN_SEED"), 10, 64); err == nil {
		return s, 1
	}
	first, _ = strconv.ParseUint(os.Getenv("LOCKSTEP_ADMIN_FIRST"), 10, 64)
	if v, err := strconv.ParseUint(os.Getenv("LOCKSTEP_ADMIN_SEEDS"), 10, 64); err == nil && v > 0 {
		return first, v
	}
	if os.Getenv("LOCKSTEP_SOAK") != "" {
		return first, 3000
	}
	return first, 4
}

// TestAdminSchedules plays seeded random schedules of admin commands
// (through lockstepd's D-Bus API) and storage faults, and fails on any
// violation of the checks of check.go or on an inconsistent round.
//
// A failing seed's report (violations, CG timeouts, sessions, steps,
// timeline) is written to $LOCKSTEP_FAILED_DIR (default
// $TMPDIR/lockstep-admin-schedules)/seed-N.txt, and lockstepd's log of
// the run is kept beside it (seed-N.lockstepd.log); the test prints both
// paths. Replay one seed alone with
//
//	LOCKSTEP_ADMIN_SEED=N go test -count=1 -run TestAdminSchedules -v ./internal/adminsched
//
// LOCKSTEP_ADMIN_SEEDS sets how many seeds run (from LOCKSTEP_ADMIN_FIRST,
// default 0).
func TestAdminSchedules(t *testing.T) {
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("dbus-daemon missing (make deps installs it)")
		}
		t.Skip("dbus-daemon missing")
	}
	failedDir := os.Getenv("LOCKSTEP_FAILED_DIR")
	if failedDir == "" {
		failedDir = filepath.Join(os.TempDir(), "lockstep-admin-schedules")
	}
	first, n := seeds()
	var (
		mu     sync.Mutex
		total  Result
		failed int
		wg     sync.WaitGroup
	)
	sem := make(chan struct{}, parallel())
	start := time.Now()
	root := t.TempDir()
	for seed := first; seed < first+n; seed++ {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			// Each seed's journal, bus and log go as soon as it is
			// judged: a soak runs thousands.
			dir := filepath.Join(root, fmt.Sprintf("seed-%d", seed))
			defer os.RemoveAll(dir)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Error(err)
				return
			}
			res, err := Run(context.Background(), Options{Seed: seed, Dir: dir})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("seed %d: the schedule could not run: %v\n%s", seed, err, res.Report())
				failed++
				return
			}
			total.Commands += res.Commands
			total.Refused += res.Refused
			total.Faults += res.Faults
			total.Consistent += res.Consistent
			total.Excused += res.Excused
			total.Inconsistent += res.Inconsistent
			total.Orphans += res.Orphans
			if !res.Failed() {
				return
			}
			failed++
			path, err := SaveFailure(failedDir, res)
			if err != nil {
				t.Errorf("seed %d: saving the report: %v", seed, err)
			}
			logPath := filepath.Join(failedDir, fmt.Sprintf("seed-%d.lockstepd.log", seed))
			if b, err := os.ReadFile(filepath.Join(dir, "lockstepd.log")); err == nil {
				_ = os.WriteFile(logPath, b, 0o644)
			}
			msg := fmt.Sprintf("seed %d: %d violations; report %s, lockstepd log %s; replay: LOCKSTEP_ADMIN_SEED=%d",
				seed, len(res.Violations), path, logPath, seed)
			for _, v := range res.Violations {
				msg += "\n  " + v.String()
			}
			t.Error(msg)
		})
	}
	wg.Wait()
	t.Logf("admin schedules: %d seeds (from %d) in %v, %d failed; %d admin commands (%d refused), %d faults; "+
		"%d rounds judged: %d consistent, %d inconsistent excused (blind without heartbeat), %d inconsistent; %d orphaned pairs",
		n, first, time.Since(start).Round(time.Second), failed, total.Commands, total.Refused, total.Faults,
		total.Consistent+total.Excused+total.Inconsistent, total.Consistent, total.Excused, total.Inconsistent, total.Orphans)
}

// parallel is how many schedules run at once (LOCKSTEP_ADMIN_PARALLEL,
// default 4): a schedule mostly waits for its storage timers, each costs
// a fraction of a core.
func parallel() int {
	if v, err := strconv.Atoi(os.Getenv("LOCKSTEP_ADMIN_PARALLEL")); err == nil && v > 0 {
		return v
	}
	return 4
}

func TestGenerateIsDeterministic(t *testing.T) {
	t.Parallel()
	for seed := range uint64(50) {
		a, b := Generate(seed).String(), Generate(seed).String()
		if a != b {
			t.Fatalf("seed %d: two plans differ:\n%s\n---\n%s", seed, a, b)
		}
	}
}
