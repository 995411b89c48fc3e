package scenario

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// seeds is how many random schedules a run checks: 200 (CI), 5000 with
// LOCKSTEP_SOAK=1 (make soak), or LOCKSTEP_SEEDS=N; 20 under -race.
func seeds() int {
	if n, err := strconv.Atoi(os.Getenv("LOCKSTEP_SEEDS")); err == nil && n > 0 {
		return n
	}
	switch {
	case os.Getenv("LOCKSTEP_SOAK") != "":
		return 5000
	case raceEnabled:
		return 20
	}
	return 200
}

// TestRandomSchedules: with the heartbeat on and valid timings, no
// schedule of faults may leave an inconsistent secondary image, and the
// core's Recoverable never says yes for one.
func TestRandomSchedules(t *testing.T) {
	n := seeds()
	inconsistent := 0
	for seed := range uint64(n) {
		synctest.Test(t, func(t *testing.T) {
			r, faults, err := RunSchedule(context.Background(), Options{Heartbeat: true, Seed: seed,
				Think: 200 * time.Millisecond, After: 200 * time.Second, ReleaseIO: seed%2 == 1})
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			if !r.Consistent() || (r.Recoverable && !r.Consistent()) {
				inconsistent++
				t.Errorf("seed %d: %s (recoverable=%v)\nfaults: %v\nreplay: %s\n%s", seed, r.Report, r.Recoverable,
					faults, Replay(seed), strings.Join(r.Timeline, "\n"))
			}
		})
	}
	t.Logf("%d random schedules, %d inconsistent images", n, inconsistent)
}

func TestScheduleIsDeterministic(t *testing.T) {
	t.Parallel()
	for seed := range uint64(50) {
		a, b := Schedule(seed, 200*time.Millisecond), Schedule(seed, 200*time.Millisecond)
		if len(a) == 0 || len(a) != len(b) {
			t.Fatalf("seed %d: %v vs %v", seed, a, b)
		}
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("seed %d differs: %v vs %v", seed, a, b)
			}
		}
	}
}

// TestSchedulesIncludeHMCFaults: of the CI's 200 seeds, half run behind a
// dual HMC, and those draw HMC deaths and private-link failures, some of
// them black holes.
func TestSchedulesIncludeHMCFaults(t *testing.T) {
	t.Parallel()
	runs, kinds, blackholes := 0, map[string]int{}, 0
	for seed := range uint64(200) {
		if !ViaHMCs(seed) {
			continue
		}
		runs++
		for _, f := range Schedule(seed, 200*time.Millisecond) {
			kinds[f.Kind]++
			if f.Kind == "hmc-link" && f.Blackhole && !f.Up {
				blackholes++
			}
		}
	}
	if runs != 100 || kinds["hmc"] < 20 || kinds["hmc-link"] < 20 || blackholes < 8 {
		t.Fatalf("%d seeds behind a dual HMC, faults %v (%d private links black-holed)", runs, kinds, blackholes)
	}
}

// TestSchedulesIncludeZOSFaults: of the CI's 200 seeds, half run with a
// z/OS host that has every system online, and those draw the host's
// death and channel failures.
func TestSchedulesIncludeZOSFaults(t *testing.T) {
	t.Parallel()
	runs, kinds := 0, map[string]int{}
	for seed := range uint64(200) {
		if !WithZOS(seed) {
			continue
		}
		runs++
		for _, f := range Schedule(seed, 200*time.Millisecond) {
			kinds[f.Kind]++
		}
	}
	if runs != 100 || kinds["zos"] < 15 || kinds["channel"] < 15 {
		t.Fatalf("%d seeds with a z/OS host, faults %v", runs, kinds)
	}
}
