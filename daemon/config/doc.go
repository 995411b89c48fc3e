// Package config owns /etc/lockstep/lockstep.toml: it decodes the file
// strictly into a raw form, then validates it into a typed Config with
// defaults. The shipped, commented reference file is
// etc/lockstep/lockstep.toml in the repository; a test checks that it
// parses to exactly Default(), and that its commented-out examples are
// valid.
//
// # Strictness
//
//   - Unknown keys are errors, and so are keys not in lower case
//     (BurntSushi/toml matches keys case-insensitively; ours are lower
//     case). A problem names the key and its line.
//   - Durations are strings with a unit ("1s"); a bare number is refused
//     (it has no unit), and so is zero or a negative duration. Every
//     duration has a floor (the Min* constants, each saying why): "1ns"
//     is a unit typed wrong, not a setting.
//   - A number too large for the decoder (beyond int64 or float64) is a
//     problem of its key, named with its line, like any bad value.
//   - Addresses are "tcp://host:port", "udp://host:port" or
//     "vsock://cid:port" (see ParseAddr), parsed into an Addr; the port is
//     always required; which schemes a key accepts is fixed per key.
//   - File paths are absolute. Secrets are never in the file: keys name
//     files that hold them.
//   - Every problem is reported, not only the first: Parse and Load return
//     Problems, one Problem a line, sorted by line ("FILE:LINE: KEY: MSG"),
//     each wrapping one of the Err* kinds. Only a TOML syntax error, or a
//     value where a section belongs (server = 5, [snmp.manager] for
//     [[snmp.manager]]), stops the checking early: the decoder cannot go
//     on after it.
//
// BurntSushi/toml v1.6 does not expose the position of a key (only of a
// decoding error), so the lines come from a small scanner (scan.go) that
// reads the text again, after the decoder accepted it.
//
// # Keys
//
//	key                             default                   notes
//	server.name                     host name                 [A-Za-z0-9._-], 1–64
//	server.state_dir                /var/lib/lockstep         absolute
//	server.edition                  "full"                    "full" | "basic" (no HA)
//	heartbeat.interval              "1s"                      ≥ 100ms; the switch is state, not config
//	heartbeat.detection_window      "2s"                      ≥ interval, ≥ 500ms
//	heartbeat.request_timeout       "2s"                      ≥ 100ms
//	heartbeat.poll_interval         "5s"                      ≥ 1s
//	heartbeat.retry_interval        "500ms"                   ≥ 100ms
//	ha.listen                       "tcp://0.0.0.0:9730"      tcp | vsock
//	ha.advertise                    ha.listen                 tcp | vsock: the address the partner dials
//	ha.cert_file, key_file, ca_file none                      mutual TLS, all three or none
//	ha.reconnect_interval           "1m"                      ≥ 1s
//	ha.reconnect_attempts           10                        0–1000
//	ha.source_ports                 none (ephemeral)          "40000-40009", ≥ 1024
//	control.bus                     "system"                  "session" | D-Bus address
//	control.admin_group             "lockstep"                may call the changes (with root)
//	log.level                       "info"                    debug | info | warn | error
//	log.format                      "auto"                    auto | journal | text
//	syslog.target                   none                      udp | tcp
//	syslog.app_name                 "lockstepd"               RFC 5424 APP-NAME
//	snmp.enterprise_oid             "1.3.6.1.4.1.61942"       placeholder PEN
//	snmp.trap_listen                none                      udp
//	snmp.engine_id_file             state_dir/snmp-engine-id  absolute
//	snmp.manager[].address          required                  udp; unique
//	snmp.manager[].version          required                  "v2c" | "v3" (authPriv)
//	snmp.manager[].notification     "trap"                    "trap" | "inform"
//	snmp.manager[].community_file   v2c: required
//	snmp.manager[].user             v3: required              1–32 characters
//	snmp.manager[].auth_protocol    "SHA-256"                 SHA-224 | SHA-256 | SHA-384 | SHA-512
//	snmp.manager[].priv_protocol    "AES"                     AES (= AES-128) | AES-192 | AES-256
//	snmp.manager[].auth_key_file    v3: required
//	snmp.manager[].priv_key_file    v3: required
//	snmp.manager[].retries          3                         informs; 0–20
//	snmp.manager[].timeout          "1s"                      informs; 100ms–1m
//	snmp.manager[].queue            1000                      1–1000000
//
// # Heartbeat timings
//
// The [heartbeat] values build a freeze.Timings; they must pass
// freeze.Timings.Validate, and freeze.DeriveH(LowestCGTimeout, t) must
// give an H: the lowest CG timeout a session can have is 60 s (FB), and
// timings that leave no valid H for it are refused with the freeze
// package's own message (problem kind ErrTiming, cause freeze.ErrTiming).
//
// # Decisions
//
//   - HA needs mutual TLS. cert_file, key_file and ca_file go together.
//     They are required when ha.listen is written in the file. Otherwise
//     they may be left out: the server then runs standalone, does not
//     listen, and Config.HAAvailable says why HA commands are refused.
//     The daemon calls HAAvailable before listening and when a peer is
//     configured (the peer is persisted state, set with lockstepctl, not
//     config), so "required if a peer is configured" is enforced there.
//   - The basic edition with any [ha] key is an error, not a warning: a
//     file that configures HA on a server that cannot do HA misleads
//     whoever reads it. An empty [ha] table is accepted.
//   - Accepted oddities are Config.Warnings (printed by --check-config,
//     logged at start): a listener port below 1024 (the unit then needs
//     CAP_NET_BIND_SERVICE), and retries/timeout on a trap manager (they
//     apply to informs only).
//   - Two managers with the same address (compared after parsing: host
//     names in lower case, IPv6 in canonical form) are an error.
//   - Parse is pure except for the default server name, os.Hostname.
//
// # Reloading
//
// Reloadable and RestartRequired compare two configs; see reload.go for
// what SIGHUP applies at run time (heartbeat timings, log level, syslog,
// SNMP managers) and what waits for a restart (everything else: state
// directory, HA listener and TLS, control bus, server name, ...).
package config
