package persist

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// File modes: the state is the daemon's alone.
const (
	dirMode  = 0o700
	fileMode = 0o600
)

// tmpSuffix ends every file being created; Open removes leftovers, which
// are what a crash between create and rename leaves behind.
const tmpSuffix = ".tmp"

// syncDir fsyncs a directory, which makes the creations, renames and
// removals of its entries durable: without it a crash may forget a rename
// whose file content was itself fsynced.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// writeAtomic creates dir/name with the bytes write produces, so that
// dir/name either does not exist or holds all of them, even across a
// crash: temp file, write, fsync, close, rename, fsync of the directory.
// An existing dir/name is replaced.
func writeAtomic(dir, name string, write func(f *os.File) error) (err error) {
	f, err := os.CreateTemp(dir, "."+name+".*"+tmpSuffix)
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(fileMode); err != nil {
		return err
	}
	if err := write(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

// WriteFileAtomic writes data to dir/name with writeAtomic's guarantee:
// after a crash the file holds either its old bytes or all of data. For
// the daemon's small state files that live beside the journal.
func WriteFileAtomic(dir, name string, data []byte) error {
	return writeAtomic(dir, name, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// removeTemps deletes the leftovers of interrupted writeAtomic calls.
func removeTemps(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	removed := false
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), tmpSuffix) && e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			removed = true
		}
	}
	if removed {
		return syncDir(dir)
	}
	return nil
}

// freeName returns base if no such file exists in dir, else base.1,
// base.2, ...: repairs and fallbacks keep every earlier .broken copy.
func freeName(dir, base string) string {
	name := base
	for i := 1; ; i++ {
		if _, err := os.Lstat(filepath.Join(dir, name)); errors.Is(err, fs.ErrNotExist) {
			return name
		}
		name = fmt.Sprintf("%s.%d", base, i)
	}
}

// noSpace reports a write that failed because the file system is full or
// the quota is exhausted: the disk works, and the write can succeed later.
func noSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// probeWrite writes size bytes to a temp file in dir, fsyncs and deletes
// it: whether the file system has room again. A crash leaves only a temp
// file, which Open deletes.
func probeWrite(dir string, size int) (err error) {
	f, err := os.CreateTemp(dir, ".probe.*"+tmpSuffix)
	if err != nil {
		return err
	}
	defer func() {
		f.Close()
		if rerr := os.Remove(f.Name()); err == nil && rerr != nil {
			err = rerr
		}
	}()
	if _, err := f.Write(make([]byte, size)); err != nil {
		return err
	}
	return f.Sync()
}

// mkdirDurable is os.MkdirAll whose creations survive a crash: each
// directory it creates is an entry of its parent, so the parent is
// fsynced after it (sync, normally syncDir). Existing directories are
// left alone.
func mkdirDurable(dir string, sync func(string) error) error {
	if st, err := os.Stat(dir); err == nil {
		if !st.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirDurable(parent, sync); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, dirMode); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // made meanwhile by someone else, who syncs it
		}
		return err
	}
	return sync(parent)
}
