package secretfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestRead(t *testing.T) {
	t.Parallel()
	self := Self()
	gid := os.Getegid()
	others := Identity{UID: self.UID, Groups: []int{gid + 1000}} // the file's group is not among them
	secret := []byte("s3cret\n")
	tests := []struct {
		name  string
		mode  fs.FileMode
		setup func(t *testing.T, path string) string // returns the path to read; nil: path
		id    Identity
		want  error  // nil: accepted
		msg   string // a part of the error's text
	}{
		{name: "owner only", mode: 0o600, id: self},
		{name: "owner read-only", mode: 0o400, id: self},
		{name: "readable by others", mode: 0o644, id: self, want: ErrExposed, msg: "mode 0644"},
		{name: "readable by others only", mode: 0o604, id: self, want: ErrExposed, msg: "chmod o-rwx"},
		{name: "writable by others", mode: 0o602, id: self, want: ErrExposed, msg: "others may read or write"},
		{name: "group of the daemon", mode: 0o640, id: self},
		{name: "group not the daemon's", mode: 0o640, id: others, want: ErrExposed, msg: "not one of the daemon's groups"},
		{name: "group-writable, group not the daemon's", mode: 0o620, id: others, want: ErrExposed, msg: "chmod g-rwx"},
		{name: "through a symbolic link", mode: 0o600, id: self, setup: func(t *testing.T, path string) string {
			link := path + ".link"
			if err := os.Symlink(path, link); err != nil {
				t.Fatal(err)
			}
			return link
		}},
		{name: "a directory", mode: 0o600, id: self, want: ErrNotRegular, msg: "is a directory", setup: func(t *testing.T, path string) string {
			return filepath.Dir(path)
		}},
		{name: "a FIFO, without blocking", mode: 0o600, id: self, want: ErrNotRegular, msg: "FIFO", setup: func(t *testing.T, path string) string {
			fifo := path + ".fifo"
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			return fifo
		}},
		{name: "missing", mode: 0o600, id: self, want: fs.ErrNotExist, setup: func(t *testing.T, path string) string {
			return path + ".missing"
		}},
		{name: "too large", mode: 0o600, id: self, want: ErrTooLarge, setup: func(t *testing.T, path string) string {
			if err := os.WriteFile(path, make([]byte, MaxSize+1), 0o600); err != nil {
				t.Fatal(err)
			}
			return path
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "pw")
			if err := os.WriteFile(path, secret, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			read := path
			if tc.setup != nil {
				read = tc.setup(t, path)
			}
			got, err := read0(read, tc.id)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if !bytes.Equal(got, secret) {
					t.Fatalf("read %q, want %q", got, secret)
				}
				return
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), read) {
				t.Fatalf("error %v: want %v, naming %s and saying %q", err, tc.want, read, tc.msg)
			}
			if strings.Contains(err.Error(), strings.TrimSpace(string(secret))) {
				t.Fatalf("the error shows the secret: %v", err)
			}
		})
	}
}

func read0(path string, id Identity) ([]byte, error) { return read(path, id, true) }

// A file owned by another (non-root) user could be opened by that user
// at any time. Needs root to chown.
func TestOwnedByAnotherUser(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs the tests as root; this one needs it to chown a file")
		}
		t.Skip("needs root to chown a file to another user")
	}
	path := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 65534, 0); err != nil {
		t.Fatal(err)
	}
	_, err := read(path, Identity{UID: 0, Groups: []int{0}}, false)
	if !errors.Is(err, ErrExposed) || !strings.Contains(err.Error(), "owned by") {
		t.Fatalf("a file owned by uid 65534, read by root: %v, want ErrExposed naming the owner", err)
	}
	// The daemon's own user may own it.
	if _, err := read(path, Identity{UID: 65534, Groups: []int{65534}}, false); err != nil {
		t.Fatalf("a file owned by the daemon's user: %v", err)
	}
}

func TestCheckDoesNotKeepTheContent(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Check(path); !errors.Is(err, ErrExposed) {
		t.Fatalf("Check of a 0644 file: %v", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Check(path); err != nil {
		t.Fatalf("Check of a 0600 file: %v", err)
	}
}
