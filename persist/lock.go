package persist

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockName is the lock file in the state directory. Its content, the pid
// of the holder, is only a hint for the error message: the lock is the
// flock(2) on it, which the kernel releases when the holder dies, so a
// crashed daemon never leaves a stale lock behind.
const lockName = "LOCK"

// dirLock is an exclusive flock on dir/LOCK.
//
// flock locks belong to the open file, which a fork shares until the
// child's exec closes it (O_CLOEXEC): a process that forks while it
// closes and at once reopens a directory can find its own lock still
// held for that instant. lockstepd does neither; tests that re-execute
// the test binary run alone (crash_test.go).
type dirLock struct {
	f   *os.File
	dir string
}

// lockDir takes the lock of dir without waiting. A second holder, even in
// the same process (flock locks belong to open files, not processes), gets
// ErrLocked naming the directory and, if it could read it, the holder's
// pid.
func lockDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return nil, fmt.Errorf("persist: lock %s: %w", dir, err)
	}
	if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := "another process"
			if b, rerr := os.ReadFile(path); rerr == nil {
				if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
					holder = fmt.Sprintf("another process (pid %d)", pid)
				}
			}
			return nil, fmt.Errorf("%w: %s is in use by %s; stop it first (only one lockstepd may use a state directory)",
				ErrLocked, dir, holder)
		}
		return nil, fmt.Errorf("persist: lock %s: %w", path, err)
	}
	// Best effort: the pid only improves the message of the next locker.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dirLock{f: f, dir: dir}, nil
}

// unlock releases the lock. It unlocks explicitly before closing: a
// process forked meanwhile (another test's or a hook's exec) holds a copy
// of the descriptor until its exec closes it, and the flock, which
// belongs to the open file description, would outlive our close by that
// window; LOCK_UN ends it for every copy at once.
func (l *dirLock) unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	uerr := flock(l.f, syscall.LOCK_UN)
	err := errors.Join(uerr, l.f.Close())
	l.f = nil
	return err
}

func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	err = rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Flock(int(fd), how)
			if ferr != syscall.EINTR {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return ferr
}
