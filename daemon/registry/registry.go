package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

// RecordVersion is the version of the record encoding.
const RecordVersion = 1

// Record kinds.
const (
	KindStorageAdded      = "storage-added"
	KindConnectionRemoved = "connection-removed"
	KindStorageRemoved    = "storage-removed"
	KindHeartbeatSet      = "heartbeat-set"
	KindEpochSet          = "epoch-set"
)

// Connection is one way to reach a storage system.
type Connection struct {
	Name         string             `json:"name"`
	Kind         hal.ConnectionKind `json:"kind"`
	Addresses    []string           `json:"addresses"`
	Sysplex      string             `json:"sysplex,omitempty"`
	User         string             `json:"user,omitempty"`
	PasswordFile string             `json:"password_file,omitempty"`
}

// CarriesHeartbeat: TCP/IP connections can, z/OS ones cannot (DESIGN.md §4).
// The admin API admits only known kinds into the registry.
func (c Connection) CarriesHeartbeat() bool { return c.Kind.CarriesHeartbeat() }

// Record is one change.
type Record struct {
	Version    int         `json:"version"`
	Kind       string      `json:"kind"`
	At         time.Time   `json:"at"`
	Serial     hal.Serial  `json:"serial,omitempty"`
	Connection *Connection `json:"connection,omitempty"`
	Name       string      `json:"name,omitempty"`
	On         bool        `json:"on,omitempty"`
	Epoch      hal.Epoch   `json:"epoch,omitempty"`
}

// Errors of Apply.
var (
	ErrInvalid  = errors.New("registry: invalid record")
	ErrNotFound = errors.New("registry: not found")
	ErrExists   = errors.New("registry: already defined")
)

// DB is the registry state. The zero value is usable.
type DB struct {
	storage   map[hal.Serial][]Connection
	heartbeat bool
	epoch     hal.Epoch
}

// NewDB returns an empty registry.
func NewDB() *DB { return &DB{storage: map[hal.Serial][]Connection{}} }

// Check says whether Apply would accept r, changing nothing.
func (db *DB) Check(r Record) error { return db.Clone().Apply(r) }

// Apply is the only way the registry changes.
func (db *DB) Apply(r Record) error {
	if r.Version != RecordVersion {
		return fmt.Errorf("%w: version %d", ErrInvalid, r.Version)
	}
	if db.storage == nil {
		db.storage = map[hal.Serial][]Connection{}
	}
	switch r.Kind {
	case KindStorageAdded:
		if r.Serial == "" || r.Connection == nil || r.Connection.Name == "" || len(r.Connection.Addresses) == 0 {
			return fmt.Errorf("%w: storage-added needs a serial and a named connection with addresses", ErrInvalid)
		}
		conns := db.storage[r.Serial]
		if slices.ContainsFunc(conns, func(c Connection) bool { return c.Name == r.Connection.Name }) {
			return fmt.Errorf("%w: %s already has a connection %q", ErrExists, r.Serial, r.Connection.Name)
		}
		c := *r.Connection
		c.Addresses = slices.Clone(c.Addresses)
		db.storage[r.Serial] = append(slices.Clone(conns), c)
	case KindConnectionRemoved:
		conns := db.storage[r.Serial]
		i := slices.IndexFunc(conns, func(c Connection) bool { return c.Name == r.Name })
		if i < 0 {
			return fmt.Errorf("%w: %s has no connection %q", ErrNotFound, r.Serial, r.Name)
		}
		conns = slices.Delete(slices.Clone(conns), i, i+1)
		if len(conns) == 0 {
			delete(db.storage, r.Serial)
		} else {
			db.storage[r.Serial] = conns
		}
	case KindStorageRemoved:
		if _, ok := db.storage[r.Serial]; !ok {
			return fmt.Errorf("%w: storage system %s", ErrNotFound, r.Serial)
		}
		delete(db.storage, r.Serial)
	case KindHeartbeatSet:
		db.heartbeat = r.On
	case KindEpochSet:
		if r.Epoch < db.epoch {
			return fmt.Errorf("%w: epoch %d is below the current %d", ErrInvalid, r.Epoch, db.epoch)
		}
		db.epoch = r.Epoch
	default:
		return fmt.Errorf("%w: unknown kind %q", ErrInvalid, r.Kind)
	}
	return nil
}

// Clone is an independent copy.
func (db *DB) Clone() *DB {
	out := &DB{storage: make(map[hal.Serial][]Connection, len(db.storage)), heartbeat: db.heartbeat, epoch: db.epoch}
	for k, v := range db.storage {
		out.storage[k] = slices.Clone(v)
	}
	return out
}

// Serials lists the storage systems, sorted.
func (db *DB) Serials() []hal.Serial { return slices.Sorted(maps.Keys(db.storage)) }

// Connections are a storage system's connections (nil if unknown).
func (db *DB) Connections(serial hal.Serial) []Connection { return slices.Clone(db.storage[serial]) }

// Heartbeat is the server-wide heartbeat switch.
func (db *DB) Heartbeat() bool { return db.heartbeat }

// Epoch is the fencing token this server carries.
func (db *DB) Epoch() hal.Epoch { return db.epoch }

type snapshot struct {
	Version   int                         `json:"version"`
	Storage   map[hal.Serial][]Connection `json:"storage"`
	Heartbeat bool                        `json:"heartbeat"`
	Epoch     hal.Epoch                   `json:"epoch"`
}

// Snapshot encodes the whole registry.
func (db *DB) Snapshot() ([]byte, error) {
	st := db.storage
	if st == nil {
		st = map[hal.Serial][]Connection{}
	}
	return json.Marshal(snapshot{Version: RecordVersion, Storage: st, Heartbeat: db.heartbeat, Epoch: db.epoch})
}

// Restore decodes a Snapshot.
func Restore(b []byte) (*DB, error) {
	var s snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%w: snapshot: %v", ErrInvalid, err)
	}
	if s.Version != RecordVersion {
		return nil, fmt.Errorf("%w: snapshot version %d", ErrInvalid, s.Version)
	}
	db := NewDB()
	for k, v := range s.Storage {
		if k == "" || len(v) == 0 {
			return nil, fmt.Errorf("%w: snapshot: empty storage entry", ErrInvalid)
		}
		db.storage[k] = v
	}
	db.heartbeat, db.epoch = s.Heartbeat, s.Epoch
	return db, nil
}
