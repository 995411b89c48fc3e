package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/control/client"
	"github.com/lockstep-io/lockstep/hal"
)

func (a *app) storageCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "storage",
		Short: "Define, list and remove storage systems and their connections",
		Long: `A storage system is known by its serial (e.g. IBM.2107-75ABC01) and
reached through one or more connections: direct (TCP/IP to its two
clusters, storage add), hmc (through one or two management consoles,
defined once with hmc add for every system they front, which are
discovered) or zos (through a z/OS host agent). lockstepd connects to
every defined storage system and keeps the connections up; a system with
several connections fails over between them (direct first, then hmc,
then zos). Sessions name volumes on defined or discovered systems only.`,
	})
	cmd.AddCommand(a.storageListCmd(), a.storageShowCmd(), a.storageAddCmd(), a.storageRemoveCmd())
	return cmd
}

func (a *app) storageListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the storage systems, their connections and sessions",
		Long: `List every defined or discovered storage system: whether it is reachable,
whether it can carry the heartbeat, the connection that carries its
commands now (VIA), its connections (name, kind and state), the sessions
with volumes on it, and its z/OS reach (ZOS): the z/OS hosts that have
it online (zos add) and whether this server can use each, or "-".`,
		Example: "  lockstepctl storage list\n  lockstepctl --json storage list",
		Args:    cobra.NoArgs,
		RunE: a.leaf(func(ctx context.Context, c *client.Client, _ []string) error {
			list, err := c.StorageList(ctx)
			if err != nil {
				return err
			}
			return a.show(list, func(w io.Writer) {
				fmt.Fprintln(w, "SERIAL\tREACHABLE\tHEARTBEAT\tVIA\tCONNECTIONS\tSESSIONS\tZOS")
				for _, s := range list {
					var conns, zos []string
					for _, cn := range s.Connections {
						conns = append(conns, fmt.Sprintf("%s(%s:%s)", cn.Name, cn.Kind, cn.State))
						if cn.Kind == api.ZOS {
							zos = append(zos, fmt.Sprintf("%s(%s)", cn.Name, cn.State))
						}
					}
					fmt.Fprintf(w, "%s\t%v\t%v\t%s\t%s\t%s\t%s\n", s.Serial, s.Reachable, s.Heartbeat, orDash(s.Via),
						strings.Join(conns, " "), strings.Join(s.Sessions, ","), orDash(strings.Join(zos, " ")))
				}
			})
		}),
	}
}

func (a *app) storageShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show SERIAL",
		Short: "Show one storage system and the state of each connection",
		Long: `Show one storage system: reachable or not, heartbeat capable or not, the
connection and endpoint that carry its commands now (via), its sessions,
and for each connection its kind, addresses, state and the last problem
seen (or, connected, the endpoint it uses).`,
		Example: "  lockstepctl storage show IBM.2107-75ABC01",
		Args:    cobra.ExactArgs(1),
		RunE: a.leaf(func(ctx context.Context, c *client.Client, args []string) error {
			s, err := c.StorageShow(ctx, hal.Serial(args[0]))
			if err != nil {
				return err
			}
			return a.show(s, func(w io.Writer) {
				fmt.Fprintf(w, "serial\t%s\nreachable\t%v\nheartbeat capable\t%v\nvia\t%s\nsessions\t%s\n", s.Serial, s.Reachable,
					s.Heartbeat, orDash(s.Via), strings.Join(s.Sessions, ", "))
				for _, cn := range s.Connections {
					fmt.Fprintf(w, "connection %s\t%s %s %s %s\n", cn.Name, cn.Kind, strings.Join(cn.Addresses, ","), cn.State, cn.Detail)
				}
			})
		}),
	}
}

func (a *app) storageAddCmd() *cobra.Command {
	var name, kind, addr, sysplex, user, pwFile string
	cmd := &cobra.Command{
		Use:   "add SERIAL --addr HOST:PORT[,HOST:PORT] [--name N] [--user U --password-file F]",
		Short: "Define a storage system, or add a connection to one",
		Long: `Define the storage system SERIAL with one connection, or add a connection
to a storage system already defined. --addr gives one or two HOST:PORT
(an IPv6 host in brackets): the two cluster endpoints of a direct
connection. An HMC connection is not added per storage system: define it
once with "lockstepctl hmc add"; the systems it fronts are discovered. A
z/OS connection is not either: define it once per z/OS host with
"lockstepctl zos add", naming the systems the host has online. --name names the
connection within the storage system (default "direct"), for "storage
remove --connection".

--user and --password-file are the storage system's credentials for this
connection. lockstepd reads the password file itself (it must not be
readable by others): no secret travels over the bus or lands in the
journal.

What the daemon notices but accepts (for instance a storage system that
cannot carry the heartbeat) is printed as "warning: ...".`,
		Example: `  lockstepctl storage add IBM.2107-75ABC01 --addr 10.0.1.10:1750,10.0.1.11:1750 \
      --user lockstep --password-file /etc/lockstep/ds8k-abc01.pw`,
		Args: cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if err := cmd.ValidateRequiredFlags(); err != nil {
				return err // cobra's own words, which it would say next
			}
			// Early and friendly, before any bus: lockstepd checks again.
			if err := storageSpec(args[0], name, kind, addr, sysplex, user, pwFile).Validate(); err != nil {
				return usageErr("%v", err)
			}
			return nil
		},
		RunE: a.leaf(func(ctx context.Context, c *client.Client, args []string) error {
			spec := storageSpec(args[0], name, kind, addr, sysplex, user, pwFile)
			ws, err := c.StorageAdd(ctx, spec)
			a.warn(ws)
			return err
		}),
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "", "HOST:PORT[,HOST:PORT] of the connection (required)")
	f.StringVar(&name, "name", "direct", "name of the connection within the storage system")
	f.StringVar(&kind, "kind", "direct", "direct (an HMC connection: hmc add; a z/OS connection: zos add)")
	f.StringVar(&sysplex, "sysplex", "", "sysplex of a z/OS connection (refused: zos add)")
	f.StringVar(&user, "user", "", "the storage system's user for this connection")
	f.StringVar(&pwFile, "password-file", "", "file holding the password; lockstepd reads it")
	_ = cmd.MarkFlagRequired("addr")
	_ = cmd.RegisterFlagCompletionFunc("kind", fixed(string(api.Direct)))
	_ = cmd.MarkFlagFilename("password-file")
	return cmd
}

func (a *app) storageRemoveCmd() *cobra.Command {
	var conn string
	var force bool
	cmd := &cobra.Command{
		Use:   "remove SERIAL [--connection N] [--force]",
		Short: "Remove a storage system, or one of its connections",
		Long: `Remove the storage system SERIAL, or with --connection only that
connection. A storage system that holds volumes of a session cannot be
removed: remove the session's copy sets first. Removing the last TCP/IP
connection (direct or hmc) of a storage system that sessions use and
that keeps a zos connection is refused while the heartbeat is on: the
heartbeat would stop reaching it, its sessions would be suspended and
applications would see extended long busy until the storage timer
expires. --force removes it anyway: the sessions are suspended first, at
once.`,
		Example: `  lockstepctl storage remove IBM.2107-75ABC01 --connection zos-plex1
  lockstepctl storage remove IBM.2107-75ABC01`,
		Args: cobra.ExactArgs(1),
		RunE: a.leaf(func(ctx context.Context, c *client.Client, args []string) error {
			ws, err := c.StorageRemove(ctx, hal.Serial(args[0]), conn, force)
			a.warn(ws)
			return err
		}),
	}
	cmd.Flags().StringVar(&conn, "connection", "", "remove only this connection")
	cmd.Flags().BoolVar(&force, "force", false, "remove the last TCP/IP connection although the heartbeat is on")
	return cmd
}

// storageSpec is the StorageSpec of storage add's arguments: one
// connection, its addresses comma-separated.
func storageSpec(serial, name, kind, addr, sysplex, user, pwFile string) api.StorageSpec {
	return api.StorageSpec{Serial: hal.Serial(serial), Connections: []api.ConnectionSpec{{
		Name: name, Kind: api.ConnectionKind(kind), Addresses: strings.Split(addr, ","), Sysplex: sysplex,
		User: user, PasswordFile: pwFile}}}
}
