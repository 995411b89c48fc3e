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

func (a *app) hmcCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "hmc",
		Short: "Define, list and remove HMC connections",
		Long: `An HMC connection reaches storage systems through a hardware management
console (HMC), which relays the commands to the storage systems it fronts
(its attached storage systems) over its own private network. One HMC
fronts several storage systems; a storage system may sit behind two HMCs
(a dual HMC, for a completely redundant path): one HMC connection then
has two addresses, and either HMC carries the commands.

An HMC connection is defined once. The storage systems behind it are
discovered from the HMCs, recorded, and usable in sessions by serial
without "storage add". A storage system that also has a direct
connection is reached directly first, and through the HMC when the direct
connection fails. The heartbeat flows through an HMC as through a direct
connection.`,
	})
	cmd.AddCommand(a.hmcListCmd(), a.hmcShowCmd(), a.hmcAddCmd(), a.hmcRemoveCmd())
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// consolesLine is an HMC connection's HMCs, one word each:
// "hmc1:1751(connected)".

// partnerLine is the partner's view of an HMC connection's HMCs, as
// consolesLine, or why there is none.
func partnerLine(h api.HMCDoc) string {
	if h.Partner == nil {
		return "(" + h.PartnerDetail + ")"
	}
	return consolesLine(h.Partner)
}

func consolesLine(cs []api.HMCConsoleDoc) string {
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s(%s)", c.Addr, c.State))
	}
	return strings.Join(out, " ")
}

func serialsLine(ss []hal.Serial) string {
	var out []string
	for _, s := range ss {
		out = append(out, string(s))
	}
	return orDash(strings.Join(out, ","))
}

func (a *app) hmcListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the HMC connections, their HMCs and attached storage systems",
		Long: `List every HMC connection: its HMCs with this server's connection status
to each (connected, connecting, disconnected), on an HA pair the
partner's status to each as it last reported it (PARTNER; or why there
is none: no partner, not connected), and the storage systems discovered
behind it.`,
		Example: "  lockstepctl hmc list\n  lockstepctl --json hmc list",
		Args:    cobra.NoArgs,
		RunE: a.leaf(func(ctx context.Context, c *client.Client, _ []string) error {
			list, err := c.HMCList(ctx)
			if err != nil {
				return err
			}
			return a.show(list, func(w io.Writer) {
				fmt.Fprintln(w, "NAME\tHMCS\tPARTNER\tATTACHED")
				for _, h := range list {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", h.Name, consolesLine(h.Consoles), partnerLine(h), serialsLine(h.Attached))
				}
			})
		}),
	}
}

func (a *app) hmcShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show one HMC connection: its HMCs, their status and attached storage systems",
		Long: `Show one HMC connection: its user, the storage systems discovered behind it,
and for each HMC its address, the name its certificate proved, this
server's connection status to it (local connection status), the problem
seen, and the storage systems it said it fronts. On an HA pair, each
HMC's line "partner" gives the partner's connection status to it (remote
connection status), as the partner last reported it over the HA link;
when the partner is not connected, it says so instead of guessing.`,
		Example: "  lockstepctl hmc show HMCS",
		Args:    cobra.ExactArgs(1),
		RunE: a.leaf(func(ctx context.Context, c *client.Client, args []string) error {
			h, err := c.HMCShow(ctx, args[0])
			if err != nil {
				return err
			}
			return a.show(h, func(w io.Writer) {
				fmt.Fprintf(w, "name\t%s\nuser\t%s\nattached\t%s\n", h.Name, orDash(h.User), serialsLine(h.Attached))
				for _, cs := range h.Consoles {
					fmt.Fprintf(w, "hmc %s\t%s %s %s fronts %s\n", cs.Addr, orDash(cs.Name), cs.State, cs.Detail, serialsLine(cs.Attached))
				}
				for _, cs := range h.Partner {
					fmt.Fprintf(w, "partner %s\t%s %s %s\n", cs.Addr, orDash(cs.Name), cs.State, cs.Detail)
				}
				if h.PartnerDetail != "" {
					fmt.Fprintf(w, "partner\t%s\n", h.PartnerDetail)
				}
			})
		}),
	}
}

func (a *app) hmcAddCmd() *cobra.Command {
	var addr, user, pwFile string
	cmd := &cobra.Command{
		Use:   "add NAME --addr HOST:PORT[,HOST:PORT] [--user U --password-file F]",
		Short: "Define an HMC connection (one HMC, or two for a dual HMC)",
		Long: `Define the HMC connection NAME. --addr gives one HMC, or two separated by a
comma for a dual HMC (CSM writes them "HMC1;HMC2"); an IPv6 host goes in
brackets. The storage systems the HMCs front are discovered once they
answer, and show in "hmc show", "storage list" and may be named in
sessions.

Trust: each HMC's certificate must be signed by the storage CA ([storage]
ca_file) and valid for its host name; a single HMC's certificate must
also name the connection (URI urn:lockstep:hmc:NAME), unless a pin for
"hmc:NAME" is configured. The two HMCs of a dual connection carry names of
their own, which "hmc show" shows.

--user and --password-file are the credentials this manager logs on to
the HMCs with. lockstepd reads the password file itself (it must not be
readable by others): no secret travels over the bus or lands in the
journal.`,
		Example: `  lockstepctl hmc add HMCS --addr hmc1.example.net:1751,hmc2.example.net:1751 \
      --user lockstep --password-file /etc/lockstep/hmc.pw`,
		Args: cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if err := cmd.ValidateRequiredFlags(); err != nil {
				return err
			}
			if err := hmcSpec(args[0], addr, user, pwFile).Validate(); err != nil {
				return usageErr("%v", err)
			}
			return nil
		},
		RunE: a.leaf(func(ctx context.Context, c *client.Client, args []string) error {
			ws, err := c.HMCAdd(ctx, hmcSpec(args[0], addr, user, pwFile))
			a.warn(ws)
			return err
		}),
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "", "HOST:PORT[,HOST:PORT] of the HMC, or of both HMCs (required)")
	f.StringVar(&user, "user", "", "the HMCs' user")
	f.StringVar(&pwFile, "password-file", "", "file holding the password; lockstepd reads it")
	_ = cmd.MarkFlagRequired("addr")
	_ = cmd.MarkFlagFilename("password-file")
	return cmd
}

func (a *app) hmcRemoveCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "remove NAME [--force]",
		Short: "Remove an HMC connection",
		Long: `Remove the HMC connection NAME; the storage systems discovered behind it
go with it unless they have another connection. Refused while it is the
only connection of a storage system that holds volumes of a session, and
while it is the last TCP/IP connection (direct or hmc) of a storage
system that sessions use, with the heartbeat on: the heartbeat would stop
reaching it, its sessions would be suspended and applications would see
extended long busy until the storage timer expires. --force removes it
anyway in the second case: the sessions are suspended first, at once.`,
		Example: "  lockstepctl hmc remove HMCS",
		Args:    cobra.ExactArgs(1),
		RunE: a.leaf(func(ctx context.Context, c *client.Client, args []string) error {
			ws, err := c.HMCRemove(ctx, args[0], force)
			a.warn(ws)
			return err
		}),
	}
	cmd.Flags().BoolVar(&force, "force", false, "remove the last TCP/IP connection although the heartbeat is on")
	return cmd
}

// hmcSpec is the HMCSpec of hmc add's arguments.
func hmcSpec(name, addr, user, pwFile string) api.HMCSpec {
	return api.HMCSpec{Name: name, Addresses: strings.Split(addr, ","), User: user, PasswordFile: pwFile}
}
