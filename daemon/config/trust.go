package config

import (
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// The trust keys (docs/architecture.md, Trust) that this file owns: the storage CA
// and pins ([storage]), and who may send storage traps ([snmp] trap_*).

// Storage is [storage]: how the storage systems' TLS certificates are
// checked.
type Storage struct {
	// CAFile is the PEM file of the CA(s) the storage systems'
	// certificates must chain to; "" when not set. It is required once a
	// storage system is defined (the daemon refuses to start or to add
	// one without it): the system roots are never trusted for storage.
	CAFile string
	// Pins are SHA-256 fingerprints of certificates by serial: a pinned
	// system's certificate proves its identity by being that certificate,
	// instead of naming the serial (URI SAN urn:lockstep:serial:SERIAL or
	// the common name). The chain and host name are checked all the same.
	Pins map[string][]byte
	// KeepAlive is how often every storage, HMC and z/OS connection is
	// pinged; one whose ping goes unanswered for three intervals is
	// closed as silent (hal.ConnectionSpec.KeepAlive).
	KeepAlive time.Duration
}

// TrapAuth is who may send storage traps ([snmp] trap_*): an SNMPv2c
// community, an SNMPv3 (authPriv) user, or both. A trap must also come
// from an address of a defined storage system's connection.
type TrapAuth struct {
	CommunityFile string // v2c: the file holding the community; "" none
	User          string // v3: the USM user; "" none
	AuthProtocol  AuthProtocol
	PrivProtocol  PrivProtocol
	AuthKeyFile   string
	PrivKeyFile   string
}

// Set says whether any credential is configured.
func (t TrapAuth) Set() bool { return t.CommunityFile != "" || t.User != "" }

type rawStorage struct {
	CAFile    rawValue `toml:"ca_file"`
	Pins      []rawPin `toml:"pin"`
	KeepAlive rawValue `toml:"keepalive"`
}

type rawPin struct {
	Serial rawValue `toml:"serial"`
	SHA256 rawValue `toml:"sha256"`
}

type rawTrapAuth struct {
	CommunityFile rawValue `toml:"trap_community_file"`
	User          rawValue `toml:"trap_user"`
	AuthProtocol  rawValue `toml:"trap_auth_protocol"`
	PrivProtocol  rawValue `toml:"trap_priv_protocol"`
	AuthKeyFile   rawValue `toml:"trap_auth_key_file"`
	PrivKeyFile   rawValue `toml:"trap_priv_key_file"`
}

func (c *checker) storage(r rawStorage, cfg *Config) {
	cfg.Storage.CAFile = c.path("storage.ca_file", r.CAFile, "")
	if d, ok := c.dur("storage.keepalive", r.KeepAlive, cfg.Storage.KeepAlive); ok {
		if d < MinKeepAlive || d > MaxKeepAlive {
			c.add(ErrValue, nil, "storage.keepalive", "%v: from %v to %v (a silent connection is closed after three "+
				"unanswered intervals: shorter loads the storage, longer holds its commands)", d, MinKeepAlive, MaxKeepAlive)
		} else {
			cfg.Storage.KeepAlive = d
		}
	}
	for i, p := range r.Pins {
		k := func(name string) string { return fmt.Sprintf("storage.pin[%d].%s", i, name) }
		serial, ok := c.str(k("serial"), p.Serial)
		if !p.Serial.set {
			c.add(ErrRequired, nil, k("serial"), "required: the storage system the pin is for")
		} else if ok && (serial == "" || len(serial) > 255 || strings.ContainsFunc(serial, func(r rune) bool { return r <= ' ' || r > '~' })) {
			c.add(ErrValue, nil, k("serial"), "%q: 1 to 255 printable ASCII characters, no spaces", serial)
			ok = false
		}
		fp, fpOK := c.str(k("sha256"), p.SHA256)
		if !p.SHA256.set {
			c.add(ErrRequired, nil, k("sha256"), "required: the SHA-256 fingerprint of the system's certificate")
		}
		var pin []byte
		if fpOK {
			var err error
			if pin, err = parseFingerprint(fp); err != nil {
				c.add(ErrValue, err, k("sha256"), "%v", err)
				fpOK = false
			}
		}
		if !ok || !fpOK {
			continue
		}
		if cfg.Storage.Pins[serial] != nil {
			c.add(ErrDuplicate, nil, k("serial"), "%s is pinned twice: one pin per storage system", serial)
			continue
		}
		if cfg.Storage.Pins == nil {
			cfg.Storage.Pins = map[string][]byte{}
		}
		cfg.Storage.Pins[serial] = pin
	}
}

// parseFingerprint reads 64 hex digits, colons allowed between bytes (as
// openssl x509 -noout -fingerprint -sha256 prints them).
func parseFingerprint(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("%q is not a SHA-256 fingerprint: 64 hex digits, colons allowed", s)
	}
	return b, nil
}

// trapAuth checks the trap_* keys of [snmp]: a listener needs a community
// or a user, and a v3 user needs both passphrase files (authPriv).
func (c *checker) trapAuth(r rawTrapAuth, cfg *Config) {
	t := &cfg.SNMP.TrapAuth
	t.AuthProtocol, t.PrivProtocol = SHA256, AES
	t.CommunityFile = c.path("snmp.trap_community_file", r.CommunityFile, "")
	if u, ok := c.str("snmp.trap_user", r.User); ok {
		if u == "" || len(u) > 32 {
			c.add(ErrValue, nil, "snmp.trap_user", "%q: 1 to 32 characters", u)
		} else {
			t.User = u
		}
	}
	t.AuthProtocol = AuthProtocol(c.choice("snmp.trap_auth_protocol", r.AuthProtocol, string(SHA256),
		string(SHA224), string(SHA256), string(SHA384), string(SHA512)))
	if r.PrivProtocol.v == "AES-128" {
		r.PrivProtocol.v = string(AES)
	}
	t.PrivProtocol = PrivProtocol(c.choice("snmp.trap_priv_protocol", r.PrivProtocol, string(AES),
		string(AES), string(AES192), string(AES256)))
	t.AuthKeyFile = c.path("snmp.trap_auth_key_file", r.AuthKeyFile, "")
	t.PrivKeyFile = c.path("snmp.trap_priv_key_file", r.PrivKeyFile, "")

	v3 := []struct {
		key string
		v   rawValue
	}{{"snmp.trap_auth_protocol", r.AuthProtocol}, {"snmp.trap_priv_protocol", r.PrivProtocol},
		{"snmp.trap_auth_key_file", r.AuthKeyFile}, {"snmp.trap_priv_key_file", r.PrivKeyFile}}
	if r.User.set {
		for _, f := range v3[2:] {
			if !f.v.set {
				c.add(ErrRequired, nil, f.key, "required with snmp.trap_user (SNMPv3 traps are authPriv): the file that holds the passphrase")
			}
		}
	} else {
		for _, f := range v3 {
			if f.v.set {
				c.add(ErrConflict, nil, f.key, "is for SNMPv3 traps: set snmp.trap_user too")
			}
		}
	}
	listen := cfg.SNMP.TrapListen != nil
	switch {
	case listen && !r.CommunityFile.set && !r.User.set:
		c.add(ErrRequired, nil, "snmp.trap_listen", "needs snmp.trap_community_file or snmp.trap_user: storage traps are accepted only with a configured community or SNMPv3 user")
	case !listen && (r.CommunityFile.set || r.User.set):
		key := "snmp.trap_community_file"
		if !r.CommunityFile.set {
			key = "snmp.trap_user"
		}
		c.warn(ErrConflict, key, "ignored: snmp.trap_listen is not set, so no storage trap is received")
	}
}
