package notify

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/lockstep-io/lockstep/daemon/config"
)

// An SNMPv3 engine is authoritative for the traps it sends: receivers
// know its users by (engine ID, user), so the engine ID must not change
// across restarts, and its boot counter must rise at every start, or a
// receiver that saw a later engine time takes new traps for replays.
//
// On disk (snmp.engine_id_file, default state_dir/snmp-engine-id):
//
//	engine_id_file         the engine ID, raw bytes (RFC 3411 SnmpEngineID):
//	                       0x80 | enterprise number (4 bytes, big endian),
//	                       format 5 (administratively assigned octets),
//	                       8 random bytes: 13 bytes in all
//	engine_id_file.boots   snmpEngineBoots in decimal, one more at each start
//
// Both are written whole to a temporary file that is then renamed, with
// mode 0600, so a crash leaves the old content or the new, never a mix.

// ErrEngineID reports an engine ID file that cannot be used.
var ErrEngineID = errors.New("notify: snmp engine id")

// maxEngineBoots is where snmpEngineBoots stops (RFC 3414 2.2.2).
const maxEngineBoots = 2147483647

// defaultPEN is the enterprise number used in engine IDs when the
// configured prefix is not under enterprises.
const defaultPEN = 61942

// engine is this server's SNMPv3 identity.
type engine struct {
	id    []byte
	boots uint32
}

// loadEngine reads the engine ID, creating it on first use, and counts
// one more boot.
func loadEngine(path string, prefix config.OID, random io.Reader) (engine, error) {
	id, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		id = newEngineID(penOf(prefix), random)
		if id == nil {
			return engine{}, fmt.Errorf("%w: no randomness for a new one", ErrEngineID)
		}
		if err := writeFileAtomic(path, id); err != nil {
			return engine{}, fmt.Errorf("%w: creating %s: %w", ErrEngineID, path, err)
		}
	case err != nil:
		return engine{}, fmt.Errorf("%w: %w", ErrEngineID, err)
	case len(id) < 5 || len(id) > 32:
		// Not regenerated: receivers are configured with the old one, and
		// an operator should know it changed.
		return engine{}, fmt.Errorf("%w: %s holds %d bytes, an engine ID has 5 to 32 (remove the file to get a new one)",
			ErrEngineID, path, len(id))
	}
	boots, err := nextBoots(path + ".boots")
	if err != nil {
		return engine{}, err
	}
	return engine{id: id, boots: boots}, nil
}

// newEngineID builds an RFC 3411 engine ID of format 5 with 8 random
// octets; nil when random fails.
func newEngineID(pen uint32, random io.Reader) []byte {
	id := binary.BigEndian.AppendUint32(nil, 0x80000000|pen)
	id = append(id, 5)
	tail := make([]byte, 8)
	if _, err := io.ReadFull(random, tail); err != nil {
		return nil
	}
	return append(id, tail...)
}

// penOf is the private enterprise number of a prefix under
// 1.3.6.1.4.1, or defaultPEN.
func penOf(prefix config.OID) uint32 {
	enterprises := config.OID{1, 3, 6, 1, 4, 1}
	if len(prefix) > len(enterprises) && slices.Equal(prefix[:len(enterprises)], enterprises) && prefix[6] < 1<<31 {
		return prefix[6]
	}
	return defaultPEN
}

// nextBoots reads the boot counter, adds one and stores it.
func nextBoots(path string) (uint32, error) {
	var boots uint64
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return 0, fmt.Errorf("%w: %w", ErrEngineID, err)
	default:
		boots, err = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 31)
		if err != nil {
			return 0, fmt.Errorf("%w: %s: not a boot counter: %w", ErrEngineID, path, err)
		}
	}
	if boots < maxEngineBoots {
		boots++
	}
	data := []byte(strconv.FormatUint(boots, 10) + "\n")
	err = writeFileAtomic(path, data)
	if err != nil && b != nil && (errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)) {
		// A full disk has no room for a new file, but the counter's own
		// block is there: rewrite it in place (a few bytes in one
		// sector), so that the daemon still starts and reports the full
		// disk instead of failing at every start.
		err = overwrite(path, data)
	}
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrEngineID, path, err)
	}
	return uint32(boots), nil
}

// overwrite replaces the content of the existing file path with data in
// place, and fsyncs it.
func overwrite(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(data, 0)
	if err == nil {
		err = f.Truncate(int64(len(data)))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeFileAtomic replaces path with data: temporary file, fsync, rename,
// directory fsync.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing left to remove
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
