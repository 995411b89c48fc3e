package notify

import (
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestEngineErrorsKeepTheirCause: the engine ID's errors wrap both
// ErrEngineID and the file system's error (issue 14 §4: "%w: %v" cut the
// inner chain).
func TestEngineErrorsKeepTheirCause(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		dir  func(t *testing.T, path string) // makes path unreadable as a file
	}{
		{"engine ID is a directory", func(t *testing.T, path string) { mkdir(t, path) }},
		{"boot counter is a directory", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("\x80\x00\xf1\xf6\x05abcdefgh"), 0o600); err != nil {
				t.Fatal(err)
			}
			mkdir(t, path+".boots")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "engine-id")
			tc.dir(t, path)
			_, err := loadEngine(path, nil, rand.Reader)
			if !errors.Is(err, ErrEngineID) || !errors.Is(err, syscall.EISDIR) {
				t.Errorf("loadEngine: %v; want an error matching ErrEngineID and EISDIR", err)
			}
		})
	}
}

func mkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
}
