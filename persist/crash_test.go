package persist

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
)

// The crash test runs the journal in a child process (this test binary,
// re-executed with -test.run=^TestCrashChild$) that appends from several
// goroutines and prints every acknowledged index; the parent kills it
// with SIGKILL at a random point of its progress, reopens the journal and
// checks every acknowledged record. The children share one directory,
// so each starts from what the previous kill left.

const (
	crashDirEnv = "LOCKSTEP_PERSIST_CRASH_DIR"
	crashRunEnv = "LOCKSTEP_PERSIST_CRASH_RUN"
)

// crashOptions: small segments, so that kills land around rollovers
// too; four snapshots kept, so that compaction (which the kills also
// hit) deletes records only some runs after they were acknowledged and
// the parent has checked their payloads.
var crashOptions = Options{SegmentSize: 16 << 10, SnapshotsKept: 4}

// crashPayload is what writer w of run puts in its k-th record: up to
// 2 KiB, so that batches span pages and a kill can tear one.
func crashPayload(run, w, k int) []byte {
	n := (run*7919 + w*104729 + k*1299709) % 2048
	p := []byte(fmt.Sprintf("%d/%d/%d|", run, w, k))
	for i := range n {
		p = append(p, byte('a'+(k+i)%26))
	}
	return p
}

// TestCrashChild is the child's side; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("the child of TestCrash")
	}
	run, _ := strconv.Atoi(os.Getenv(crashRunEnv))
	// If the parent goes away, so does the child.
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	j, err := Open(dir, crashOptions)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open:", err)
		os.Exit(3)
	}
	var mu sync.Mutex
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		// One write per line: a kill never splits one.
		if _, err := os.Stdout.WriteString(fmt.Sprintf(format, a...)); err != nil {
			os.Exit(0)
		}
	}
	// Snapshots and compaction under kills too: one goroutine snapshots
	// the last index whenever an index crosses a multiple of 64.
	snap := make(chan struct{}, 1)
	go func() {
		for range snap {
			last := j.LastIndex()
			if err := j.Snapshot(last, []byte(fmt.Sprintf("snap %d", last))); err != nil {
				fmt.Fprintln(os.Stderr, "child: snapshot:", err)
				os.Exit(5)
			}
		}
	}()
	const writers = 8
	for w := range writers {
		go func() {
			for k := 0; ; k++ {
				i, err := j.Append(context.Background(), crashPayload(run, w, k))
				if err != nil {
					fmt.Fprintln(os.Stderr, "child: append:", err)
					os.Exit(4)
				}
				say("ack %d %d %d\n", i, w, k)
				if i%64 == 0 {
					select {
					case snap <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	select {}
}

func TestCrash(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("in the child")
	}
	// Not parallel: a child between fork and exec holds a copy of every
	// descriptor of this process, directory locks included (lock.go),
	// which would make another test's reopen fail with ErrLocked.
	kills := 200
	switch {
	case os.Getenv("LOCKSTEP_SOAK") == "1":
		kills = 3000
	case testing.Short():
		kills = 20
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0xc4a5))
	dir := t.TempDir()

	// Every acknowledged record still in the journal's segments: each
	// reopen checks them all again, not only the last run's.
	acked := map[uint64]*ackedRecord{}
	var totalAcked, recovered, covered, immediate, snapshots int
	for run := range kills {
		// Acks to wait for before the kill; one run in ten is killed at
		// once, during start-up or recovery.
		target := 1 + rng.IntN(120)
		if rng.IntN(10) == 0 {
			target = 0
		}
		acks := crashRun(t, dir, run, target, acked)
		totalAcked += acks
		if target == 0 {
			immediate++
		}

		j, err := Open(dir, crashOptions)
		if err != nil {
			t.Fatalf("run %d: reopen after the kill: %v", run, err)
		}
		first, last := j.FirstIndex(), j.LastIndex()
		snap, haveSnap, err := j.LatestSnapshot()
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if haveSnap {
			snapshots++
			if want := fmt.Sprintf("snap %d", snap.Index); string(snap.State) != want {
				t.Fatalf("run %d: snapshot at %d holds %q", run, snap.Index, snap.State)
			}
		}
		for i, a := range acked {
			switch {
			case i > last:
				t.Fatalf("run %d: acknowledged record %d lost: the journal ends at %d", run, i, last)
			case i < first && (!haveSnap || i > snap.Index):
				t.Fatalf("run %d: acknowledged record %d compacted, but the snapshot is at %d", run, i, snap.Index)
			case i < first:
				// Covered by the snapshot: nothing more to check.
				if !a.checked {
					covered++
				}
				delete(acked, i)
			}
		}
		// Every record in order (the reader checks the chain), acknowledged
		// ones with their payload.
		r, err := j.ReadFrom(first)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		for i := first; i <= last; i++ {
			e, err := r.Next(context.Background())
			if err != nil || e.Index != i {
				t.Fatalf("run %d: record %d: got %d, %v", run, i, e.Index, err)
			}
			if a, ok := acked[i]; ok {
				if !bytes.Equal(e.Payload, a.payload) {
					t.Fatalf("run %d: record %d = %.40q..., acknowledged as %.40q...", run, i, e.Payload, a.payload)
				}
				if !a.checked {
					recovered++
					a.checked = true
				}
			}
		}
		r.Close()
		j.Close()
	}
	torn := len(brokenFiles(t, dir))
	t.Logf("crash test: %d kills (%d before any ack), %d records acknowledged, %d recovered with their payload "+
		"(re-checked at every later reopen while in the segments), %d covered by a snapshot before the first reopen, "+
		"%d torn tails repaired, %d reopens found a snapshot",
		kills, immediate, totalAcked, recovered, covered, torn, snapshots)
	if recovered+covered != totalAcked {
		t.Errorf("%d acknowledged, %d recovered + %d covered by snapshots", totalAcked, recovered, covered)
	}
}

type ackedRecord struct {
	payload []byte
	checked bool
}

// crashRun starts a child, kills it once it has acknowledged target
// records, and adds every record it acknowledged to acked.
func crashRun(t *testing.T, dir string, run, target int, acked map[uint64]*ackedRecord) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashRunEnv+"="+strconv.Itoa(run))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	kill := func() {
		if !killed {
			cmd.Process.Kill() // SIGKILL
			killed = true
		}
	}
	if target == 0 {
		kill()
	}
	n := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var i uint64
		var w, k int
		if _, err := fmt.Sscanf(sc.Text(), "ack %d %d %d", &i, &w, &k); err != nil {
			kill()
			t.Fatalf("run %d: child said %q", run, sc.Text())
		}
		// Printed after Append returned: acknowledged, even if the kill
		// came before the parent read it.
		acked[i] = &ackedRecord{payload: crashPayload(run, w, k)}
		n++
		if n >= target {
			kill()
		}
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("run %d: child ended by itself (%v): %s", run, err, stderr.String())
	}
	return n
}
