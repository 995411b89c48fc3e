package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/control/client"
	"github.com/lockstep-io/lockstep/hal"
)

func (a *app) haCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "ha",
		Short: "Drive the active/standby server pair",
		Long: `Two lockstepd servers form an active/standby pair: the active issues the
commands and handles the events, the standby holds an identical copy of
the active's journal over a mutually authenticated TLS link ([ha] of
/etc/lockstep/lockstep.toml) and can be told to take over. The pair is
set up with "ha set-standby" on the active (or "ha set-as-standby" on
the standby); the role and the partner are kept in the state directory.
Nothing takes over on its own: an administrator decides with "ha
takeover".`,
	})
	status := &cobra.Command{
		Use:   "status",
		Short: "Show this server's role, HA state, partner and synchronization",
		Long: `Show this server's edition, role, HA state and epoch, whether it acts,
its last journal record, the synchronization phase, the listener and the
partner, the standby's lag, the next automatic reconnection, and the
storage systems it cannot reach.`,
		Example: "  lockstepctl ha status\n  lockstepctl --json ha status",
		Args:    cobra.NoArgs,
		RunE: a.leaf(func(ctx context.Context, c *client.Client, _ []string) error {
			st, err := c.HAStatus(ctx)
			if err != nil {
				return err
			}
			return a.show(st, func(w io.Writer) {
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
				if st.PartnerRole != "" {
					fmt.Fprintf(w, "partner role\t%s (as last heard)\n", st.PartnerRole)
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
		}),
	}
	var partnerName string
	setStandby := &cobra.Command{
		Use:   "set-standby ADDR [--name NAME]",
		Short: "On the active: make the server at ADDR its standby",
		Long: `Run on the active server: connect to the server listening at ADDR (its [ha]
listen address, "tcp://host:port" or "vsock://cid:port") and make it this
server's standby. The standby's journal is replaced by the active's.

--name is the partner's server name, which its certificate must carry as
a DNS or URI name (default: [ha] partner_name; or pin its certificate
with [ha] partner_fingerprint). Nothing the partner says counts before
its certificate names it.`,
		Example: "  lockstepctl ha set-standby tcp://lockstep-b.example.net:9730 --name lockstep-b",
		Args:    cobra.ExactArgs(1),
		RunE: a.leaf(func(ctx context.Context, c *client.Client, args []string) error {
			return c.HASetStandby(ctx, args[0], partnerName)
		}),
	}
	setAsStandby := &cobra.Command{
		Use:   "set-as-standby ADDR [--name NAME]",
		Short: "On the future standby: become the standby of the active at ADDR",
		Long: `Run on the server that is to become the standby: connect to the active
listening at ADDR and become its standby. This server's journal is
replaced by the active's.

--name is the active's server name, which its certificate must carry
(default: [ha] partner_name, or a pinned [ha] partner_fingerprint).`,
		Example: "  lockstepctl ha set-as-standby tcp://lockstep-a.example.net:9730 --name lockstep-a",
		Args:    cobra.ExactArgs(1),
		RunE: a.leaf(func(ctx context.Context, c *client.Client, args []string) error {
			return c.HASetAsStandby(ctx, args[0], partnerName)
		}),
	}
	takeover := &cobra.Command{
		Use:   "takeover",
		Short: "On the standby: become the active, with a higher epoch",
		Long: `Run on the standby (connected or not): raise the epoch above every epoch
seen, persist it, and become the active. Every storage system is told
the new epoch first, so commands of the old active are refused from then
on. The answer lists the storage systems that could not be reached yet.`,
		Example: "  lockstepctl ha takeover",
		Args:    cobra.NoArgs,
		RunE: a.leaf(func(ctx context.Context, c *client.Client, _ []string) error {
			doc, err := c.HATakeover(ctx)
			if err != nil {
				return err
			}
			return a.show(doc, func(w io.Writer) {
				fmt.Fprintf(w, "active with epoch %d\n", doc.Epoch)
				printReadiness(w, doc.Unreachable, doc.Readiness)
				for _, warn := range doc.Warnings {
					fmt.Fprintf(w, "warning\t%s\n", warn)
				}
			})
		}),
	}
	simple := func(use, short, long string, f func(*client.Client, context.Context) error) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Long: long, Example: "  lockstepctl ha " + use, Args: cobra.NoArgs,
			RunE: a.leaf(func(ctx context.Context, c *client.Client, _ []string) error { return f(c, ctx) }),
		}
	}
	for _, c := range []*cobra.Command{setStandby, setAsStandby} {
		c.Flags().StringVar(&partnerName, "name", "", "the partner's server `NAME`, which its certificate must carry")
	}
	cmd.AddCommand(status, setStandby, setAsStandby, takeover,
		simple("reconnect", "Connect to the partner now and restart the automatic attempts",
			`Connect to the partner now, and start a new series of automatic
reconnection attempts ([ha] reconnect_interval and reconnect_attempts).`,
			(*client.Client).HAReconnect),
		simple("remove-standby", "On the active: end the pair, keep running alone",
			`Run on the active: end the relationship with the standby. The active
keeps running on its own; the former standby keeps its copy but no longer
receives the journal.`,
			(*client.Client).HARemoveStandby),
		simple("remove-active", "On a disconnected standby: forget the active",
			`Run on a standby that has lost its active: forget the relationship. It is
refused while the pair is synchronized (remove the standby on the active
instead).`,
			(*client.Client).HARemoveActive),
	)
	return cmd
}

// printReadiness lists the storage systems a server cannot reach, with
// why when the daemon says (an older one sends only the serials).
func printReadiness(w io.Writer, unreachable []hal.Serial, why []api.ReadinessDoc) {
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
