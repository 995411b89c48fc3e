package persist

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// TestNewDirectoriesAreDurable: a directory the store creates (the state
// directory's missing parents, journal/, backups/) is an entry of its
// parent, durable only once the parent is fsynced (issue 13 §3).
func TestNewDirectoriesAreDurable(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	var mu sync.Mutex
	var synced []string
	opts := Options{syncDir: func(dir string) error {
		mu.Lock()
		synced = append(synced, dir)
		mu.Unlock()
		return syncDir(dir)
	}}
	state := filepath.Join(root, "a", "state")
	s, err := OpenStore(state, tallyCodec, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Propose(context.Background(), add("s1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateBackup(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, parent := range []string{
		root,                     // of a/
		filepath.Join(root, "a"), // of state/
		state,                    // of journal/ and of backups/
	} {
		if !slices.Contains(synced, parent) {
			t.Errorf("%s, the parent of a new directory, was not fsynced; fsynced: %q", parent, synced)
		}
	}
	if n := countOf(synced, state); n < 2 {
		t.Errorf("the state directory was fsynced %d times, want one after journal/ and one after backups/", n)
	}
}

func countOf(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}
