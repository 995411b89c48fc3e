// Package lab serves emulated storage systems the way real ones are
// reached: each system on two cluster endpoints (TLS 1.3, the storage
// control protocol of drivers/wire, per-system credentials), plus the lab
// control API on a unix socket through which tests and the lockstep-lab
// command inject faults, run the dependent-write workload and ask the
// oracle for its verdict.
//
// # Lab file
//
// A TOML file, decoded strictly (unknown keys and upper-case keys are
// errors; durations are strings):
//
//	speed = 1                       # storage time runs this many times faster than real time
//	copy_per_block = "100us"        # establish/resync copy time per block
//	control_socket = "lab.sock"     # the control API (the --control flag overrides)
//	[tls]                           # optional: generated in memory when absent
//	cert_file = "server.pem"
//	key_file = "server-key.pem"
//	ca_out = "lab-ca.pem"           # where to write the CA the managers must trust
//	[[system]]
//	serial = "LAB.2107-75P0001"
//	user = "lockstep"
//	password = "secret"
//	endpoints = ["127.0.0.11:0", "127.0.0.12:0"] # cluster 0 and 1; port 0 picks one
//	  [[system.lss]]
//	  id = "10"                     # hex
//	  type = "FB"                   # or CKD
//	  volumes = 4
//	  cg_timeout = "60s"            # optional: 60s FB, 120s CKD
//	[[mirror]]                      # which volumes pair up (same ids), for the workload and oracle
//	source = "LAB.2107-75P0001"
//	target = "LAB.2107-75S0001"
//	[[hmc]]                         # optional: an emulated HMC (management console)
//	name = "HMC1"
//	user = "hmcadmin"               # the HMC's own credentials
//	password = "secret"
//	endpoint = "127.0.0.101:0"
//	systems = ["LAB.2107-75P0001"]  # its attached storage systems
//	processing = "200us"            # optional: added to every command and event it relays (default 200us)
//	link_latency = "100us"          # optional: one way over its private link to a system (default 100us)
//	[[zos]]                         # an emulated z/OS host (optional, any number)
//	name = "SYSA"                   # its certificate names it: urn:lockstep:zos:SYSA
//	sysplex = "PLEX1"               # it serves only managers stating this sysplex
//	endpoint = "127.0.0.93"         # the agent; port 5858 when none is written
//	user = "zosmgr"
//	password = "secret"
//	channel_latency = "1ms"         # optional (1ms): added to every command in-band
//	cert_file = "sysa.pem"          # optional: else the lab's CA issues one
//	key_file = "sysa-key.pem"
//	lpars = ["SYSA1", "SYSA2"]
//	  [[zos.online]]                # a storage system the host has online
//	  system = "LAB.2107-75P0001"
//	  channels = ["40", "41"]       # CHPIDs
//	  lpars = ["SYSA1"]             # optional: the LPARs with its devices online (all)
//
// Without cert_file the lab makes a CA and gives every cluster endpoint a
// certificate of its own, as a real array's clusters have: it names the
// storage system (URI SAN urn:lockstep:serial:SERIAL, see drivers/wire)
// and the endpoint's listen host (or localhost, 127.0.0.1 and ::1 for an
// unspecified or "localhost" host), so a manager must verify each cluster
// against its own address. Give each system its own loopback addresses
// (Linux routes all of 127.0.0.0/8 to lo): its traps then leave from its
// cluster 0 address, and a manager can tell the systems apart by source.
//
// # HMCs
//
// An [[hmc]] fronts the storage systems it lists; a system sits behind at
// most two HMCs (a dual HMC) and keeps its own cluster endpoints. The
// HMC relays each command over its private link to the target system
// (processing, then the link both ways: 400 µs at the defaults) and
// forwards the systems' events (processing plus one link crossing). Its
// certificate, from the lab's CA, names the HMC (URI SAN
// urn:lockstep:hmc:NAME) and its listen host, and it speaks protocol
// version 2 of drivers/wire: a Hello for an HMC, then a target serial on
// every request. A configured cert_file is served by the HMCs too; it
// names no HMC, so managers must pin it. The commands an HMC relays are
// recorded under the manager's name.
//
// The faults of an HMC are its own: kind "hmc" with mode "down" (its
// connections closed, new ones refused), "blackhole" (connections stay
// open, nothing is answered or forwarded), "up", or a latency D one way
// between the HMC and its managers (every relayed command waits D before
// the HMC relays it, every answer and event D before it reaches the
// manager); kind "hmc-link" takes the private link to one
// system down or up (that system's commands are answered unreachable, its
// events are lost for that HMC), or with mode "blackhole" black-holes it
// (the HMC, which answers as before, relays that system's commands and
// they hang until their deadline; its events are lost for that HMC). With a manager, kind "hmc" with mode
// "down" or "up" concerns that manager alone (the network between it and
// the HMC: its connections closed, its log-on refused; for an HA pair
// whose standby cannot reach an HMC the active can):
//
//	{"op":"fault","fault":{"kind":"hmc","hmc":"HMC1","mode":"blackhole"}}
//	{"op":"fault","fault":{"kind":"hmc","hmc":"HMC2","mode":"down","manager":"lockstep-b"}}
//	{"op":"fault","fault":{"kind":"hmc","hmc":"HMC1","latency":"5ms"}}
//	{"op":"fault","fault":{"kind":"hmc-link","hmc":"HMC1","system":"LAB.2107-75P0001","up":false}}
//	{"op":"fault","fault":{"kind":"hmc-link","hmc":"HMC1","system":"LAB.2107-75P0001","mode":"blackhole"}}
//
// # Control API
//
// One JSON request per connection on the unix socket, one JSON Response
// back (see Request and Response). Faults act per endpoint: "down" closes
// the manager connections of an endpoint and refuses new ones, "blackhole"
// keeps them open but executes and answers nothing, latency D is the
// one-way latency of the network to the managers (a command waits D
// before it runs, its answer and every event D before they reach the
// manager: a command costs 2D, as over a link with D each way). A crash closes every connection of the system and refuses new
// ones until the restart.
//
// # z/OS hosts
//
// A z/OS host agent speaks the wire protocol's z/OS extension (see
// drivers/wire): a manager opens one connection per storage system, naming
// it in the Hello and stating its sysplex. The host checks the credentials
// first, then the sysplex (another or none is refused with reject code
// sysplex, naming both), then that it has the system online. It carries
// the manager's commands in-band (they reach the storage system under the
// manager's name and epoch, after the channel latency and any injected
// latency on the lab clock), refuses the heartbeat ops (unsupported: the
// heartbeat does not work through z/OS), and passes on the fenced events of
// the manager's commands.
//
// Every pair state change of a system it has online (pair pending,
// suspending, suspended, full duplex; extended long busy on an LSS)
// reaches the host as an interrupt over its channels and goes to every
// manager connected for that system as one StateChange message naming the
// LPARs with the devices online: deduplicated rather than one copy per
// LPAR, since a manager acts on the change, not on consoles, and copies
// would multiply the traffic on the connection S5 freezes through. An
// interrupt raised while the host is down or black-holed, or while its
// channels to the system are down, is lost: whether the host hears it is
// judged at the instant the system raises it. Interrupts carry no channel
// latency (microseconds on real FICON); commands do.
//
// Faults: "zos" (host down: connections closed and refused; blackhole:
// connections kept, nothing answered or sent; up; or latency D added to
// every command) and "channel" (the host's channels to one system down:
// its commands answer unreachable, its interrupts are lost; or up):
//
//	{"op":"fault","fault":{"kind":"zos","host":"SYSA","mode":"blackhole","endpoint":-1}}
//	{"op":"fault","fault":{"kind":"channel","host":"SYSA","system":"LAB.2107-75P0001","mode":"down","endpoint":-1}}
//
// Each host also has an I/O view (emu.Host, Server.ZOSHost): its
// applications' writes, its device map and the HyperSwap it runs. Its
// discovery connection (a Hello naming no storage system) carries
// hal.SwapHost through it: load-swap, unload-swap, swap and swap-status,
// and a SwapEvent frame for every swap the host makes, planned or on its
// own (drivers/zos.OpenSwapHost is the manager's side). The faults reach
// that view too: a host down fails every write (IPL'd), a channel down
// fails the writes to that system (a swap trigger for a loaded,
// swap-ready session), as does a crash of the system; a black hole is the
// agent's link only, and the host goes on writing and swapping.
//
// A workload started with "via_host" (lockstep-lab workload start
// --via-host HOST) writes through that host's I/O view, which must have
// every system of the workload online; check then also holds each chain
// the host swapped (its volumes now on H2) to the lost-write rule
// (workload.CheckAcked: "acked_checked", "lost_writes", "first_lost"):
//
//	{"op":"workload","workload":{"action":"start","chains":16,"volumes_per_chain":8,"via_host":"SYSA"}}
//	{"op":"check"}
//	{"ok":true,"report":{"consistent":true,...,"acked_checked":true,"lost_writes":0},"via_host":"SYSA"}
//
// The op "trap-register" makes the systems send their suspend and
// heartbeat-expiry events as SNMPv2c traps to a UDP receiver (the format
// is in internal/emu's trap.go), gated by the manager's endpoint faults like
// pushed events:
//
//	{"op":"trap-register","trap":{"addr":"127.0.0.1:10162","community":"lab","manager":"lockstep-a"}}
//
// With "hmc", the HMC of that name sends the traps of every system it
// fronts, from its own endpoint's address, as a real HMC sends its
// storage systems' Copy Services traps; the HMC's own faults (down,
// black-holed, a private link down) lose them, a manager's endpoint
// faults do not. Every sender keeps to one suspend trap per LSS per 5 s
// (emu.TrapInterval):
//
//	{"op":"trap-register","trap":{"addr":"127.0.0.1:10162","community":"lab","hmc":"LAB-HMC1"}}
//
// The op "commands" reads the record of the commands the systems judged
// (see emu.Fabric.Commands): every command that reached a system's epoch
// check, with the manager's name from its handshake, the command's epoch,
// the system's epoch before it, and the outcome ok, refused or fenced. It
// answers the records after a sequence number, oldest first, at most
// MaxCommandsPerAnswer (or limit) of them, with "more" set when records
// remain, and "dropped": how many records after that number the bounded
// log (Options.CommandLogSize) no longer held. FetchCommands pages through
// them:
//
//	{"op":"commands","commands":{"after":0}}
//	{"ok":true,"commands":[{"seq":1,"at":"2026-11-22T00:00:00Z","serial":"LAB.2107-75P0001",
//	  "manager":"lockstep-a","epoch":2,"system_epoch":1,"op":"freeze","outcome":"ok"}]}
package lab
