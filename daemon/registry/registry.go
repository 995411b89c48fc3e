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
	// An HMC connection is defined once (hmc add) and fronts the storage
	// systems discovered from it (hmc-attached, journaled by the acting
	// server when what its HMCs list changes), which need no storage add.
	KindHMCAdded    = "hmc-added"
	KindHMCRemoved  = "hmc-removed"
	KindHMCAttached = "hmc-attached"
	// A z/OS connection is defined once per z/OS host (zos add) with the
	// storage systems the host has online, which need no storage add. A
	// connection of kind zos added per system by the former storage add
	// --kind zos replays and stays usable.
	KindZOSAdded   = "zos-added"
	KindZOSRemoved = "zos-removed"
)

// Connection is one way to reach a storage system.
type Connection struct {
	Name         string             `json:"name"`
	Kind         hal.ConnectionKind `json:"kind"`
	Addresses    []string           `json:"addresses"`
	Sysplex      string             `json:"sysplex,omitempty"`
	User         string             `json:"user,omitempty"`
	PasswordFile string             `json:"password_file,omitempty"`
	// HMC names the HMC connection this one stands for (Connections lists
	// one per HMC connection fronting the system). A stored connection of
	// kind hmc without it comes from the former storage add --kind hmc:
	// kept so that old journals replay, but not usable.
	HMC string `json:"hmc,omitempty"`
	// ZOS names the z/OS connection (zos add) this one stands for.
	ZOS string `json:"zos,omitempty"`
}

// Legacy reports a connection of kind hmc defined per storage system (the
// former storage add --kind hmc), which hmc add replaces.
func (c Connection) Legacy() bool { return c.Kind == hal.HMC && c.HMC == "" }

// HMC is one HMC connection: one HMC, or two (dual HMC, CSM's
// "HMC1;HMC2"), and the storage systems discovered behind them.
type HMC struct {
	Name         string       `json:"name"`
	Addresses    []string     `json:"addresses"`
	User         string       `json:"user,omitempty"`
	PasswordFile string       `json:"password_file,omitempty"`
	Attached     []hal.Serial `json:"attached,omitempty"`
}

// connection is h as one connection of a system it fronts.
func (h HMC) connection() Connection {
	return Connection{Name: h.Name, Kind: hal.HMC, Addresses: slices.Clone(h.Addresses), User: h.User,
		PasswordFile: h.PasswordFile, HMC: h.Name}
}

// ZOS is one z/OS connection: a z/OS host (its name), reached at one
// address or two, in a sysplex, and the storage systems it has online.
type ZOS struct {
	Name         string       `json:"name"`
	Addresses    []string     `json:"addresses"`
	Sysplex      string       `json:"sysplex"`
	User         string       `json:"user,omitempty"`
	PasswordFile string       `json:"password_file,omitempty"`
	Systems      []hal.Serial `json:"systems"`
}

func (z ZOS) valid() bool {
	return z.Name != "" && z.Sysplex != "" && len(z.Addresses) >= 1 && len(z.Addresses) <= 2 &&
		len(z.Systems) > 0 && !slices.Contains(z.Systems, "")
}

func (z ZOS) clone() ZOS {
	z.Addresses, z.Systems = slices.Clone(z.Addresses), slices.Clone(z.Systems)
	return z
}

// connection is z as one connection of a system it has online.
func (z ZOS) connection() Connection {
	return Connection{Name: z.Name, Kind: hal.ZOS, Addresses: slices.Clone(z.Addresses), Sysplex: z.Sysplex,
		User: z.User, PasswordFile: z.PasswordFile, ZOS: z.Name}
}

// CarriesHeartbeat: TCP/IP connections can, z/OS ones cannot (docs/architecture.md, Storage connections).
// The admin API admits only known kinds into the registry.
func (c Connection) CarriesHeartbeat() bool { return c.Kind.CarriesHeartbeat() }

// Record is one change.
type Record struct {
	Version    int          `json:"version"`
	Kind       string       `json:"kind"`
	At         time.Time    `json:"at"`
	Serial     hal.Serial   `json:"serial,omitempty"`
	Connection *Connection  `json:"connection,omitempty"`
	Name       string       `json:"name,omitempty"`
	On         bool         `json:"on,omitempty"`
	Epoch      hal.Epoch    `json:"epoch,omitempty"`
	HMC        *HMC         `json:"hmc,omitempty"`     // hmc-added
	Serials    []hal.Serial `json:"serials,omitempty"` // hmc-attached
	ZOS        *ZOS         `json:"zos,omitempty"`     // zos-added
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
	hmcs      map[string]HMC
	zoss      map[string]ZOS
	heartbeat bool
	epoch     hal.Epoch
}

// NewDB returns an empty registry.
func NewDB() *DB {
	return &DB{storage: map[hal.Serial][]Connection{}, hmcs: map[string]HMC{}, zoss: map[string]ZOS{}}
}

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
	if db.hmcs == nil {
		db.hmcs = map[string]HMC{}
	}
	if db.zoss == nil {
		db.zoss = map[string]ZOS{}
	}
	switch r.Kind {
	case KindZOSAdded:
		if r.ZOS == nil || !r.ZOS.valid() {
			return fmt.Errorf("%w: zos-added needs a named z/OS connection with one or two addresses, a sysplex "+
				"and the storage systems it has online", ErrInvalid)
		}
		if _, ok := db.zoss[r.ZOS.Name]; ok {
			return fmt.Errorf("%w: z/OS connection %q", ErrExists, r.ZOS.Name)
		}
		z := r.ZOS.clone()
		z.Systems = sortedSerials(z.Systems)
		db.zoss[z.Name] = z
	case KindZOSRemoved:
		if _, ok := db.zoss[r.Name]; !ok {
			return fmt.Errorf("%w: z/OS connection %q", ErrNotFound, r.Name)
		}
		delete(db.zoss, r.Name)
	case KindHMCAdded:
		h := r.HMC
		if h == nil || h.Name == "" || len(h.Addresses) < 1 || len(h.Addresses) > 2 {
			return fmt.Errorf("%w: hmc-added needs a named HMC connection with one or two addresses", ErrInvalid)
		}
		if _, ok := db.hmcs[h.Name]; ok {
			return fmt.Errorf("%w: HMC connection %q", ErrExists, h.Name)
		}
		c := *h
		c.Addresses, c.Attached = slices.Clone(h.Addresses), sortedSerials(h.Attached)
		db.hmcs[h.Name] = c
	case KindHMCRemoved:
		if _, ok := db.hmcs[r.Name]; !ok {
			return fmt.Errorf("%w: HMC connection %q", ErrNotFound, r.Name)
		}
		delete(db.hmcs, r.Name)
	case KindHMCAttached:
		h, ok := db.hmcs[r.Name]
		if !ok {
			return fmt.Errorf("%w: HMC connection %q", ErrNotFound, r.Name)
		}
		if slices.Contains(r.Serials, "") {
			return fmt.Errorf("%w: hmc-attached: an empty serial", ErrInvalid)
		}
		h.Attached = sortedSerials(r.Serials)
		db.hmcs[r.Name] = h
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

func sortedSerials(in []hal.Serial) []hal.Serial {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

// Clone is an independent copy.
func (db *DB) Clone() *DB {
	out := &DB{storage: make(map[hal.Serial][]Connection, len(db.storage)), hmcs: make(map[string]HMC, len(db.hmcs)),
		zoss: make(map[string]ZOS, len(db.zoss)), heartbeat: db.heartbeat, epoch: db.epoch}
	for k, v := range db.zoss {
		out.zoss[k] = v.clone()
	}
	for k, v := range db.storage {
		out.storage[k] = slices.Clone(v)
	}
	for k, v := range db.hmcs {
		v.Addresses, v.Attached = slices.Clone(v.Addresses), slices.Clone(v.Attached)
		out.hmcs[k] = v
	}
	return out
}

// Serials lists the storage systems, sorted: those added with storage
// add, those discovered behind an HMC connection and those a z/OS
// connection has online.
func (db *DB) Serials() []hal.Serial {
	out := slices.Collect(maps.Keys(db.storage))
	for _, h := range db.hmcs {
		out = append(out, h.Attached...)
	}
	for _, z := range db.zoss {
		out = append(out, z.Systems...)
	}
	return sortedSerials(out)
}

// Connections are a storage system's connections (nil if unknown): those
// added for it, then one per HMC connection fronting it, then one per
// z/OS connection that has it online, each by name.
func (db *DB) Connections(serial hal.Serial) []Connection {
	out := slices.Clone(db.storage[serial])
	for _, name := range slices.Sorted(maps.Keys(db.hmcs)) {
		if h := db.hmcs[name]; slices.Contains(h.Attached, serial) {
			out = append(out, h.connection())
		}
	}
	for _, name := range slices.Sorted(maps.Keys(db.zoss)) {
		if z := db.zoss[name]; slices.Contains(z.Systems, serial) {
			out = append(out, z.connection())
		}
	}
	return out
}

// Added are the connections added for serial with storage add (those an
// HMC connection stands for are not).
func (db *DB) Added(serial hal.Serial) []Connection { return slices.Clone(db.storage[serial]) }

// HMCs lists the HMC connections, by name.
func (db *DB) HMCs() []HMC {
	var out []HMC
	for _, name := range slices.Sorted(maps.Keys(db.hmcs)) {
		h := db.hmcs[name]
		h.Addresses, h.Attached = slices.Clone(h.Addresses), slices.Clone(h.Attached)
		out = append(out, h)
	}
	return out
}

// HMC is one HMC connection.
func (db *DB) HMC(name string) (HMC, bool) {
	h, ok := db.hmcs[name]
	h.Addresses, h.Attached = slices.Clone(h.Addresses), slices.Clone(h.Attached)
	return h, ok
}

// ZOSs lists the z/OS connections, by name.
func (db *DB) ZOSs() []ZOS {
	var out []ZOS
	for _, name := range slices.Sorted(maps.Keys(db.zoss)) {
		out = append(out, db.zoss[name].clone())
	}
	return out
}

// ZOS is one z/OS connection.
func (db *DB) ZOS(name string) (ZOS, bool) {
	z, ok := db.zoss[name]
	return z.clone(), ok
}

// Heartbeat is the server-wide heartbeat switch.
func (db *DB) Heartbeat() bool { return db.heartbeat }

// Epoch is the fencing token this server carries.
func (db *DB) Epoch() hal.Epoch { return db.epoch }

type snapshot struct {
	Version   int                         `json:"version"`
	Storage   map[hal.Serial][]Connection `json:"storage"`
	HMCs      map[string]HMC              `json:"hmcs,omitempty"`
	ZOSs      map[string]ZOS              `json:"zoss,omitempty"`
	Heartbeat bool                        `json:"heartbeat"`
	Epoch     hal.Epoch                   `json:"epoch"`
}

// Snapshot encodes the whole registry.
func (db *DB) Snapshot() ([]byte, error) {
	st := db.storage
	if st == nil {
		st = map[hal.Serial][]Connection{}
	}
	return json.Marshal(snapshot{Version: RecordVersion, Storage: st, HMCs: db.hmcs, ZOSs: db.zoss, Heartbeat: db.heartbeat, Epoch: db.epoch})
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
	for k, h := range s.HMCs {
		if k == "" || k != h.Name || len(h.Addresses) == 0 || len(h.Addresses) > 2 || slices.Contains(h.Attached, "") {
			return nil, fmt.Errorf("%w: snapshot: bad HMC connection %q", ErrInvalid, k)
		}
		db.hmcs[k] = h
	}
	for k, z := range s.ZOSs {
		if k != z.Name || !z.valid() {
			return nil, fmt.Errorf("%w: snapshot: bad z/OS connection %q", ErrInvalid, k)
		}
		db.zoss[k] = z
	}
	db.heartbeat, db.epoch = s.Heartbeat, s.Epoch
	return db, nil
}
