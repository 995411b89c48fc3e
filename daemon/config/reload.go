package config

import (
	"maps"
	"slices"
)

// What SIGHUP may change. The daemon reloads like this: parse the file
// again; if it has problems, log them and keep the old config entirely;
// otherwise apply the keys Reloadable lists (with RELOADING=1 around it)
// and log, as a warning, the keys RestartRequired lists, which keep
// their old values until the next restart.
//
// At run time (SIGHUP):
//
//	heartbeat.*      the freeze core takes the new timings at its next tick
//	                 and derives H again for every session
//	log.level
//	syslog.target, syslog.app_name
//	snmp.manager     the whole list: senders are rebuilt; queued
//	                 informs of a manager that is still listed are kept
//
// Only at restart: every other key, in particular server.name,
// server.state_dir, server.edition, ha.* (the listener, the TLS files,
// the reconnection policy), control.bus, log.format, snmp.enterprise_oid,
// snmp.trap_listen, snmp.trap_* (who may send storage traps),
// snmp.engine_id_file and storage.* (the CA and pins of the storage
// systems' certificates).

type setting struct {
	key    string
	reload bool
	same   func(a, b *Config) bool
}

func settings() []setting {
	tls := func(c *Config) TLSFiles {
		if c.HA.TLS == nil {
			return TLSFiles{}
		}
		return *c.HA.TLS
	}
	ptr := func(a, b *Addr) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
	return []setting{
		{"server.name", false, func(a, b *Config) bool { return a.Server.Name == b.Server.Name }},
		{"server.state_dir", false, func(a, b *Config) bool { return a.Server.StateDir == b.Server.StateDir }},
		{"server.sysplex", false, func(a, b *Config) bool { return a.Server.Sysplex == b.Server.Sysplex }},
		{"server.edition", false, func(a, b *Config) bool { return a.Server.Edition == b.Server.Edition }},
		{"heartbeat.interval", true, func(a, b *Config) bool { return a.Heartbeat.Interval == b.Heartbeat.Interval }},
		{"heartbeat.detection_window", true, func(a, b *Config) bool { return a.Heartbeat.DetectionWindow == b.Heartbeat.DetectionWindow }},
		{"heartbeat.request_timeout", true, func(a, b *Config) bool { return a.Heartbeat.RequestTimeout == b.Heartbeat.RequestTimeout }},
		{"heartbeat.poll_interval", true, func(a, b *Config) bool { return a.Heartbeat.PollInterval == b.Heartbeat.PollInterval }},
		{"heartbeat.retry_interval", true, func(a, b *Config) bool { return a.Heartbeat.RetryInterval == b.Heartbeat.RetryInterval }},
		{"ha.listen", false, func(a, b *Config) bool { return a.HA.Listen == b.HA.Listen }},
		{"ha.advertise", true, func(a, b *Config) bool {
			x, y := a.HA.Advertise, b.HA.Advertise
			return (x == nil) == (y == nil) && (x == nil || *x == *y)
		}},
		{"ha.cert_file", false, func(a, b *Config) bool { return tls(a).CertFile == tls(b).CertFile }},
		{"ha.key_file", false, func(a, b *Config) bool { return tls(a).KeyFile == tls(b).KeyFile }},
		{"ha.ca_file", false, func(a, b *Config) bool { return tls(a).CAFile == tls(b).CAFile }},
		{"ha.reconnect_interval", false, func(a, b *Config) bool { return a.HA.ReconnectInterval == b.HA.ReconnectInterval }},
		{"ha.reconnect_attempts", false, func(a, b *Config) bool { return a.HA.ReconnectAttempts == b.HA.ReconnectAttempts }},
		{"ha.source_ports", false, func(a, b *Config) bool {
			x, y := a.HA.SourcePorts, b.HA.SourcePorts
			return (x == nil) == (y == nil) && (x == nil || *x == *y)
		}},
		{"ha.partner_name", false, func(a, b *Config) bool { return a.HA.PartnerName == b.HA.PartnerName }},
		{"ha.partner_fingerprint", false, func(a, b *Config) bool { return a.HA.PartnerFingerprint == b.HA.PartnerFingerprint }},
		{"control.bus", false, func(a, b *Config) bool { return a.Control.String() == b.Control.String() }},
		{"control.admin_group", false, func(a, b *Config) bool { return a.Control.AdminGroup == b.Control.AdminGroup }},
		{"log.level", true, func(a, b *Config) bool { return a.Log.Level == b.Log.Level }},
		{"log.format", false, func(a, b *Config) bool { return a.Log.Format == b.Log.Format }},
		{"syslog.target", true, func(a, b *Config) bool { return ptr(a.Syslog.Target, b.Syslog.Target) }},
		{"syslog.app_name", true, func(a, b *Config) bool { return a.Syslog.AppName == b.Syslog.AppName }},
		{"snmp.enterprise_oid", false, func(a, b *Config) bool { return slices.Equal(a.SNMP.EnterpriseOID, b.SNMP.EnterpriseOID) }},
		{"snmp.trap_listen", false, func(a, b *Config) bool { return ptr(a.SNMP.TrapListen, b.SNMP.TrapListen) }},
		{"snmp.engine_id_file", false, func(a, b *Config) bool { return a.SNMP.EngineIDFile == b.SNMP.EngineIDFile }},
		{"snmp.manager", true, func(a, b *Config) bool { return slices.Equal(a.SNMP.Managers, b.SNMP.Managers) }},
		{"snmp.trap_community_file", false, func(a, b *Config) bool { return a.SNMP.TrapAuth.CommunityFile == b.SNMP.TrapAuth.CommunityFile }},
		{"snmp.trap_user", false, func(a, b *Config) bool { return a.SNMP.TrapAuth.User == b.SNMP.TrapAuth.User }},
		{"snmp.trap_auth_protocol", false, func(a, b *Config) bool { return a.SNMP.TrapAuth.AuthProtocol == b.SNMP.TrapAuth.AuthProtocol }},
		{"snmp.trap_priv_protocol", false, func(a, b *Config) bool { return a.SNMP.TrapAuth.PrivProtocol == b.SNMP.TrapAuth.PrivProtocol }},
		{"snmp.trap_auth_key_file", false, func(a, b *Config) bool { return a.SNMP.TrapAuth.AuthKeyFile == b.SNMP.TrapAuth.AuthKeyFile }},
		{"snmp.trap_priv_key_file", false, func(a, b *Config) bool { return a.SNMP.TrapAuth.PrivKeyFile == b.SNMP.TrapAuth.PrivKeyFile }},
		{"storage.ca_file", false, func(a, b *Config) bool { return a.Storage.CAFile == b.Storage.CAFile }},
		{"storage.keepalive", false, func(a, b *Config) bool { return a.Storage.KeepAlive == b.Storage.KeepAlive }},
		{"storage.pin", false, func(a, b *Config) bool {
			return maps.EqualFunc(a.Storage.Pins, b.Storage.Pins, func(x, y []byte) bool { return slices.Equal(x, y) })
		}},
	}
}

func diff(old, new *Config, reload bool) []string {
	var keys []string
	for _, s := range settings() {
		if s.reload == reload && !s.same(old, new) {
			keys = append(keys, s.key)
		}
	}
	return keys
}

// Reloadable lists the keys that differ between old and new and that
// SIGHUP applies at run time.
func Reloadable(old, new *Config) (changed []string) { return diff(old, new, true) }

// RestartRequired lists the keys that differ between old and new but
// take effect only when the daemon restarts.
func RestartRequired(old, new *Config) (changed []string) { return diff(old, new, false) }
