package firewall

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/lockstep-io/lockstep/daemon/config"
)

// Format of the rules.
type Format int

// Formats.
const (
	NFT       Format = iota // an nft ruleset: table inet lockstep (nft -f FILE)
	IPTables                // IPv4 rules for iptables-restore --noflush
	IP6Tables               // IPv6 rules for ip6tables-restore --noflush
	Text                    // a table for humans
)

// ParseFormat reads "nft", "iptables", "ip6tables" or "text".
func ParseFormat(s string) (Format, error) {
	for f, name := range formatNames() {
		if s == name {
			return f, nil
		}
	}
	return 0, fmt.Errorf("%w %q: nft, iptables, ip6tables or text", ErrFormat, s)
}

func formatNames() map[Format]string {
	return map[Format]string{NFT: "nft", IPTables: "iptables", IP6Tables: "ip6tables", Text: "text"}
}

func (f Format) String() string { return formatNames()[f] }

// packet is one direction of a rule's connection, as a filter sees it.
type packet struct {
	chain        string // "input" or "output"
	proto        string
	src, dst     string           // "" = any
	sport, dport config.PortRange // zero = any
	comment      string
}

// packets are the packet that opens the connection and its replies.
func (r Rule) packets() [2]packet {
	if r.Dir == Out {
		return [2]packet{
			{"output", r.Proto, r.Local, r.Remote, r.LocalPort, r.RemotePort, r.For},
			{"input", r.Proto, r.Remote, r.Local, r.RemotePort, r.LocalPort, r.For + " (replies)"},
		}
	}
	return [2]packet{
		{"input", r.Proto, r.Remote, r.Local, r.RemotePort, r.LocalPort, r.For},
		{"output", r.Proto, r.Local, r.Remote, r.LocalPort, r.RemotePort, r.For + " (replies)"},
	}
}

// family of a host: 6 for an IPv6 literal, 4 for an IPv4 literal or a
// name (nft "ip daddr NAME" and iptables "-d NAME" resolve it to IPv4),
// 0 for any.
func family(host string) int {
	if host == "" {
		return 0
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is6() && !ip.Is4In6() {
		return 6
	}
	return 4
}

func (p packet) family() int {
	if f := family(p.src); f != 0 {
		return f
	}
	return family(p.dst)
}

// comment keeps what nft and iptables accept in a quoted comment.
func comment(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(" ._:/,()[]-+", c) >= 0) {
			b[i] = '_'
		}
	}
	if len(b) > 100 {
		b = b[:100]
	}
	return string(b)
}

func zero(r config.PortRange) bool { return r == (config.PortRange{}) }

// nftMatch is the statement of a packet in an nft chain.
func (p packet) nft() string {
	var parts []string
	ipf := map[int]string{4: "ip", 6: "ip6"}
	if p.src != "" {
		parts = append(parts, fmt.Sprintf("%s saddr %s", ipf[family(p.src)], p.src))
	}
	if p.dst != "" {
		parts = append(parts, fmt.Sprintf("%s daddr %s", ipf[family(p.dst)], p.dst))
	}
	if !zero(p.sport) {
		parts = append(parts, fmt.Sprintf("%s sport %s", p.proto, p.sport))
	}
	if !zero(p.dport) {
		parts = append(parts, fmt.Sprintf("%s dport %s", p.proto, p.dport))
	}
	if zero(p.sport) && zero(p.dport) {
		parts = append(parts, "meta l4proto "+p.proto)
	}
	parts = append(parts, "accept", fmt.Sprintf("comment %q", comment(p.comment)))
	return strings.Join(parts, " ")
}

func ipt(r config.PortRange) string {
	if r.First == r.Last {
		return fmt.Sprint(r.First)
	}
	return fmt.Sprintf("%d:%d", r.First, r.Last)
}

// iptables is the match of a packet for iptables.
func (p packet) iptables() string {
	parts := []string{"-p", p.proto}
	if p.src != "" {
		parts = append(parts, "-s", p.src)
	}
	if p.dst != "" {
		parts = append(parts, "-d", p.dst)
	}
	if !zero(p.sport) {
		parts = append(parts, "--sport", ipt(p.sport))
	}
	if !zero(p.dport) {
		parts = append(parts, "--dport", ipt(p.dport))
	}
	parts = append(parts, "-m", "comment", "--comment", fmt.Sprintf("%q", comment(p.comment)), "-j", "ACCEPT")
	return strings.Join(parts, " ")
}

func (r Rule) String() string {
	remote := r.Remote
	if remote == "" {
		remote = "any host"
	}
	s := fmt.Sprintf("%s %s %s port %s", r.Dir, r.Proto, remote, portsOrAny(r.RemotePort))
	if r.Dir == In {
		s = fmt.Sprintf("in %s from %s to local port %s", r.Proto, remote, portsOrAny(r.LocalPort))
	} else if !zero(r.LocalPort) {
		s += " from local ports " + r.LocalPort.String()
	}
	return s + " (" + r.For + ")"
}

func portsOrAny(r config.PortRange) string {
	if zero(r) {
		return "any"
	}
	return r.String()
}

// Commands are shell commands that add the rule (both packets) to a
// running firewall: nft into table inet lockstep (as loaded from the nft
// format), iptables or ip6tables at the top of INPUT and OUTPUT (the
// family follows the addresses, whichever of the two is asked). Text
// gives the rule in words. A vsock rule needs no command.
func (r Rule) Commands(f Format) []string {
	if r.Proto == config.VSock {
		return []string{r.String() + ": vsock is not filtered by netfilter; no rule is needed"}
	}
	var cmds []string
	for _, p := range r.packets() {
		switch f {
		case NFT:
			cmds = append(cmds, fmt.Sprintf("nft 'add rule inet lockstep %s %s'", p.chain, p.nft()))
		case IPTables, IP6Tables:
			tool := "iptables"
			if p.family() == 6 {
				tool = "ip6tables"
			}
			cmds = append(cmds, fmt.Sprintf("%s -I %s %s", tool, strings.ToUpper(p.chain), p.iptables()))
		default:
			return []string{r.String() + ", and its replies"}
		}
	}
	return cmds
}

// Render writes the rules in format f.
func (rs *Ruleset) Render(w io.Writer, f Format) error {
	bw := bufio.NewWriter(w)
	switch f {
	case NFT:
		rs.nft(bw)
	case IPTables:
		rs.iptables(bw, 4)
	case IP6Tables:
		rs.iptables(bw, 6)
	case Text:
		rs.text(bw)
	default:
		return fmt.Errorf("%w %d", ErrFormat, int(f))
	}
	return bw.Flush()
}

func (rs *Ruleset) header(w io.Writer, how string) {
	fmt.Fprintf(w, "# lockstep firewall hints for server %s (lockstepctl firewall-hints).\n", rs.Server)
	fmt.Fprintf(w, "# %s\n", how)
	fmt.Fprintf(w, "# Local ephemeral ports %s, from %s.\n", rs.Ephemeral, rs.RangeFile)
	fmt.Fprintf(w, "# Each connection has a rule for its packets and one for its replies;\n")
	fmt.Fprintf(w, "# the replies' rules matter only where connections are not tracked.\n")
	for _, r := range rs.Rules {
		if r.Proto == config.VSock {
			fmt.Fprintf(w, "# %s: vsock is not filtered by netfilter; no rule is needed.\n", r)
		}
	}
}

func (rs *Ruleset) nft(w io.Writer) {
	rs.header(w, "Load with: nft -f FILE. nftables runs every base chain of a hook and a packet\n"+
		"# must be accepted by each: an accept here does not undo a drop in another\n"+
		"# table. Where another table filters this host, copy the rules into its chains.")
	fmt.Fprintln(w, "table inet lockstep")
	fmt.Fprintln(w, "delete table inet lockstep")
	fmt.Fprintln(w, "table inet lockstep {")
	for _, chain := range []string{"input", "output"} {
		fmt.Fprintf(w, "\tchain %s {\n\t\ttype filter hook %s priority filter; policy accept;\n", chain, chain)
		for _, r := range rs.Rules {
			if r.Proto == config.VSock {
				continue
			}
			for _, p := range r.packets() {
				if p.chain == chain {
					fmt.Fprintf(w, "\t\t%s\n", p.nft())
				}
			}
		}
		fmt.Fprintln(w, "\t}")
	}
	fmt.Fprintln(w, "}")
}

// iptables writes the rules of one family into chains LOCKSTEP-IN and
// LOCKSTEP-OUT, jumped to from the top of INPUT and OUTPUT.
func (rs *Ruleset) iptables(w io.Writer, fam int) {
	tool := map[int]string{4: "iptables", 6: "ip6tables"}[fam]
	rs.header(w, fmt.Sprintf("IPv%d. Load with: %s-restore --noflush < FILE. Loading again empties and\n"+
		"# refills LOCKSTEP-IN/OUT but inserts the jumps again: load once, or delete them first.", fam, tool))
	fmt.Fprintln(w, "*filter")
	fmt.Fprintln(w, ":LOCKSTEP-IN - [0:0]")
	fmt.Fprintln(w, ":LOCKSTEP-OUT - [0:0]")
	for _, r := range rs.Rules {
		if r.Proto == config.VSock {
			continue
		}
		for _, p := range r.packets() {
			if f := p.family(); f != 0 && f != fam {
				continue
			}
			chain := map[string]string{"input": "LOCKSTEP-IN", "output": "LOCKSTEP-OUT"}[p.chain]
			fmt.Fprintf(w, "-A %s %s\n", chain, p.iptables())
		}
	}
	fmt.Fprintln(w, "-I INPUT -j LOCKSTEP-IN")
	fmt.Fprintln(w, "-I OUTPUT -j LOCKSTEP-OUT")
	fmt.Fprintln(w, "COMMIT")
}

func (rs *Ruleset) text(w io.Writer) {
	fmt.Fprintf(w, "lockstep firewall hints for server %s\n", rs.Server)
	fmt.Fprintf(w, "local ephemeral ports %s (from %s); each row allows the replies too\n\n", rs.Ephemeral, rs.RangeFile)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DIR\tPROTO\tREMOTE\tREMOTE PORT\tLOCAL\tLOCAL PORT\tFOR")
	or := func(s string) string {
		if s == "" {
			return "any"
		}
		return s
	}
	for _, r := range rs.Rules {
		what := r.For
		if r.Proto == config.VSock {
			what += " (vsock: not filtered by netfilter)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Dir, r.Proto, or(r.Remote), portsOrAny(r.RemotePort),
			or(r.Local), portsOrAny(r.LocalPort), what)
	}
	tw.Flush()
}

// TimeoutHint is what the daemon logs when a connection attempt to addr
// times out, which is what a firewall that drops packets looks like: the
// rule that would let the connection through, as commands in format f.
// addr is "host:port" (TCP, as for storage endpoints) or
// "tcp://host:port", "udp://host:port" (SNMP managers, syslog). The local
// ports are the kernel's ephemeral range, read now; for the HA peer, use
// PeerTimeoutHint.
func (h Hints) TimeoutHint(addr string, f Format) string {
	var r Rule
	if strings.Contains(addr, "://") {
		a, err := config.ParseAddr(addr)
		if err != nil {
			return fmt.Sprintf("connection to %s timed out", addr)
		}
		eph, _ := EphemeralPorts(h.rangeFile()) // unreadable: any local port
		r = outbound(a, eph, "lockstepd")
	} else {
		eph, _ := EphemeralPorts(h.rangeFile())
		var err error
		if r, err = storageRule(Endpoint{Addr: addr}, eph); err != nil {
			return fmt.Sprintf("connection to %s timed out", addr)
		}
		r.For = "lockstepd"
	}
	return timeoutHint(addr, r, f)
}

// PeerTimeoutHint is TimeoutHint for the HA peer: its local ports are
// [ha] source_ports when set.
func (h Hints) PeerTimeoutHint(peer string, f Format) string {
	r, err := h.PeerRule(peer)
	if err != nil {
		a, perr := config.ParseAddr(peer, config.TCP, config.VSock)
		if perr != nil {
			return fmt.Sprintf("connection to %s timed out", peer)
		}
		r = outbound(a, config.PortRange{}, "ha peer")
	}
	return timeoutHint(peer, r, f)
}

func timeoutHint(addr string, r Rule, f Format) string {
	if r.Proto == config.VSock {
		return fmt.Sprintf("connection to %s timed out: vsock is not filtered by netfilter; is the peer listening, and is its CID right?", addr)
	}
	return fmt.Sprintf("connection to %s timed out: a firewall may be dropping it; to let it through: %s",
		addr, strings.Join(r.Commands(f), "; "))
}
