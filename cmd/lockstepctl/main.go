// Command lockstepctl is the storage administrator's command line for
// lockstepd, over its D-Bus admin API.
//
// Exit codes: 0 done, 1 refused or failed (the message says why), 2 usage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
)

const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

const usage = `usage: lockstepctl [--bus system|session|ADDRESS] [--json] COMMAND ...

  status                                   role, HA state, epoch, sessions, heartbeat
  storage list | show SERIAL
  storage add SERIAL --addr HOST:PORT[,HOST:PORT] [--name N] [--kind direct|hmc|zos] [--sysplex P]
              [--user U --password-file F]
  storage remove SERIAL [--connection N] [--force]
  session list | show NAME
  session create NAME --type mm-single-direction|mm-failover-failback [--cg NAME] [--policy hold-io|release-io]
  session add-copyset NAME H1 H2           volumes as SERIAL/VVVV
  session cmd NAME start-h1-h2|suspend|release-io|recover|start-h2-h1|terminate|refresh
  session remove NAME
  heartbeat on | off | show
  backup create | list | restore NAME
  events [--since SEQ] [--follow]
  firewall-hints [--format text|nft|iptables]
  ha status | takeover | reconnect | remove-standby | remove-active
  ha set-standby ADDR [--name NAME] | set-as-standby ADDR [--name NAME]
                                           NAME: the partner's server name, which its certificate
                                           must carry (default: [ha] partner_name)

--json prints every read as JSON. The bus is the system bus unless
--bus or $LOCKSTEP_BUS says otherwise.
`

var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lockstepctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	bus := fs.String("bus", envOr("LOCKSTEP_BUS", "system"), "D-Bus to reach lockstepd on")
	asJSON := fs.Bool("json", false, "print reads as JSON")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	c := &cli{out: stdout, json: *asJSON}
	cmd := func() error {
		conn, err := control.Connect(*bus)
		if err != nil {
			return fmt.Errorf("cannot reach the %s bus: %w", *bus, err)
		}
		defer conn.Close()
		c.client = control.NewClient(conn)
		return c.dispatch(ctx, fs.Args())
	}
	err := cmd()
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errUsage), errors.Is(err, control.ErrInvalid):
		fmt.Fprintf(stderr, "lockstepctl: %v\n", err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "lockstepctl: %v\n", err)
		return exitFail
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

type cli struct {
	client *control.Client
	out    io.Writer
	json   bool
}

func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s (see lockstepctl --help)", errUsage, fmt.Sprintf(format, a...))
}

// flags parses flags that may stand anywhere among the arguments.
func flags(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageErr("%v", err)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func (c *cli) dispatch(ctx context.Context, args []string) error {
	verb, rest := args[0], args[1:]
	sub := ""
	if len(rest) > 0 {
		sub = rest[0]
	}
	switch verb {
	case "status":
		return c.status(ctx)
	case "storage":
		return c.storage(ctx, sub, rest)
	case "session":
		return c.session(ctx, sub, rest)
	case "heartbeat":
		return c.heartbeat(ctx, sub)
	case "backup":
		return c.backup(ctx, sub, rest)
	case "events":
		return c.events(ctx, rest)
	case "firewall-hints":
		return c.firewall(ctx, rest)
	case "ha":
		return c.ha(ctx, sub, rest)
	}
	return usageErr("unknown command %q", verb)
}

// show prints v as JSON with --json, else calls human.
func (c *cli) show(v any, human func(w io.Writer)) error {
	if c.json {
		enc := json.NewEncoder(c.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	human(tw)
	return tw.Flush()
}

func (c *cli) warn(ws []string) {
	for _, w := range ws {
		fmt.Fprintf(c.out, "warning: %s\n", w)
	}
}

func (c *cli) status(ctx context.Context) error {
	st, err := c.client.Status(ctx)
	if err != nil {
		return err
	}
	return c.show(st, func(w io.Writer) {
		fmt.Fprintf(w, "server\t%s (%s)\n", st.Server, st.Version)
		fmt.Fprintf(w, "role\t%s\n", st.Role)
		fmt.Fprintf(w, "HA state\t%s\n", st.HAState)
		fmt.Fprintf(w, "epoch\t%d\n", st.Epoch)
		fmt.Fprintf(w, "heartbeat\t%s\n", onOff(st.Heartbeat))
		s := st.Sessions
		fmt.Fprintf(w, "sessions\t%d (normal %d, warning %d, severe %d, inactive %d; recoverable %d)\n",
			s.Total, s.Normal, s.Warning, s.Severe, s.Inactive, s.Recoverable)
		fmt.Fprintf(w, "storage systems\t%d (%d reachable)\n", st.Storage.Total, st.Storage.Reachable)
		fmt.Fprintf(w, "journal\t%s\n", control.JournalLine(st.Journal))
		for _, d := range st.Degraded {
			fmt.Fprintf(w, "DEGRADED\t%s\n", d)
		}
	})
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func (c *cli) storage(ctx context.Context, sub string, rest []string) error {
	switch sub {
	case "list":
		list, err := c.client.StorageList(ctx)
		if err != nil {
			return err
		}
		return c.show(list, func(w io.Writer) {
			fmt.Fprintln(w, "SERIAL\tREACHABLE\tHEARTBEAT\tCONNECTIONS\tSESSIONS")
			for _, s := range list {
				var conns []string
				for _, cn := range s.Connections {
					conns = append(conns, fmt.Sprintf("%s(%s:%s)", cn.Name, cn.Kind, cn.State))
				}
				fmt.Fprintf(w, "%s\t%v\t%v\t%s\t%s\n", s.Serial, s.Reachable, s.Heartbeat,
					strings.Join(conns, " "), strings.Join(s.Sessions, ","))
			}
		})
	case "show":
		if len(rest) != 2 {
			return usageErr("storage show SERIAL")
		}
		s, err := c.client.StorageShow(ctx, hal.Serial(rest[1]))
		if err != nil {
			return err
		}
		return c.show(s, func(w io.Writer) {
			fmt.Fprintf(w, "serial\t%s\nreachable\t%v\nheartbeat capable\t%v\nsessions\t%s\n", s.Serial, s.Reachable,
				s.Heartbeat, strings.Join(s.Sessions, ", "))
			for _, cn := range s.Connections {
				fmt.Fprintf(w, "connection %s\t%s %s %s %s\n", cn.Name, cn.Kind, strings.Join(cn.Addresses, ","), cn.State, cn.Detail)
			}
		})
	case "add":
		fs := flag.NewFlagSet("storage add", flag.ContinueOnError)
		name := fs.String("name", "direct", "connection name")
		kind := fs.String("kind", "direct", "direct, hmc or zos")
		addr := fs.String("addr", "", "HOST:PORT[,HOST:PORT]")
		sysplex := fs.String("sysplex", "", "sysplex of a z/OS connection")
		user := fs.String("user", "", "the storage system's user for this connection")
		pwFile := fs.String("password-file", "", "file holding the password; lockstepd reads it")
		pos, err := flags(fs, rest[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 || *addr == "" {
			return usageErr("storage add SERIAL --addr HOST:PORT[,HOST:PORT]")
		}
		spec := control.StorageSpec{Serial: hal.Serial(pos[0]), Connections: []control.ConnectionSpec{{
			Name: *name, Kind: control.ConnectionKind(*kind), Addresses: strings.Split(*addr, ","), Sysplex: *sysplex,
			User: *user, PasswordFile: *pwFile}}}
		if err := spec.Validate(); err != nil {
			return err // early and friendly; lockstepd checks again
		}
		ws, err := c.client.StorageAdd(ctx, spec)
		c.warn(ws)
		return err
	case "remove":
		fs := flag.NewFlagSet("storage remove", flag.ContinueOnError)
		conn := fs.String("connection", "", "remove only this connection")
		force := fs.Bool("force", false, "remove the last TCP/IP connection although the heartbeat is on")
		pos, err := flags(fs, rest[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageErr("storage remove SERIAL [--connection N] [--force]")
		}
		ws, err := c.client.StorageRemove(ctx, hal.Serial(pos[0]), *conn, *force)
		c.warn(ws)
		return err
	}
	return usageErr("storage list|show|add|remove")
}

func (c *cli) session(ctx context.Context, sub string, rest []string) error {
	switch sub {
	case "list":
		list, err := c.client.SessionList(ctx)
		if err != nil {
			return err
		}
		return c.show(list, func(w io.Writer) {
			fmt.Fprintln(w, "NAME\tTYPE\tSTATE\tSTATUS\tRECOVERABLE\tCOPY SETS\tCG")
			for _, s := range list {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%v\t%d\t%s\n", s.Name, s.Type, s.State, s.Status, s.Recoverable,
					len(s.CopySets), s.CG)
			}
		})
	case "show":
		if len(rest) != 2 {
			return usageErr("session show NAME")
		}
		s, err := c.client.SessionShow(ctx, rest[1])
		if err != nil {
			return err
		}
		return c.show(s, func(w io.Writer) { printSession(w, s) })
	case "create":
		fs := flag.NewFlagSet("session create", flag.ContinueOnError)
		typ := fs.String("type", string(session.MetroMirrorFailoverFailback), "session type")
		cg := fs.String("cg", "", "consistency-group name shared with other sessions")
		policy := fs.String("policy", string(session.HoldIO), "hold-io or release-io")
		pos, err := flags(fs, rest[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageErr("session create NAME --type TYPE")
		}
		t, err := session.ParseType(*typ)
		if err != nil {
			return usageErr("%v", err)
		}
		p, err := session.ParsePolicy(*policy)
		if err != nil {
			return usageErr("%v", err)
		}
		return c.client.SessionCreate(ctx, pos[0], t, *cg, p)
	case "add-copyset":
		if len(rest) != 4 {
			return usageErr("session add-copyset NAME H1 H2 (volumes as SERIAL/VVVV)")
		}
		h1, err1 := session.ParseVolumeRef(rest[2])
		h2, err2 := session.ParseVolumeRef(rest[3])
		if err := errors.Join(err1, err2); err != nil {
			return usageErr("%v", err)
		}
		return c.client.SessionAddCopySet(ctx, rest[1], session.CopySet{H1: h1, H2: h2})
	case "cmd":
		if len(rest) != 3 {
			return usageErr("session cmd NAME COMMAND")
		}
		cmd, err := session.ParseCommand(rest[2])
		if err != nil {
			return usageErr("%v", err)
		}
		s, err := c.client.SessionCommand(ctx, rest[1], cmd)
		if err != nil {
			return err
		}
		return c.show(s, func(w io.Writer) { printSession(w, s) })
	case "remove":
		if len(rest) != 2 {
			return usageErr("session remove NAME")
		}
		return c.client.SessionRemove(ctx, rest[1])
	}
	return usageErr("session list|show|create|add-copyset|cmd|remove")
}

func printSession(w io.Writer, s control.SessionDoc) {
	fmt.Fprintf(w, "session\t%s (%s)\n", s.Name, s.Type)
	fmt.Fprintf(w, "state\t%s\nstatus\t%s\n", s.State, s.Status)
	fmt.Fprintf(w, "recoverable\t%v\ncopying\t%v\nerror\t%v\nI/O held\t%v\n", s.Recoverable, s.Copying, s.Error, s.IOHeld)
	fmt.Fprintf(w, "active site\t%s\ndirection\t%s\n", s.ActiveSite, s.Direction)
	if s.CG != "" {
		fmt.Fprintf(w, "consistency group\t%s\n", s.CG)
	}
	fmt.Fprintf(w, "policy\t%s\ncopy sets\t%d\n", s.Policy, len(s.CopySets))
	if s.Reason != "" {
		fmt.Fprintf(w, "last change\t%s: %s\n", s.LastChange.Format(time.RFC3339), s.Reason)
	}
	var cmds []string
	for _, c := range s.AvailableCommands {
		cmds = append(cmds, string(c))
	}
	fmt.Fprintf(w, "available commands\t%s\n", strings.Join(cmds, ", "))
}

func (c *cli) heartbeat(ctx context.Context, sub string) error {
	switch sub {
	case "on", "off":
		ws, err := c.client.HeartbeatSet(ctx, sub == "on")
		c.warn(ws)
		return err
	case "show":
		hb, err := c.client.HeartbeatShow(ctx)
		if err != nil {
			return err
		}
		return c.show(hb, func(w io.Writer) {
			fmt.Fprintf(w, "heartbeat\t%s, every %s\n", onOff(hb.Enabled), hb.Interval)
			for _, g := range hb.Groups {
				fmt.Fprintf(w, "group %s\t%s, H %s %s\n", g.Name, g.Phase, g.H, g.Reason)
				if g.Unprotected != "" {
					fmt.Fprintf(w, "  UNPROTECTED\t%s\n", g.Unprotected)
				}
				for _, s := range g.Systems {
					fmt.Fprintf(w, "  %s\tarmed %v, frozen %v, last reply %s, LSS pairs %s\n", s.Serial, s.Armed, s.Acked,
						s.LastReply.Format(time.RFC3339), strings.Join(s.LSSPairs, " "))
					if s.Unreachable != "" {
						fmt.Fprintf(w, "  \tunreachable since %s: %s\n", s.LastContact.Format(time.RFC3339), s.Unreachable)
					}
				}
			}
			for _, x := range hb.Warnings {
				fmt.Fprintf(w, "warning\t%s\n", x)
			}
		})
	}
	return usageErr("heartbeat on|off|show")
}

func (c *cli) backup(ctx context.Context, sub string, rest []string) error {
	switch sub {
	case "create":
		b, err := c.client.BackupCreate(ctx)
		if err != nil {
			return err
		}
		return c.show(b, func(w io.Writer) { fmt.Fprintf(w, "backup %s created (%d bytes)\n", b.Name, b.Size) })
	case "list":
		list, err := c.client.BackupList(ctx)
		if err != nil {
			return err
		}
		return c.show(list, func(w io.Writer) {
			fmt.Fprintln(w, "NAME\tCREATED\tEPOCH\tLAST INDEX\tSIZE")
			for _, b := range list {
				fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\n", b.Name, b.Created.Format(time.RFC3339), b.Epoch, b.LastIndex, b.Size)
			}
		})
	case "restore":
		if len(rest) != 2 {
			return usageErr("backup restore NAME")
		}
		return c.client.BackupRestore(ctx, rest[1])
	}
	return usageErr("backup create|list|restore")
}

func (c *cli) events(ctx context.Context, rest []string) error {
	fs := flag.NewFlagSet("events", flag.ContinueOnError)
	since := fs.Uint64("since", 0, "only events after this sequence number")
	follow := fs.Bool("follow", false, "keep printing new events")
	if _, err := flags(fs, rest); err != nil {
		return err
	}
	print := func(ev control.EventDoc) {
		if c.json {
			json.NewEncoder(c.out).Encode(ev)
			return
		}
		fmt.Fprintf(c.out, "%6d %s %s %s\n", ev.Seq, ev.At.Format(time.RFC3339), ev.ID, ev.Text)
	}
	var live <-chan control.EventDoc
	if *follow {
		var err error
		if live, err = c.client.Follow(ctx); err != nil { // subscribe first: nothing falls between
			return err
		}
	}
	list, err := c.client.Events(ctx, *since)
	if err != nil {
		return err
	}
	last := *since
	for _, ev := range list {
		print(ev)
		last = max(last, ev.Seq)
	}
	for live != nil {
		select {
		case ev, ok := <-live:
			if !ok {
				return nil
			}
			if ev.Seq > last {
				print(ev)
				last = ev.Seq
			}
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

func (c *cli) firewall(ctx context.Context, rest []string) error {
	fs := flag.NewFlagSet("firewall-hints", flag.ContinueOnError)
	format := fs.String("format", "text", "text, nft or iptables")
	if _, err := flags(fs, rest); err != nil {
		return err
	}
	f, err := control.ParseFirewallFormat(*format)
	if err != nil {
		return err
	}
	doc, err := c.client.FirewallHints(ctx, f)
	if err != nil {
		return err
	}
	if c.json {
		return c.show(doc, nil)
	}
	fmt.Fprint(c.out, doc.Rules)
	return nil
}

func (c *cli) ha(ctx context.Context, sub string, rest []string) error {
	var name string
	arg := func() (string, error) {
		fs := flag.NewFlagSet("ha "+sub, flag.ContinueOnError)
		fs.StringVar(&name, "name", "", "the partner's server name, which its certificate must carry")
		pos, err := flags(fs, rest[1:])
		if err != nil {
			return "", err
		}
		if len(pos) != 1 {
			return "", usageErr("ha %s ADDR [--name NAME]", sub)
		}
		return pos[0], nil
	}
	switch sub {
	case "status":
		st, err := c.client.HAStatus(ctx)
		if err != nil {
			return err
		}
		return c.show(st, func(w io.Writer) {
			fmt.Fprintf(w, "edition\t%s\nrole\t%s\nHA state\t%s\nepoch\t%d\nacting\t%t\nlast record\t%d\n",
				st.Edition, st.Role, st.State, st.Epoch, st.Acting, st.LastIndex)
			if st.SyncPhase != "" {
				fmt.Fprintf(w, "sync phase\t%s\n", st.SyncPhase)
			}
			if st.Unavailable != "" {
				fmt.Fprintf(w, "HA unavailable\t%s\n", st.Unavailable)
			}
			if st.Listen != "" {
				fmt.Fprintf(w, "listen\t%s\n", st.Listen)
			}
			if st.Partner != "" {
				fmt.Fprintf(w, "partner\t%s\n", st.Partner)
			}
			if st.StandbyLag != nil {
				fmt.Fprintf(w, "standby lag\t%d records\n", *st.StandbyLag)
			}
			if !st.NextReconnect.IsZero() {
				fmt.Fprintf(w, "next reconnect\t%s (attempt %d of %d)\n", st.NextReconnect.Format(time.RFC3339),
					st.ReconnectAttempts+1, st.ReconnectLimit)
			}
			printReadiness(w, st.Unreachable, st.Readiness)
		})
	case "set-standby", "set-as-standby":
		addr, err := arg()
		if err != nil {
			return err
		}
		if sub == "set-standby" {
			return c.client.HASetStandby(ctx, addr, name)
		}
		return c.client.HASetAsStandby(ctx, addr, name)
	case "takeover":
		doc, err := c.client.HATakeover(ctx)
		if err != nil {
			return err
		}
		return c.show(doc, func(w io.Writer) {
			fmt.Fprintf(w, "active with epoch %d\n", doc.Epoch)
			printReadiness(w, doc.Unreachable, doc.Readiness)
			for _, warn := range doc.Warnings {
				fmt.Fprintf(w, "warning\t%s\n", warn)
			}
		})
	case "reconnect":
		return c.client.HAReconnect(ctx)
	case "remove-standby":
		return c.client.HARemoveStandby(ctx)
	case "remove-active":
		return c.client.HARemoveActive(ctx)
	}
	return usageErr("ha status|set-standby|set-as-standby|takeover|reconnect|remove-standby|remove-active")
}

// printReadiness lists the storage systems a server cannot reach, with
// why when the daemon says (an older one sends only the serials).
func printReadiness(w io.Writer, unreachable []hal.Serial, why []control.ReadinessDoc) {
	reasons := map[hal.Serial]string{}
	for _, r := range why {
		reasons[r.Serial] = r.Reason
	}
	for _, s := range unreachable {
		if r := reasons[s]; r != "" {
			fmt.Fprintf(w, "cannot reach\t%s: %s\n", s, r)
		} else {
			fmt.Fprintf(w, "cannot reach\t%s\n", s)
		}
	}
}
