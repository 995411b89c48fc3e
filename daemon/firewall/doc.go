// Package firewall owns the firewall hints lockstepd gives: from the
// config, the storage endpoints and the HA peer, it lists the
// connections lockstepd makes and accepts, and writes them as ready rules
// for this host.
//
// The connections:
//
//	in   tcp  HA listener (ha.listen), from the peer when it is known
//	out  tcp  to the HA peer, from [ha] source_ports or the ephemeral range
//	in   udp  storage traps (snmp.trap_listen), from any host
//	out  tcp  to every storage endpoint, from the ephemeral range
//	out  udp  to every SNMP manager, from the ephemeral range
//	out  udp/tcp  to the syslog collector, from the ephemeral range
//
// The local ephemeral port range is read from the kernel
// (/proc/sys/net/ipv4/ip_local_port_range, which also governs IPv6; the
// path is injectable) every time rules are made, so that a changed
// sysctl is seen. Each connection gives two packet rules: the packets
// that open it and their replies (the second matters only to a filter
// that does not track connections; with conntrack it is harmless).
// vsock is not filtered by netfilter: vsock connections are listed, with
// no rule. The HA listener appears only when HA is available (see
// config.Config.HAAvailable).
//
// Formats:
//
//   - nft: a file for nft -f defining table inet lockstep with an input
//     and an output base chain (policy accept). It replaces an earlier
//     copy of the table when loaded again. nftables evaluates every base
//     chain of a hook, and an accept in one table does not undo a drop in
//     another: where the host's policy lives in another table, the rules
//     are to be copied into its chains (the file says so).
//   - iptables, ip6tables: iptables-restore --noflush input for one
//     family: chains LOCKSTEP-IN and LOCKSTEP-OUT and a jump to each from
//     the top of INPUT and OUTPUT. A rule with a host name goes into the
//     IPv4 file (iptables and nft resolve names when they load them).
//   - text: a table for humans.
//
// A connection that times out is what a dropping firewall looks like:
// the daemon logs Hints.TimeoutHint (or PeerTimeoutHint), which gives the
// commands that would let that one connection through.
package firewall
