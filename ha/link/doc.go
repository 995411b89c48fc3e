// Package link owns the HA pair's peer transport: the connection
// between the two management servers (tcp or vsock, mutual TLS), its
// framed and size-bounded messages, the keepalives that declare a silent
// peer down, and the shipping of the active's journal to the standby with
// acknowledgements sent only after the standby's fsync.
//
// The Go API: Dial and Listen (Listener.Accept) return a *Conn, an
// authenticated link; a Sender (active side) reads a Source (a
// persist.Journal) and a Receiver (standby side) writes a Sink (a
// StoreSink over the standby's store, a persist.Store whatever state its
// records build: the link ships bytes); both report to the HA
// state machine with ha events (ha.Loop.Post) and are driven by its
// actions (SendSnapshot, StartStream, RequestSync).
//
// # Transport
//
// "tcp://host:port" (the default scheme) or "vsock://cid:port", for a
// standby on the hypervisor host of the active's VM. The listener's port
// is fixed; the dialing side uses an ephemeral port, or, with
// Options.SourcePorts, binds each port of a fixed range in turn (skipping
// ports in use) so that a firewall can name it. vsock has no source
// ports.
//
// TLS 1.3 only, mutual: the accepting side requires a client certificate
// and the dialing side verifies the server's, both against the CA of the
// pair (Credentials); each server's certificate carries both serverAuth
// and clientAuth. A connection whose certificate fails is refused during
// the handshake, before any message is read; a Listener logs it (msg_id
// ha-link-refused-W) and never returns it. Host names are not checked
// here (peers are addressed by IP or vsock CID): the link reports what
// the verified certificate says (Conn.PeerCert, in Conn.PeerInfo: its
// DNS and URI names and its SHA-256), and the HA state machine accepts
// the link only if that is the configured partner (ha.PeerInfo.Cert).
//
// A Listener runs at most 64 handshakes at once. A new connection must
// send the first TLS record within Options.PreTLSTimeout (2 s) or it is
// closed, and anything but a TLS handshake record is closed at once; when
// the slots are full, a new connection evicts an idle one (nothing
// received), the oldest of the address that holds the most, so that
// connections that send nothing, renewed as fast as they are closed,
// cannot keep the partner out; an address may hold at most 16 started
// TLS handshakes. Refusals and evictions are logged as a count, at most
// every 10 s (see slots.go).
//
// # Frames
//
// All integers are big-endian.
//
//	offset  size  field
//	0       4     length L: u32, the size of type + body, L >= 1
//	4       1     type
//	5       L-1   body
//
// A reader checks L against its limit before allocating: 4 KiB
// (MaxHandshakeFrame) until the peer's Hello is accepted, then
// MaxFrame (64 MiB + 4 KiB: one journal record of persist.MaxPayload
// fits). L = 0, L over the limit, an unknown type, a malformed body or
// bytes left after the last field close the connection: every message
// has exactly one encoding.
//
//	type  message      direction         body
//	0x01  Hello        both, first       magic "LKHA", version u16 (2), role u8,
//	                                     epoch u64, last index u64,
//	                                     name (u8 length, 0-255 bytes),
//	                                     listen (u16 length, 0-1024 bytes)
//	0x02  Goodbye      both, last        reason (u16 length, 0-1024 bytes)
//	0x03  Keepalive    both              interval i64 (ns, 1 ns - 2^42 ns),
//	                                     last index u64
//	0x04  EpochNotice  both              epoch u64
//	0x05  View         both              count u16 (<= 256), count x (
//	                                     connection (u8 length, 1-255 bytes),
//	                                     endpoint u8, name (u8 length,
//	                                     0-255 bytes), state u8 (1 connected,
//	                                     2 connecting, 3 disconnected),
//	                                     detail (u16 length, 0-1024 bytes))
//	0x10  SyncRequest  standby -> active full bool (u8 0 or 1), index u64,
//	                                     sum [32]byte (SHA-256 of the payload
//	                                     of record index; zero when index 0)
//	0x11  Snapshot     active -> standby index u64, total u64 (<= 1 GiB),
//	                                     offset u64, data (the rest:
//	                                     offset + len <= total)
//	0x12  Records      active -> standby first u64 (>= 1), durable u64,
//	                                     count u32, count x (length u32
//	                                     (<= 64 MiB), payload)
//	0x13  Ack          standby -> active index u64
//
// Roles: 0 standalone, 1 active, 2 standby, 3 disconnected-standby (the
// values of ha.Role).
//
// # Handshake
//
// After TLS, each side sends its Hello at once and reads the peer's
// (within Options.HandshakeTimeout, on the injected clock): the server's
// name, its listener address (an unspecified host, 0.0.0.0 or vsock
// "any", is replaced by the address the connection came from, to make it
// dialable), its role, epoch and last durable record. A Goodbye instead
// of a Hello ends the attempt with its reason; a second Hello later
// closes the link. There is no version negotiation: a Hello of another
// version is refused. What the roles and epochs mean is the HA state
// machine's business (ha.LinkUp).
//
// # Keepalive
//
// Each side sends a Keepalive every Options.KeepaliveInterval (1 s by
// default) whatever else it sends, announcing that interval. A side that
// has received nothing (any frame counts) for KeepaliveMisses (3) of the
// peer's announced intervals closes the link with ErrPeerSilent (the
// rule is Silent). A frame waiting for the reader to take it counts as
// life. Both run on the injected clock.
//
// # View
//
// Each side sends a View, its own connection status to each endpoint of
// its HMC connections, when the link comes up and whenever it changes;
// the link keeps the peer's last one (Conn.PeerView) for the partner's
// view in hmc show (CSM's remote connection status). Version 2 of the
// protocol added it: a Hello of version 1 is refused, as any other.
//
// # Synchronization and shipping
//
//  1. The standby, having taken its backup, sends SyncRequest: full, or
//     a catch-up after its last record (index and the SHA-256 of that
//     record's payload).
//  2. The active answers a full request with the latest snapshot
//     (Snapshot frames of 1 MiB, in order; an empty state at index 0 if
//     the journal has no snapshot), then records from the snapshot's
//     index + 1. A catch-up goes on after the standby's record if the
//     journal still holds it with the same payload; if it was compacted,
//     differs, or lies beyond the journal's end, a snapshot is sent
//     instead.
//  3. The first Records frame after the snapshot (possibly empty) carries
//     in durable the active's last record: once the standby has made that
//     one durable both sides report StreamCaughtUp (Synchronized). Then
//     every record is shipped as soon as the journal made it durable,
//     batched up to about 1 MiB per frame.
//  4. The standby installs the snapshot, or appends the records, through
//     its Sink, which returns only after fsync; only then it sends Ack
//     with its last durable index. The active counts a record replicated
//     when an Ack covers it (Sender.WaitAcked).
//  5. If the active's reader finds its next records compacted meanwhile,
//     it sends the latest snapshot and goes on after it.
//
// A standby that leaves a frame unacknowledged for
// SenderOptions.AckTimeout (10 s by default, on the injected clock; the
// rule is AckOverdue) ends the link with ErrAckTimeout: its keepalives
// alone would keep a standby with a hung disk linked, and the active's
// clients waiting.
//
// Records must follow the standby's last index without gap, acks may not
// exceed what was sent, and nothing is applied before the SyncRequest:
// any violation closes the link (ErrProtocol). A Sink that fails ends the
// link and reports ha.SyncFailed (the standby then restores its backup);
// so does a journal that cannot be read on the active.
package link
