package persist

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Backups (doc.go has the format): a zip in <state dir>/backups holding
// state.json, the store's state, and manifest.json, which describes the
// backup and carries the SHA-256 of state.json. Reading one is bounded
// everywhere: members are read through a limit, never trusting the sizes
// the zip declares.

const (
	backupFormat  = "lockstep-backup"
	backupVersion = 1
	manifestName  = "manifest.json"
	stateName     = "state.json"
	backupSuffix  = ".zip"

	maxManifestSize = 1 << 20
	maxStateSize    = 256 << 20
	// maxBackupFile bounds the zip file itself: stored members plus zip
	// overhead.
	maxBackupFile = maxStateSize + maxManifestSize + 1<<20
)

// memberLimit is the largest size each known member may have.
var memberLimit = map[string]int64{manifestName: maxManifestSize, stateName: maxStateSize}

// Manifest describes a backup.
type Manifest struct {
	Format    string    `json:"format"`     // "lockstep-backup"
	Version   int       `json:"version"`    // 1
	Epoch     uint64    `json:"epoch"`      // the HA epoch when it was taken (0: unknown)
	LastIndex uint64    `json:"last_index"` // the last journal record in the state
	Created   time.Time `json:"created"`    // on the daemon's clock, UTC
	Members   []Member  `json:"members"`    // every other member of the zip
}

// Member is one file of a backup other than the manifest.
type Member struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // lower-case hex
}

// BackupInfo is a backup file and its manifest.
type BackupInfo struct {
	Path string
	Size int64 // of the zip file
	Manifest
	// Err is set by ListBackups for a file whose manifest does not read
	// (then only Path and Size are set). Such files are never pruned.
	Err error
}

func backupsDir(dir string) string { return filepath.Join(dir, backupsDirName) }

// CreateBackup writes a backup of the current state into the state
// directory's backups/ folder, atomically (temp file, fsync, rename,
// directory fsync), then prunes backups older than
// Options.BackupRetention, never the newest. epoch goes into the manifest
// (0 when unknown).
func (s *Store[S, R]) CreateBackup(ctx context.Context, epoch uint64) (BackupInfo, error) {
	if err := ctx.Err(); err != nil {
		return BackupInfo{}, err
	}
	s.backupMu.Lock()
	defer s.backupMu.Unlock()
	s.gate.RLock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.gate.RUnlock()
		return BackupInfo{}, ErrClosed
	}
	st, index := s.cur.Clone(), s.index
	s.mu.Unlock()
	s.gate.RUnlock()

	state, err := st.Snapshot()
	if err != nil {
		return BackupInfo{}, err
	}
	now := s.opts.Clock.Now().UTC()
	m := Manifest{Format: backupFormat, Version: backupVersion, Epoch: epoch, LastIndex: index, Created: now}
	info, err := writeBackup(backupsDir(s.dir), m, state, s.opts.syncDir)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("persist: backup: %w", err)
	}
	s.log.Info("backup created", "msg_id", MsgBackupCreated, "file", info.Path, "last_index", index, "epoch", epoch)
	if _, err := s.PruneBackups(); err != nil {
		return info, fmt.Errorf("persist: backup written to %s, but pruning old ones failed: %w", info.Path, err)
	}
	return info, nil
}

// writeBackup writes the zip into dir under a name made of the creation
// time and the last index.
func writeBackup(dir string, m Manifest, state []byte, sync func(string) error) (BackupInfo, error) {
	if err := mkdirDurable(dir, sync); err != nil {
		return BackupInfo{}, err
	}
	sum := sha256.Sum256(state)
	m.Members = []Member{{Name: stateName, Size: int64(len(state)), SHA256: hex.EncodeToString(sum[:])}}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return BackupInfo{}, err
	}
	base := fmt.Sprintf("lockstep-%s-%d", m.Created.Format("20060102T150405Z"), m.LastIndex)
	name := base + backupSuffix
	for i := 2; ; i++ { // CreateBackup is serialized: check, then create
		if _, err := os.Lstat(filepath.Join(dir, name)); errors.Is(err, fs.ErrNotExist) {
			break
		}
		name = fmt.Sprintf("%s-%d%s", base, i, backupSuffix)
	}
	var size int64
	err = writeAtomic(dir, name, func(f *os.File) error {
		zw := zip.NewWriter(f)
		for _, mem := range []struct {
			name string
			b    []byte
		}{{manifestName, mb}, {stateName, state}} {
			w, err := zw.CreateHeader(&zip.FileHeader{Name: mem.name, Method: zip.Deflate, Modified: m.Created})
			if err != nil {
				return err
			}
			if _, err := w.Write(mem.b); err != nil {
				return err
			}
		}
		if err := zw.Close(); err != nil {
			return err
		}
		fi, err := f.Stat()
		size = fi.Size()
		return err
	})
	if err != nil {
		return BackupInfo{}, err
	}
	return BackupInfo{Path: filepath.Join(dir, name), Size: size, Manifest: m}, nil
}

// badBackup builds an ErrBadBackup naming what is wrong.
func badBackup(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrBadBackup, fmt.Sprintf(format, a...))
}

// unsafeName reports a member name that could escape an extraction
// directory or means something else on another system.
func unsafeName(name string) bool {
	return name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") ||
		strings.Contains(name, ":") || slices.Contains(strings.Split(name, "/"), "..")
}

// readBackup verifies a backup read from ra (size bytes): the zip's
// members are exactly the manifest and the members it lists, every name
// safe, every size within bounds, the format and version known and every
// checksum right. It returns the manifest and the state bytes; nothing
// else is trusted before all of that holds.
func readBackup(ra io.ReaderAt, size int64) (Manifest, []byte, error) {
	if size > maxBackupFile {
		return Manifest{}, nil, badBackup("%d bytes, more than a backup can hold (%d)", size, maxBackupFile)
	}
	zr, err := zip.NewReader(ra, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return Manifest{}, nil, badBackup("not a readable zip: %v", err)
	}
	if zr == nil {
		return Manifest{}, nil, badBackup("not a readable zip: %v", err)
	}
	files := make(map[string]*zip.File, len(zr.File))
	for _, f := range zr.File {
		switch limit, known := memberLimit[f.Name]; {
		case unsafeName(f.Name):
			return Manifest{}, nil, badBackup("unsafe member name %q", f.Name)
		case !known:
			return Manifest{}, nil, badBackup("unknown member %q", f.Name)
		case files[f.Name] != nil:
			return Manifest{}, nil, badBackup("member %q twice", f.Name)
		case f.UncompressedSize64 > uint64(limit):
			return Manifest{}, nil, badBackup("member %q of %d bytes (at most %d)", f.Name, f.UncompressedSize64, limit)
		}
		files[f.Name] = f
	}
	mf := files[manifestName]
	if mf == nil {
		return Manifest{}, nil, badBackup("no %s", manifestName)
	}
	mb, err := readMember(mf)
	if err != nil {
		return Manifest{}, nil, err
	}
	var m Manifest
	if err := decodeStrict(mb, &m); err != nil {
		return Manifest{}, nil, badBackup("%s: %v", manifestName, err)
	}
	if m.Format != backupFormat || m.Version != backupVersion {
		return Manifest{}, nil, badBackup("format %q version %d, this build reads %q version %d",
			m.Format, m.Version, backupFormat, backupVersion)
	}
	// The manifest lists every other member once, and only those.
	if len(m.Members) != len(files)-1 {
		return Manifest{}, nil, badBackup("manifest lists %d members, the zip holds %d besides it", len(m.Members), len(files)-1)
	}
	contents := make(map[string][]byte, len(m.Members))
	for _, mem := range m.Members {
		f := files[mem.Name]
		if mem.Name == manifestName || f == nil || contents[mem.Name] != nil {
			return Manifest{}, nil, badBackup("manifest member %q: not in the zip, or listed twice", mem.Name)
		}
		b, err := readMember(f)
		if err != nil {
			return Manifest{}, nil, err
		}
		sum := sha256.Sum256(b)
		if int64(len(b)) != mem.Size || hex.EncodeToString(sum[:]) != mem.SHA256 {
			return Manifest{}, nil, badBackup("member %q: checksum mismatch (%d bytes, sha256 %x; manifest says %d bytes, %s)",
				mem.Name, len(b), sum, mem.Size, mem.SHA256)
		}
		contents[mem.Name] = b
	}
	state := contents[stateName]
	if state == nil {
		return Manifest{}, nil, badBackup("no %s", stateName)
	}
	return m, state, nil
}

// readMember reads a member through its size limit: the sizes a zip
// declares may lie, a decompressor's output may not exceed the limit.
func readMember(f *zip.File) ([]byte, error) {
	limit := memberLimit[f.Name]
	rc, err := f.Open()
	if err != nil {
		return nil, badBackup("member %q: %v", f.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, badBackup("member %q: %v", f.Name, err)
	}
	if int64(len(b)) > limit {
		return nil, badBackup("member %q: more than %d bytes", f.Name, limit)
	}
	return b, nil
}

// loadBackup reads and verifies the backup at path, state included (it
// must load as the store's state: codec.Load).
func loadBackup[S StateMachine[S, R], R any](path string, codec Codec[S, R]) (BackupInfo, []byte, S, error) {
	var none S
	f, err := os.Open(path)
	if err != nil {
		return BackupInfo{}, nil, none, fmt.Errorf("persist: backup: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return BackupInfo{}, nil, none, fmt.Errorf("persist: backup: %w", err)
	}
	m, b, err := readBackup(f, fi.Size())
	if err != nil {
		return BackupInfo{}, nil, none, fmt.Errorf("%s: %w", path, err)
	}
	st, err := codec.Load(b)
	if err != nil {
		return BackupInfo{}, nil, none, fmt.Errorf("%s: %w: %w", path, badBackup("%s does not load", stateName), err)
	}
	return BackupInfo{Path: path, Size: fi.Size(), Manifest: m}, b, st, nil
}

// readManifest reads only the manifest of a backup, for listing.
func readManifest(path string) (BackupInfo, error) {
	info := BackupInfo{Path: path}
	f, err := os.Open(path)
	if err != nil {
		return info, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return info, err
	}
	info.Size = fi.Size()
	zr, err := zip.NewReader(f, fi.Size())
	if err != nil {
		return info, badBackup("not a readable zip: %v", err)
	}
	for _, zf := range zr.File {
		if zf.Name != manifestName {
			continue
		}
		b, err := readMember(zf)
		if err != nil {
			return info, err
		}
		var m Manifest
		if err := decodeStrict(b, &m); err != nil {
			return info, badBackup("%s: %v", manifestName, err)
		}
		if m.Format != backupFormat || m.Version != backupVersion {
			return info, badBackup("format %q version %d", m.Format, m.Version)
		}
		info.Manifest = m
		return info, nil
	}
	return info, badBackup("no %s", manifestName)
}

// ListBackups lists the backups of the state directory dir, oldest first
// (by creation time, then path), with their manifests; it reads only the
// manifests (RestoreBackup verifies the rest). A file whose manifest does
// not read is listed with Err set.
func ListBackups(dir string) ([]BackupInfo, error) {
	bdir := backupsDir(dir)
	entries, err := os.ReadDir(bdir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("persist: %w", err)
	}
	var out []BackupInfo
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), backupSuffix) || !e.Type().IsRegular() {
			continue
		}
		info, err := readManifest(filepath.Join(bdir, e.Name()))
		info.Err = err
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b BackupInfo) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
	return out, nil
}

// PruneBackups deletes the backups created more than
// Options.BackupRetention ago on the store's clock, never the newest one
// nor a file whose manifest does not read. It returns the paths deleted.
func (s *Store[S, R]) PruneBackups() ([]string, error) {
	if s.opts.BackupRetention < 0 {
		return nil, nil
	}
	list, err := ListBackups(s.dir)
	if err != nil {
		return nil, err
	}
	var valid []BackupInfo
	for _, b := range list {
		if b.Err == nil {
			valid = append(valid, b)
		}
	}
	if len(valid) < 2 {
		return nil, nil
	}
	now := s.opts.Clock.Now()
	var deleted []string
	for _, b := range valid[:len(valid)-1] { // the newest stays
		if now.Sub(b.Created) <= s.opts.BackupRetention {
			continue
		}
		if err := os.Remove(b.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return deleted, fmt.Errorf("persist: pruning backups: %w", err)
		}
		deleted = append(deleted, b.Path)
		s.log.Info("backup pruned", "msg_id", MsgBackupPruned, "file", b.Path, "created", b.Created)
	}
	if len(deleted) > 0 {
		return deleted, syncDir(backupsDir(s.dir))
	}
	return nil, nil
}

// Restore. The journal of a state directory lives in journal/, so that a
// restore can replace it with two renames:
//
//  1. verify the backup completely (format, names, sizes, checksums, the
//     state loads); on any failure stop, nothing was changed;
//  2. build journal.restore.tmp/: the backup's state as the snapshot at
//     its last index, and an empty segment starting after it; fsync
//     both files and the directory;
//  3. rename journal.restore.tmp to journal.restore and fsync the state
//     directory: the commit point. Before it, the old state stands;
//     after it, the restored one will, even across a crash, because
//     OpenStore finishes steps 4 to 6 first;
//  4. rename journal to journal.old (fsync);
//  5. rename journal.restore to journal (fsync);
//  6. delete journal.old (fsync).
//
// Backups in backups/ are not touched.
const (
	restoreTmpName = "journal.restore.tmp"
	restoreName    = "journal.restore"
	oldJournalName = "journal.old"
)

// RestoreBackup replaces the state in the state directory dir with the
// backup at path, with no daemon running on dir (it takes dir's lock:
// ErrLocked if one is). It verifies the whole backup first, its state
// loading with codec, and changes nothing if anything fails.
// Store.RestoreBackup does the same on an open store.
func RestoreBackup[S StateMachine[S, R], R any](dir, path string, codec Codec[S, R], opts Options) (BackupInfo, error) {
	opts = opts.withDefaults()
	info, stateBytes, _, err := loadBackup(path, codec)
	if err != nil {
		return BackupInfo{}, err
	}
	if err := mkdirDurable(dir, opts.syncDir); err != nil {
		return BackupInfo{}, fmt.Errorf("persist: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return BackupInfo{}, err
	}
	defer lock.unlock()
	if _, err := installRestore(dir, info.LastIndex, stateBytes); err != nil {
		return BackupInfo{}, err
	}
	opts.Logger.Warn("state restored from a backup", "msg_id", MsgBackupRestored,
		"dir", dir, "backup", path, "last_index", info.LastIndex, "created", info.Created)
	return info, nil
}

// RestoreBackup replaces the store's state with the backup at path: it
// verifies the whole backup first and changes nothing if anything fails;
// then it waits for the proposals under way, closes the journal, swaps in
// the restored one and reopens it. The store's indexes continue from the
// backup's last index.
func (s *Store[S, R]) RestoreBackup(ctx context.Context, path string) (BackupInfo, error) {
	if err := ctx.Err(); err != nil {
		return BackupInfo{}, err
	}
	info, stateBytes, st, err := loadBackup(path, s.codec)
	if err != nil {
		return BackupInfo{}, err
	}
	if err := s.replaceJournal(info.LastIndex, stateBytes, st); err != nil {
		return BackupInfo{}, err
	}
	s.log.Warn("state restored from a backup", "msg_id", MsgBackupRestored,
		"dir", s.dir, "backup", path, "last_index", info.LastIndex, "created", info.Created)
	return info, nil
}

// replaceJournal replaces the store's journal and state with st, whose
// encoding is stateBytes (none: the empty state, at index 0 only), as
// the state after record index: RestoreBackup and InstallSnapshot. The
// caller has checked that stateBytes loads (st). It waits for the
// proposals under way, closes the journal, swaps in the new one with
// installRestore (durable when it returns) and reopens it; the store's
// next record is index+1. If the swap fails before its commit point the
// old journal is reopened and nothing changed.
func (s *Store[S, R]) replaceJournal(index uint64, stateBytes []byte, st S) error {
	s.gate.Lock()
	defer s.gate.Unlock()
	s.mu.Lock()
	closed, old := s.closed, s.j
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	// A journal that failed a write may not close cleanly; it is being
	// replaced anyway.
	if err := old.Close(); err != nil {
		s.log.Warn("closing the journal before replacing it", "err", err)
	}
	jdir := filepath.Join(s.dir, journalDirName)
	committed, rerr := installRestore(s.dir, index, stateBytes)
	if rerr != nil && !committed {
		// Nothing changed: carry on with the old journal.
		j, err := openJournal(jdir, s.rawOpts, nil)
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			s.err = fmt.Errorf("persist: reopening the journal after a failed replacement: %w", err)
			return errors.Join(rerr, s.err)
		}
		s.j = j
		return rerr
	}
	var j *Journal
	if rerr == nil {
		j, rerr = openJournal(jdir, s.rawOpts, nil)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rerr != nil {
		// Committed: the next OpenStore finishes the restore.
		s.err = fmt.Errorf("persist: journal replacement committed but not finished (reopen the store to finish it): %w", rerr)
		return s.err
	}
	s.j, s.cur, s.ahead = j, st, st.Clone()
	s.index, s.snapAt, s.queue, s.err = index, index, nil, nil
	return nil
}

// installRestore performs steps 2 to 6 of the restore. committed reports
// whether step 3 happened (then the restore completes, now or at the
// next OpenStore). No state (only for lastIndex 0, the empty state)
// writes no snapshot: the journal is then a new one.
func installRestore(dir string, lastIndex uint64, state []byte) (committed bool, err error) {
	tmp := filepath.Join(dir, restoreTmpName)
	if err := os.RemoveAll(tmp); err != nil {
		return false, fmt.Errorf("persist: restore: %w", err)
	}
	if err := os.Mkdir(tmp, dirMode); err != nil {
		return false, fmt.Errorf("persist: restore: %w", err)
	}
	if len(state) > 0 {
		if err := writeSnapshot(tmp, lastIndex, state); err != nil {
			os.RemoveAll(tmp)
			return false, fmt.Errorf("persist: restore: %w", err)
		}
	}
	if _, err := createSegment(tmp, segHeader{first: lastIndex + 1}); err != nil {
		os.RemoveAll(tmp)
		return false, fmt.Errorf("persist: restore: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, restoreName)); err != nil {
		os.RemoveAll(tmp)
		return false, fmt.Errorf("persist: restore: %w", err)
	}
	if err := syncDir(dir); err != nil {
		// The rename may or may not be durable: either way the next
		// OpenStore sees a consistent directory.
		return true, fmt.Errorf("persist: restore: %w", err)
	}
	_, err = finishRestore(dir)
	return true, err
}

// finishRestore completes a committed restore (steps 4 to 6), and cleans
// up an uncommitted one. OpenStore calls it first, under the lock;
// finished reports that it completed a committed restore.
func finishRestore(dir string) (finished bool, err error) {
	exists := func(name string) bool {
		_, err := os.Lstat(filepath.Join(dir, name))
		return err == nil
	}
	path := func(name string) string { return filepath.Join(dir, name) }
	step := func(err error) error {
		if err != nil {
			return fmt.Errorf("persist: finishing a restore in %s: %w", dir, err)
		}
		return syncDir(dir)
	}
	if exists(restoreTmpName) {
		// Not committed: the old state stands.
		if err := step(os.RemoveAll(path(restoreTmpName))); err != nil {
			return false, err
		}
	}
	if exists(restoreName) {
		if exists(journalDirName) {
			if exists(oldJournalName) { // left by an earlier restore
				if err := step(os.RemoveAll(path(oldJournalName))); err != nil {
					return false, err
				}
			}
			if err := step(os.Rename(path(journalDirName), path(oldJournalName))); err != nil {
				return false, err
			}
		}
		if err := step(os.Rename(path(restoreName), path(journalDirName))); err != nil {
			return false, err
		}
		finished = true
	}
	if exists(oldJournalName) {
		if !exists(journalDirName) {
			return false, fmt.Errorf("%w: %s holds %s but no %s: a restore was interrupted in a way it never leaves; rename %s to %s to keep the old state",
				ErrCorrupt, dir, oldJournalName, journalDirName, oldJournalName, journalDirName)
		}
		if err := step(os.RemoveAll(path(oldJournalName))); err != nil {
			return false, err
		}
	}
	return finished, nil
}

// decodeStrict decodes one JSON value into v, refusing unknown fields
// and trailing data: a field this build does not know belongs to a newer
// format, which must not be silently dropped.
func decodeStrict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return fmt.Errorf("data after the JSON value")
	}
	return nil
}
