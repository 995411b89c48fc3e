//go:build !linux

package persist

import "os"

// syncData makes the file's data durable (fsync where fdatasync is not
// available).
func syncData(f *os.File) error { return f.Sync() }
