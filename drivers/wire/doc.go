// Package wire owns the storage control protocol: the framing, messages
// and connection handling between lockstep (the manager, the client) and a
// storage system endpoint (the server: lockstep-lab's emulated storage
// systems, HMCs and z/OS agents).
//
// The protocol is framed, versioned, authenticated, and request/response
// with pipelining plus server-pushed events. Every request carries the
// sender's epoch (the fencing token) and a deadline. This comment is the
// reference a driver writer implements from; the Go API is Client (the
// manager's side) and Serve (the server's side).
//
// # Transport
//
// TCP with TLS 1.3 only (ServerTLSConfig, ClientTLSConfig). The server
// authenticates itself with its certificate; the client authenticates with
// a user and password in its Hello, which only ever travels inside TLS.
// NewSelfSigned makes a CA and a server certificate in memory for a lab
// with no configured certificates; Issue makes one per endpoint.
//
// The certificate must chain to the CA the manager was configured with
// and be valid for the host name (or IP address) the manager dialled.
// It must also prove that the endpoint is the storage system the Hello
// asks for, before the Hello is written (VerifyIdentity): a URI SAN
//
//	urn:lockstep:serial:SERIAL
//
// (the serial path-escaped), or, in a certificate with no such URI, the
// common name SERIAL; or, instead of either, a configured SHA-256 pin of
// the certificate (Fingerprint). A CA that signs for many storage systems
// thus cannot let one of them collect another's password.
//
// An HMC (a management console fronting several storage systems, see
// HMCs below) proves its identity the same way with its own name form
// (VerifyHMCIdentity): a URI SAN
//
//	urn:lockstep:hmc:NAME
//
// (the name path-escaped), the name the client asked for if it asked for
// one, or a pin. There is no common-name fallback for an HMC, so a
// storage system's certificate can never collect an HMC's password; and
// the name the HMC gives in its HelloOK must be one its certificate
// carries.
//
// # Conventions
//
// All integers are big-endian (network order). Names below:
//
//	u8, u16, u32, u64   unsigned integers of 1, 2, 4, 8 bytes
//	i64                 two's complement signed 8 bytes
//	bool                u8, 0 or 1; any other value is malformed
//	name                u8 length n (0..255), then n bytes
//	text                u16 length n (0..1024), then n bytes
//	time                i64 Unix nanoseconds; 0 is the zero time.
//	                    (The single instant 1970-01-01T00:00:00Z thus reads
//	                    back as the zero time.)
//	duration            i64 nanoseconds
//	list(T)             u32 count n, then n elements T
//
// Strings are bytes (UTF-8 by convention, not checked). A decoder refuses a
// list count larger than the bytes left could hold at the element's
// minimum size, before allocating, and refuses bytes left over after the
// last field: every message has exactly one encoding. Enumerations taken
// from hal (pair state, suspend reason, path state, LSS type, copy mode,
// event kind) are carried as is; a receiver shows values it does not know
// numerically. Message types, ops and statuses are the protocol's own and
// unknown values are refused as described below.
//
// # Frames
//
//	offset  size  field
//	0       4     length L: u32, the size of type + body, 1 <= L <= 4 MiB
//	4       1     type: message type
//	5       L-1   body
//
// A reader checks L against its limit before allocating anything: 4 MiB
// (MaxFrameSize) for an authenticated connection, 2 KiB
// (MaxHandshakeFrame) for the handshake. L = 0, L over the limit, or an
// unknown type closes the connection.
//
//	type  message      direction
//	0x01  Hello        client -> server, first frame
//	0x02  HelloOK      server -> client
//	0x03  HelloReject  server -> client, then the server closes
//	0x10  Request      client -> server
//	0x11  Response     server -> client
//	0x12  Event        server -> client, unsolicited
//	0x13  StateChange  server -> client, unsolicited; z/OS hosts only
//
// # Handshake
//
// The client sends a Hello. The server answers HelloOK, or HelloReject and
// closes. The server reads nothing but the Hello before it has accepted
// the credentials: requests a client pipelined behind a refused Hello are
// discarded unread. The handshake must end within the server's handshake
// timeout (10 s by default). There is no version negotiation: the server
// speaks one version and refuses every other with code version (the text
// says which versions: "protocol version 2 is not supported; this server
// speaks version 3"); the layout of HelloReject and of the first 6 bytes
// of Hello will never change, so that clients and servers of any versions
// can tell each other why they cannot talk.
//
// Versions: 1, the first; 2 added HMCs (the Hello's flags and
// HMC name, the HelloOK's HMC name and attached serials, the Request's
// target, and the op attached) and the z/OS extension (the Hello's
// sysplex, reject code sysplex, the op query-online and StateChange
// frames); 3 (this one) added HyperSwap (the ops load-swap, unload-swap,
// swap and swap-status, and SwapEvent frames). The layouts of version 2
// frames are unchanged, but a version 2 client would take a SwapEvent
// frame for a malformed one, so the version changed rather than only
// adding ops (as remove-pairs and remove-paths could). Peers of different
// versions refuse each other with code version.
//
// Hello:
//
//	magic     4 bytes  "LKSP" (0x4C 0x4B 0x53 0x50); anything else is malformed
//	version   u16      protocol version, 3
//	flags     u8       bit 0: the client expects an HMC; other bits must be 0
//	manager   name     the manager's name, for the server's logs
//	serial    name     the storage system the client expects (may be empty);
//	                   must be empty when bit 0 is set
//	hmc       name     bit 0: the HMC the client expects (empty: the one its
//	                   certificate names); must be empty otherwise
//	sysplex   name     the manager's sysplex, stated to a z/OS host (empty:
//	                   none); other endpoints ignore it
//	user      name
//	password  name
//
// A Hello for an HMC that reaches a storage endpoint, or one for a storage
// system that reaches an HMC, is refused with code unknown-serial.
//
// HelloOK:
//
//	version       u16   3; a client refuses any other (bad version)
//	serial        name  the storage system this connection serves; a client
//	                    that asked for a serial refuses another. Empty from
//	                    an HMC
//	capabilities  u32   bit 0: heartbeat (the connection carries the heartbeat
//	                    ops); other bits must be 0
//	epoch         u64   the highest epoch the storage system has seen (0 from
//	                    an HMC: each system behind it has its own)
//	hmc           name  the HMC's name; empty from a storage endpoint
//	attached      list(name)  the serials the HMC fronts (its attached
//	                    devices); empty from a storage endpoint
//
// A client reads the HelloOK (or HelloReject) with a limit of 64 KiB
// (MaxHelloAnswerFrame): the server's certificate is verified by then, and
// an HMC's list may be long.
//
// HelloReject:
//
//	code  u8    1 version, 2 auth (user or password wrong; the text does not
//	            say which), 3 unknown-serial (the endpoint does not serve the
//	            serial asked for), 4 unavailable (the storage system cannot
//	            serve now; retry later), 5 sysplex (a z/OS host: the
//	            manager is not in the host's sysplex; the text names both)
//	text  text  why, for people
//
// # Requests and responses
//
// After HelloOK the client sends Requests and the server answers each with
// a Response carrying the same ID, in any order: requests are handled
// concurrently (64 in flight per connection by default, beyond which the
// server stops reading). The client chooses IDs; the Go client numbers
// them 1, 2, 3... per connection.
//
// Request:
//
//	id       u64
//	epoch    u64       the sender's epoch; the storage system answers fenced
//	                   if it has seen a higher one
//	timeout  i64       nanoseconds the server may spend, > 0 (the time left
//	                   before the caller's deadline). The server measures it
//	                   from when it reads the request and caps it (5 min by
//	                   default); past it the answer is status timeout.
//	op       u8        see Ops
//	target   name      the storage system the request is for: through an
//	                   HMC, one of its attached serials; on a storage
//	                   endpoint empty (its own system) or its own serial.
//	                   Any other target is answered with status unreachable
//	                   without running
//	args     the rest  the op's arguments, see Ops
//
// Response:
//
//	id      u64
//	status  u8        see Status codes; unknown values are malformed
//	text    text      the error, for people (empty when status is ok)
//	result  the rest  the op's result when status is ok; empty otherwise
//
// A request for an op the server does not know is answered with status
// unsupported. Anything else undecodable (a malformed request or malformed
// arguments, a frame of the wrong direction) closes the connection. A
// request the server read still runs to its end if the connection drops.
//
// # Status codes
//
//	0  ok
//	1  fenced             hal.ErrFenced: the epoch is lower than one already seen
//	2  refused            hal.ErrRefused: invalid in the current state
//	3  heartbeat-expired  hal.ErrHeartbeatExpired
//	4  unsupported        hal.ErrUnsupported: unknown op, or a heartbeat op on a
//	                      connection without the heartbeat capability
//	5  timeout            hal.ErrTimeout: the timeout passed; the command may or
//	                      may not have run
//	6  internal           anything else
//	7  unreachable        hal.ErrUnreachable: the server could not reach the
//	                      storage system it fronts (an HMC)
//
// # Ops
//
// Element layouts:
//
//	LSSRef      serial name, lss u8                      (min 2 bytes)
//	VolumeRef   serial name, volume u16                  (min 3 bytes)
//	LSSPair     source LSSRef, target LSSRef             (min 4 bytes)
//	VolumePair  source VolumeRef, target VolumeRef       (min 6 bytes)
//	PathSpec    LSSPair, consistency-group bool          (min 5 bytes)
//	PairSpec    VolumePair, copy-mode u8                 (min 7 bytes)
//	PathStatus  LSSPair, consistency-group bool, state u8                 (min 6)
//	PairStatus  VolumePair, state u8, reason u8, out-of-sync u64 (<= 2^63-1) (min 16)
//	LSSStatus   lss u8, type u8, cg-timeout duration, elb-until time      (18)
//
// Arguments and results (ops of the hal.StorageSystem commands):
//
//	op    name               args                                   result
//	0x01  ping               (none)                                 (none)
//	0x02  establish-paths    list(PathSpec)                         (none)
//	0x03  establish-pairs    list(PairSpec)                         (none)
//	0x04  freeze             list(LSSPair)                          (none)
//	0x05  thaw               list(lss u8)                           (none)
//	0x06  suspend            list(VolumePair)                       (none)
//	0x07  recover            list(VolumePair)                       (none)
//	0x08  failback           list(VolumePair)                       (none)
//	0x09  enable-heartbeat   session name, timeout duration,        (none)
//	                         list(LSSPair)
//	0x0A  heartbeat          session name                           (none)
//	0x0B  disable-heartbeat  session name                           (none)
//	0x0C  query-pairs        (none)                                 list(PairStatus)
//	0x0D  query-paths        (none)                                 list(PathStatus)
//	0x0E  query-lsss         (none)                                 list(LSSStatus)
//	0x0F  attached           (none)                                 list(Attached)
//	0x10  query-online       (none)                                 list(OnlineSystem)
//	      (z/OS extension: the storage systems a z/OS host has online.
//	      Any other endpoint answers it unsupported.)
//	0x11  remove-pairs       list(VolumePair)                       (none)
//	0x12  remove-paths       list(LSSPair)                          (none)
//	      (terminate: hal.StorageSystem.RemovePairs and RemovePaths.
//	      Added to version 2 without a version change: both are new ops,
//	      and a version 2 server that predates them answers them
//	      unsupported, which tells a manager exactly what it cannot do;
//	      no existing op changed.)
//
//	0x13  load-swap          session name, list(VolumePair)         (none)
//	0x14  unload-swap        session name                           (none)
//	0x15  swap               session name                           (none)
//	0x16  swap-status        (none)                                 list(SwapState)
//	      (HyperSwap, version 3: hal.SwapHost, carried by a z/OS host's
//	      discovery connection only; any other endpoint answers them
//	      unsupported. At most 65 280 pairs per session.)
//
//	Attached      serial name, link-up bool                (min 2 bytes)
//	SwapState     session name, list(VolumePair), swapped bool, ready bool,
//	              why text                                 (min 9 bytes)
//	OnlineSystem  serial name, channels-up bool            (min 2 bytes)
//
// "(none)" is zero bytes. Ping and attached are answered by the
// connection itself, not a storage system; their epoch and target are
// ignored. Attached lists the systems an HMC fronts and whether it
// reaches each now (its private link is up); a storage endpoint lists
// itself, up.
//
// # HMCs
//
// An HMC endpoint fronts several storage systems (Router): one
// connection carries the requests for all of them, each naming its
// target, and the events of all of them. An HMC that cannot reach the
// target (not attached, private link down, system down) answers status
// unreachable: the command did not run, and a manager with a second HMC
// sends it there. Heartbeat ops pass through an HMC like any command.
//
// # Events
//
// The server pushes every event of its storage system while the
// connection lives, in the order raised. An event whose serial (or, for a
// suspend, whose LSS pair's source serial) is not the serial of the
// HelloOK is dropped by the client, counted and logged: an endpoint
// speaks only for the storage system it authenticated as. An HMC pushes
// the events of its attached systems, each naming its own system; one
// naming a serial its HelloOK did not list is dropped the same way. Events raised while no
// connection is up are lost; the manager polls as a backstop. Every field
// is present whatever the kind:
//
//	kind     u8        1 suspend, 2 heartbeat-expiry, 3 fenced
//	serial   name      the storage system
//	seq      u64       the system's event number
//	at       time      when it happened, on the storage system's clock
//	lsspair  LSSPair   suspend: the LSS pair
//	reason   u8        suspend: the suspend reason
//	volumes  4 x u64   suspend: bitmap of volume numbers of the source LSS;
//	                   volume n is bit n%64 of word n/64
//	session  name      heartbeat-expiry: the session
//	epoch    u64       fenced: the highest epoch the system knows
//
// # z/OS extension
//
// A z/OS host agent (the "z/OS connection", default port
// 5858, DefaultZOSPort) speaks this protocol on behalf of the storage
// systems it has online: it carries the commands out in-band over its
// channels. A manager opens one connection per storage system it reaches
// through the host; the Hello's serial picks the system (a system the
// host does not have online is refused unknown-serial). A Hello naming no
// serial opens a discovery connection, which carries only query-online
// (the systems the host has online and whether its channels to each
// work); storage commands on it are refused. A request's target is empty
// or the HelloOK's serial, as on a storage endpoint; attached lists that
// system (none on a discovery connection). The Hello's sysplex
// says which sysplex the manager is in: a host serves only managers of
// its own sysplex and refuses the others with code sysplex (ErrSysplex,
// which wraps hal.ErrAuth). Credentials are the host's, not the storage
// system's.
//
// The host's certificate names the host, not a storage system: a URI SAN
//
//	urn:lockstep:zos:HOST
//
// (the name path-escaped; ZOSHostURI, VerifyZOSHost), or a configured
// pin. Its common name never counts, and a certificate naming any
// urn:lockstep: URI is never accepted for a storage serial by its common
// name either, so that one CA may sign for storage systems and hosts
// without letting either stand in for the other.
//
// HelloOK from a host never has the heartbeat capability: the Metro
// Mirror heartbeat does not work through z/OS. Heartbeat ops are answered
// unsupported. Commands for a system whose channel from the host is down
// are answered unreachable.
//
// The host pushes Event frames only of kind fenced (a command of the
// manager's carried a stale epoch). It reports pair state changes instead
// as StateChange frames, the state-change messages (IEA494I) the host
// raises when the storage system interrupts it. One frame stands for the
// messages every LPAR with the devices online logs: the host sends it
// once, naming the LPARs, rather than once per LPAR, since the manager
// acts on the change, not on consoles. A client takes them only when it
// asked to (ClientOptions.StateChanges); otherwise one closes the
// connection as malformed. One naming another storage system than the
// HelloOK's is dropped and counted, as a foreign event is.
//
// A z/OS host's discovery connection also carries HyperSwap: the
// swap ops above, and SwapEvent frames, one per swap the host carried out
// (planned or on its own), pushed while the connection lives. A client
// takes them only when it asked to (ClientOptions.SwapEvents); otherwise
// one closes the connection as malformed. One raised while no connection
// is up is lost: swap-status is the backstop.
//
// SwapEvent:
//
//	session  name   the HyperSwap session
//	planned  bool   a swap command; false: the host swapped on its own
//	trigger  text   what made it swap
//	host     name   the z/OS host (system name)
//	at       time   when it swapped, on the host's clock
//
// StateChange:
//
//	kind       u8        1 pair pending, 2 pair suspending, 3 pair suspended,
//	                     4 pair full duplex, 5 extended long busy state; any
//	                     other value is malformed
//	host       name      the z/OS host
//	seq        u64       the host's message number
//	at         time      when the storage system raised it
//	serial     name      the storage system
//	event-seq  u64       the storage system's number of the suspend event of
//	                     the same change (as an Event frame's seq), 0 if none
//	lsspair    LSSPair   the pairs' LSS pair; extended long busy: the source
//	                     LSS, the target empty
//	reason     u8        suspending, suspended: the suspend reason
//	volumes    4 x u64   the devices: bitmap of volume numbers of the source LSS
//	lpars      list(name) the LPARs that logged it, at most 256
//
// # Limits
//
//	frame (type + body)       4 MiB (MaxFrameSize); a QueryPairs reply for
//	                          65 280 pairs with 16-byte serials is ~3.1 MB
//	handshake frame           2 KiB (MaxHandshakeFrame) read by a server; the
//	                          largest Hello body is 1 288 bytes. 64 KiB
//	                          (MaxHelloAnswerFrame) read by a client
//	name                      255 bytes (MaxName)
//	text                      1 024 bytes (MaxText); servers cut longer errors
//	requests in flight        64 per connection by default (server option)
//	request timeout           5 min cap by default (server option)
//	handshake                 10 s by default, both sides
//	one frame write           10 s by default, both sides; a write that does
//	                          not finish closes the connection
//
// # Errors
//
// Decoders never panic and wrap one of ErrFrameTooLarge, ErrMalformed,
// ErrUnknownType, ErrBadVersion (or ErrUnknownOp for an op they do not
// know). Client errors wrap the hal sentinels the core sorts on:
// hal.ErrTimeout when a Call's context ends (ErrTimeout), hal.ErrUnreachable
// when the connection dies (ErrConnLost, ErrClosed), hal.ErrAuth for
// refused credentials, and for a non-ok status a *RemoteError wrapping the
// status's hal error.
package wire
