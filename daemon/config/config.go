package config

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/ha"
)

// Path is where the daemon reads its config by default.
const Path = "/etc/lockstep/lockstep.toml"

// LowestCGTimeout is the lowest consistency-group timeout a session can
// have: the default of FB storage (docs/architecture.md). Heartbeat timings that
// leave no valid storage-side timeout H for it are refused.
const LowestCGTimeout = 60 * time.Second

// Defaults of the keys that have a constant default.
const (
	DefaultStateDir          = "/var/lib/lockstep"
	DefaultHAListen          = "tcp://0.0.0.0:9730"
	DefaultReconnectInterval = time.Minute
	DefaultReconnectAttempts = 10
	DefaultAppName           = "lockstepd"
	DefaultAdminGroup        = "lockstep" // the package's group, as in the bus policy
	// DefaultEnterpriseOID is a placeholder private enterprise number
	// until one is registered with IANA; sites may set their own.
	DefaultEnterpriseOID = "1.3.6.1.4.1.61942"
	EngineIDFileName     = "snmp-engine-id" // in state_dir, unless engine_id_file says otherwise
	DefaultRetries       = 3
	DefaultTimeout       = time.Second
	DefaultQueue         = 1000
)

// Floors of the durations. They catch a unit typed wrong ("1ns" for
// "1s") and values that would turn the daemon against the storage it
// protects; they are far below any setting worth tuning to, and they tune
// nothing. heartbeat.* must also pass the freeze package's timing rules.
const (
	// The heartbeat sends one command to every storage system per
	// interval: faster, the commands load the storage systems, and a
	// loaded host's own scheduling delay becomes a large part of it.
	MinHeartbeatInterval = 100 * time.Millisecond
	// A window this short would freeze on the manager's own pauses (a
	// loaded CPU, a GC cycle) rather than on a storage system's silence,
	// and a freeze costs the applications dearly.
	MinDetectionWindow = 500 * time.Millisecond
	// A command round trip, through an HMC or a WAN link, takes tens of
	// milliseconds: a shorter timeout fails healthy storage systems.
	MinRequestTimeout = 100 * time.Millisecond
	// A poll queries every pair of every storage system; detection rides
	// on the heartbeat and the pushed events, so polling faster than this
	// only loads the storage.
	MinPollInterval = time.Second
	// Retries of a failed command: faster, a failing storage system (or
	// the HMC in front of it) is flooded.
	MinRetryInterval = 100 * time.Millisecond
	// HA reconnection attempts: faster, a down partner is hammered and
	// the log fills.
	MinReconnectInterval = time.Second
	// An inform waits for the manager's acknowledgement, a round trip.
	MinInformTimeout = 100 * time.Millisecond
	// Storage keep-alive pings: more often, the storage's processors
	// answer pings; less often, a connection gone silent holds its
	// commands (a freeze too, heartbeat off) for up to four intervals
	// before they go to the other cluster or HMC.
	MinKeepAlive, MaxKeepAlive = 100 * time.Millisecond, 30 * time.Second
)

// DefaultKeepAlive is how often a storage connection is pinged.
const DefaultKeepAlive = time.Second

// Config is a validated lockstep.toml.
type Config struct {
	Server Server
	// Heartbeat timings (the switch itself is persisted state, set with
	// lockstepctl heartbeat on|off). They passed freeze.Timings.Validate
	// and freeze.DeriveH(LowestCGTimeout, ...).
	Heartbeat freeze.Timings
	HA        HA
	Control   Control
	Log       Log
	Syslog    Syslog
	SNMP      SNMP
	Storage   Storage
	// Warnings are things accepted but worth logging at start (and
	// printing with --check-config).
	Warnings Problems
}

// Edition of the daemon.
type Edition string

// Editions.
const (
	EditionFull  Edition = "full"
	EditionBasic Edition = "basic" // no HA
)

// Server is [server].
type Server struct {
	Name     string // default: the host name
	StateDir string // absolute, cleaned
	Edition  Edition
	// Sysplex is the z/OS sysplex this server belongs to ("" none, the
	// default): a z/OS connection is usable only when its host is of
	// this sysplex (docs/architecture.md, Storage connections).
	Sysplex string
}

// HA is [ha]: the journal mirror link to the partner server.
type HA struct {
	// Listen is the fixed listener address. The listener runs only when
	// TLS is configured (see Config.HAAvailable).
	Listen Addr
	// ListenSet: listen was written in the file (then TLS is required).
	ListenSet bool
	// Advertise is the address this server tells its partner to dial it
	// at, when that is not Listen (a NAT, a port forward, a relay); nil:
	// Listen (its unspecified host replaced by the connection's address).
	Advertise *Addr
	// TLS holds the mutual TLS files; nil when none is configured.
	TLS               *TLSFiles
	ReconnectInterval time.Duration
	ReconnectAttempts int // 0: no automatic reconnection
	// SourcePorts is the fixed local port range of the connecting side;
	// nil: the kernel picks an ephemeral port.
	SourcePorts *PortRange
	// PartnerName is the partner's server name, which its certificate
	// must carry (DNS or URI subject alternative name), when ha
	// set-standby/set-as-standby does not give one (--name), and for a
	// server that waits to be contacted; empty: none.
	PartnerName string
	// PartnerFingerprint pins the partner's certificate (SHA-256); zero:
	// none.
	PartnerFingerprint ha.Fingerprint
}

// TLSFiles are PEM files for mutual TLS. Absolute paths.
type TLSFiles struct {
	CertFile string // this server's certificate chain
	KeyFile  string // its private key
	CAFile   string // the CA(s) the peer's certificate must chain to
}

// HAAddress is the address this server announces to its partner.
func (h HA) HAAddress() string {
	if h.Advertise != nil {
		return h.Advertise.String()
	}
	return h.Listen.String()
}

// ErrHAUnavailable is why HA commands are refused; see HAAvailable.
var ErrHAUnavailable = errors.New("config: HA is not available")

// HAAvailable says whether HA may be used: not in the basic edition, and
// not without the mutual TLS files. The daemon calls it before listening,
// and the HA commands (ha set-standby, ...) return its error to the
// administrator.
func (c *Config) HAAvailable() error {
	if c.Server.Edition == EditionBasic {
		return fmt.Errorf("%w in the basic edition", ErrHAUnavailable)
	}
	if c.HA.TLS == nil {
		return fmt.Errorf("%w: it needs mutual TLS, and [ha] cert_file, key_file and ca_file are not set", ErrHAUnavailable)
	}
	return nil
}

// BusKind says which D-Bus bus the admin API is on.
type BusKind int

// Buses.
const (
	SystemBus  BusKind = iota // the system bus (default)
	SessionBus                // the session bus of the daemon's user
	AddressBus                // the bus at Control.Address (tests)
)

// Control is [control].
type Control struct {
	Bus     BusKind
	Address string // D-Bus address when Bus is AddressBus
	// AdminGroup may call the admin API's changes, beside root and the
	// daemon's user; the daemon checks callers itself (docs/architecture.md, Trust).
	AdminGroup string
}

// String is control.bus as written in the file.
func (c Control) String() string {
	switch c.Bus {
	case SessionBus:
		return "session"
	case AddressBus:
		return c.Address
	}
	return "system"
}

// LogFormat is [log] format.
type LogFormat string

// Log formats.
const (
	LogAuto    LogFormat = "auto"    // journal when $JOURNAL_STREAM is set, else text
	LogJournal LogFormat = "journal" // native journald fields
	LogText    LogFormat = "text"    // slog text on stderr
)

// Log is [log].
type Log struct {
	Level  slog.Level
	Format LogFormat
}

// Journal resolves LogAuto: systemd sets $JOURNAL_STREAM when stderr is
// connected to the journal. getenv is os.Getenv outside tests.
func (l Log) Journal(getenv func(string) string) bool {
	switch l.Format {
	case LogJournal:
		return true
	case LogText:
		return false
	}
	return getenv("JOURNAL_STREAM") != ""
}

// Syslog is [syslog]: optional RFC 5424 copy of the events.
type Syslog struct {
	Target  *Addr // udp or tcp; nil: no remote syslog
	AppName string
}

// SNMP is [snmp] and its [[snmp.manager]] entries.
type SNMP struct {
	EnterpriseOID OID
	TrapListen    *Addr // udp; nil: storage traps are not received
	EngineIDFile  string
	Managers      []Manager
	TrapAuth      TrapAuth // who may send storage traps (trap_*)
}

// SNMPVersion of a manager.
type SNMPVersion string

// SNMP versions.
const (
	V2c SNMPVersion = "v2c"
	V3  SNMPVersion = "v3" // always authPriv
)

// Notification type sent to a manager.
type Notification string

// Notification types.
const (
	Trap   Notification = "trap"   // unacknowledged
	Inform Notification = "inform" // acknowledged, retried, queued
)

// AuthProtocol of SNMPv3 (RFC 7860 HMAC-SHA-2).
type AuthProtocol string

// Authentication protocols.
const (
	SHA224 AuthProtocol = "SHA-224"
	SHA256 AuthProtocol = "SHA-256"
	SHA384 AuthProtocol = "SHA-384"
	SHA512 AuthProtocol = "SHA-512"
)

// PrivProtocol of SNMPv3.
type PrivProtocol string

// Privacy protocols ("AES-128" in the file reads as AES).
const (
	AES    PrivProtocol = "AES" // AES-128 (RFC 3826)
	AES192 PrivProtocol = "AES-192"
	AES256 PrivProtocol = "AES-256"
)

// Manager is one [[snmp.manager]]: a receiver of traps or informs.
// Secrets are never in the config: it names files that hold them.
type Manager struct {
	Address       Addr // udp
	Version       SNMPVersion
	Notification  Notification
	CommunityFile string // v2c
	User          string // v3
	AuthProtocol  AuthProtocol
	PrivProtocol  PrivProtocol
	AuthKeyFile   string        // v3
	PrivKeyFile   string        // v3
	Retries       int           // informs
	Timeout       time.Duration // informs: wait for the acknowledgement
	Queue         int           // notifications waiting to be sent; the oldest is dropped when full
}

// Default is the config of an empty file.
func Default() *Config {
	name, _ := os.Hostname()
	listen, _ := ParseAddr(DefaultHAListen, TCP, VSock)
	oid, _ := ParseOID(DefaultEnterpriseOID)
	return &Config{
		Server:    Server{Name: name, StateDir: DefaultStateDir, Edition: EditionFull},
		Heartbeat: freeze.DefaultTimings(),
		HA: HA{
			Listen:            listen,
			ReconnectInterval: DefaultReconnectInterval,
			ReconnectAttempts: DefaultReconnectAttempts,
		},
		Control: Control{Bus: SystemBus, AdminGroup: DefaultAdminGroup},
		Storage: Storage{KeepAlive: DefaultKeepAlive},
		Log:     Log{Level: slog.LevelInfo, Format: LogAuto},
		Syslog:  Syslog{AppName: DefaultAppName},
		SNMP: SNMP{
			EnterpriseOID: oid,
			EngineIDFile:  filepath.Join(DefaultStateDir, EngineIDFileName),
			TrapAuth:      TrapAuth{AuthProtocol: SHA256, PrivProtocol: AES},
		},
	}
}
