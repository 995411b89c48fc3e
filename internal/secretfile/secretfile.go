package secretfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"slices"
	"strconv"
	"syscall"
)

// MaxSize bounds a secret file: a password, a passphrase or a PEM key is
// far smaller.
const MaxSize = 1 << 20

// Errors. Each refusal wraps one of them.
var (
	// ErrExposed: the file's mode or owner lets someone other than the
	// daemon's user and groups read or change it.
	ErrExposed = errors.New("secretfile: secret file readable or writable by others")
	// ErrNotRegular: not a regular file (a directory, FIFO, device).
	ErrNotRegular = errors.New("secretfile: not a regular file")
	// ErrTooLarge: more than MaxSize bytes.
	ErrTooLarge = errors.New("secretfile: file too large for a secret")
)

// Identity is who reads a secret: the process's effective user and
// groups. The zero value is not useful; Self gives the process's own.
type Identity struct {
	UID    int
	Groups []int // the effective gid and the supplementary groups
}

// Self is the identity of this process.
func Self() Identity {
	groups, _ := os.Getgroups() // on error: the effective gid alone, the stricter rule
	return Identity{UID: os.Geteuid(), Groups: append(groups, os.Getegid())}
}

// Read checks path against the rules (see the package doc) as this
// process and returns its content.
func Read(path string) ([]byte, error) { return read(path, Self(), true) }

// Check is Read without keeping the content: the file is opened and read
// to its end, so an unreadable one is refused too.
func Check(path string) error {
	_, err := read(path, Self(), false)
	return err
}

func read(path string, id Identity, keep bool) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
	// writer, and the daemon with it.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("secret file: %w", err) // a PathError: it names the file
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secret file %s: %w", path, err)
	}
	if err := id.check(path, st); err != nil {
		return nil, err
	}
	if st.Size() > MaxSize {
		return nil, fmt.Errorf("%w: %s holds %d bytes, at most %d", ErrTooLarge, path, st.Size(), MaxSize)
	}
	var sink io.Writer = io.Discard
	var buf []byte
	if keep {
		buf = make([]byte, 0, st.Size())
		sink = (*appender)(&buf)
	}
	n, err := io.Copy(sink, io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("secret file %s: %w", path, err)
	}
	if n > MaxSize {
		return nil, fmt.Errorf("%w: %s holds more than %d bytes", ErrTooLarge, path, MaxSize)
	}
	return buf, nil
}

type appender []byte

func (a *appender) Write(p []byte) (int, error) {
	*a = append(*a, p...)
	return len(p), nil
}

// check applies the rules of the package doc to the file's metadata.
func (id Identity) check(path string, st fs.FileInfo) error {
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is a %s", ErrNotRegular, path, kind(st.Mode()))
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%w: %s: cannot read its owner and group", ErrExposed, path)
	}
	uid, gid := int(sys.Uid), int(sys.Gid)
	perm := st.Mode().Perm()
	desc := fmt.Sprintf("%s (owner %s, group %s, mode %04o)", path, userName(uid), groupName(gid), perm)
	switch {
	case perm&0o006 != 0:
		return fmt.Errorf("%w: %s: others may read or write it; run: chmod o-rwx %s", ErrExposed, desc, path)
	case perm&0o060 != 0 && !slices.Contains(id.Groups, gid):
		return fmt.Errorf("%w: %s: group %s may read or write it and is not one of the daemon's groups; "+
			"run: chmod g-rwx %s, or chgrp it to the daemon's group", ErrExposed, desc, groupName(gid), path)
	case uid != 0 && uid != id.UID:
		return fmt.Errorf("%w: %s: owned by %s, who could open it to anyone; "+
			"run: chown root %s (or the daemon's user)", ErrExposed, desc, userName(uid), path)
	}
	return nil
}

func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// userName and groupName are for messages: the name and the number, or
// the number alone when the name is unknown.
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("%s (%d)", u.Username, uid)
	}
	return strconv.Itoa(uid)
}

func groupName(gid int) string {
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
		return fmt.Sprintf("%s (%d)", g.Name, gid)
	}
	return strconv.Itoa(gid)
}
