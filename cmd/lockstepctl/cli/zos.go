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

func (a *app) zosCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "zos",
		Short: "Define, list and remove z/OS connections",
		Long: `A z/OS connection reaches storage systems in-band, through a z/OS host of a
sysplex that has them online: the commands go down the host's channels,
not over TCP/IP. It carries freezes and the other commands when a
system's TCP/IP connections fail, but never the heartbeat.

A z/OS connection is defined once per z/OS host, named by the host, for
every storage system the host has online (--serial): those systems need
no "storage add" and may be named in sessions. A server uses the
connection only when it is in the host's sysplex ([server] sysplex);
elsewhere "zos show" and "storage show" say it is unusable and why.`,
	})
	cmd.AddCommand(a.zosListCmd(), a.zosShowCmd(), a.zosAddCmd(), a.zosRemoveCmd())
	return cmd
}

// zosSystemsLine is a z/OS connection's systems, one word each:
// "LAB.2107-75P0001(connected)".
func zosSystemsLine(ss []api.ZOSSystemDoc) string {
	var out []string
	for _, s := range ss {
		out = append(out, fmt.Sprintf("%s(%s)", s.Serial, s.State))
	}
	return orDash(strings.Join(out, " "))
}

func (a *app) zosListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the z/OS connections, their sysplex and the storage systems online through them",
		Long: `List every z/OS connection: the host, its sysplex, its addresses, and the
storage systems it has online with this server's state of the connection
to each (connected, connecting, unusable).`,
		Example: "  lockstepctl zos list\n  lockstepctl --json zos list",
		Args:    cobra.NoArgs,
		RunE: a.leaf(func(ctx context.Context, c *client.Client, _ []string) error {
			list, err := c.ZOSList(ctx)
			if err != nil {
				return err
			}
			return a.show(list, func(w io.Writer) {
				fmt.Fprintln(w, "HOST\tSYSPLEX\tADDRESSES\tSYSTEMS")
				for _, z := range list {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", z.Name, z.Sysplex, strings.Join(z.Addresses, ","), zosSystemsLine(z.Systems))
				}
			})
		}),
	}
}

func (a *app) zosShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show HOST",
		Short: "Show one z/OS connection: the systems online through it, usable or not and why",
		Long: `Show the z/OS connection of HOST: its sysplex, addresses and user, and for
each storage system it has online whether this server can use the
connection to reach it, and why not (e.g. "not in sysplex PLEX1" on a
server of another sysplex, or the problem seen connecting).`,
		Example: "  lockstepctl zos show SYSA",
		Args:    cobra.ExactArgs(1),
		RunE: a.leaf(func(ctx context.Context, c *client.Client, args []string) error {
			z, err := c.ZOSShow(ctx, args[0])
			if err != nil {
				return err
			}
			return a.show(z, func(w io.Writer) {
				fmt.Fprintf(w, "host\t%s\nsysplex\t%s\naddresses\t%s\nuser\t%s\n", z.Name, z.Sysplex,
					strings.Join(z.Addresses, ","), orDash(z.User))
				for _, s := range z.Systems {
					fmt.Fprintf(w, "system %s\t%s %s\n", s.Serial, s.State, s.Detail)
				}
			})
		}),
	}
}

func (a *app) zosAddCmd() *cobra.Command {
	var addr, sysplex, user, pwFile string
	var serials []string
	cmd := &cobra.Command{
		Use:   "add HOST --addr HOST:PORT[,HOST:PORT] --sysplex P --serial S[,S] [--user U --password-file F]",
		Short: "Define the z/OS connection of a z/OS host for the storage systems it has online",
		Long: `Define the z/OS connection of the z/OS host HOST, of sysplex --sysplex,
whose agent listens at --addr (one address, or two separated by a comma;
an IPv6 host goes in brackets), for the storage systems it has online,
named with --serial (the systems are not discovered from the host).
They show in "zos show", "storage list" and may be named in sessions.

Trust: the host's certificate must be signed by the storage CA ([storage]
ca_file) and name the host, unless a pin is configured.

--user and --password-file are the credentials this manager logs on to
the host with. lockstepd reads the password file itself (it must not be
readable by others): no secret travels over the bus or lands in the
journal.`,
		Example: `  lockstepctl zos add SYSA --addr zhost1.example.net:5858 --sysplex PLEX1 \
      --serial IBM.2107-75ABC01,IBM.2107-75ABC02 --user lockstep --password-file /etc/lockstep/zos.pw`,
		Args: cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if err := cmd.ValidateRequiredFlags(); err != nil {
				return err
			}
			if err := zosSpec(args[0], addr, sysplex, user, pwFile, serials).Validate(); err != nil {
				return usageErr("%v", err)
			}
			return nil
		},
		RunE: a.leaf(func(ctx context.Context, c *client.Client, args []string) error {
			ws, err := c.ZOSAdd(ctx, zosSpec(args[0], addr, sysplex, user, pwFile, serials))
			a.warn(ws)
			return err
		}),
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "", "HOST:PORT[,HOST:PORT] of the host's agent (required)")
	f.StringVar(&sysplex, "sysplex", "", "the sysplex of the host (required)")
	f.StringSliceVar(&serials, "serial", nil, "the storage systems the host has online, comma-separated (required)")
	f.StringVar(&user, "user", "", "the host's user")
	f.StringVar(&pwFile, "password-file", "", "file holding the password; lockstepd reads it")
	_ = cmd.MarkFlagRequired("addr")
	_ = cmd.MarkFlagRequired("sysplex")
	_ = cmd.MarkFlagRequired("serial")
	_ = cmd.MarkFlagFilename("password-file")
	return cmd
}

func (a *app) zosRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "remove HOST",
		Short: "Remove a z/OS connection",
		Long: `Remove the z/OS connection of HOST; the storage systems it has online go
with it unless they have another connection. Refused while it is the
only connection of a storage system that holds volumes of a session. A
z/OS connection never carries the heartbeat, so removing it does not
touch the last-TCP/IP-connection rule.`,
		Example: "  lockstepctl zos remove SYSA",
		Args:    cobra.ExactArgs(1),
		RunE: a.leaf(func(ctx context.Context, c *client.Client, args []string) error {
			ws, err := c.ZOSRemove(ctx, args[0])
			a.warn(ws)
			return err
		}),
	}
}

// zosSpec is the ZOSSpec of zos add's arguments.
func zosSpec(name, addr, sysplex, user, pwFile string, serials []string) api.ZOSSpec {
	spec := api.ZOSSpec{Name: name, Addresses: strings.Split(addr, ","), Sysplex: sysplex, User: user, PasswordFile: pwFile}
	for _, s := range serials {
		spec.Systems = append(spec.Systems, hal.Serial(s))
	}
	return spec
}
