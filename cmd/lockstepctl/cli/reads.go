package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/control/client"
)

func (a *app) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the server's role, HA state, epoch, sessions and heartbeat",
		Long: `Show the one-screen summary of this lockstepd: its name and version, its
role (active, standby) and HA state, the epoch, whether the heartbeat is
on, the sessions counted by status, and the storage systems (how many are
reachable).`,
		Example: `  lockstepctl status
  lockstepctl --json status`,
		Args: cobra.NoArgs,
		RunE: a.leaf(func(ctx context.Context, c *client.Client, _ []string) error {
			st, err := c.Status(ctx)
			if err != nil {
				return err
			}
			return a.show(st, func(w io.Writer) {
				fmt.Fprintf(w, "server\t%s (%s)\n", st.Server, st.Version)
				fmt.Fprintf(w, "role\t%s\n", st.Role)
				fmt.Fprintf(w, "HA state\t%s\n", st.HAState)
				fmt.Fprintf(w, "epoch\t%d\n", st.Epoch)
				fmt.Fprintf(w, "heartbeat\t%s\n", onOff(st.Heartbeat))
				s := st.Sessions
				fmt.Fprintf(w, "sessions\t%d (normal %d, warning %d, severe %d, inactive %d; recoverable %d)\n",
					s.Total, s.Normal, s.Warning, s.Severe, s.Inactive, s.Recoverable)
				fmt.Fprintf(w, "storage systems\t%d (%d reachable)\n", st.Storage.Total, st.Storage.Reachable)
				fmt.Fprintf(w, "journal\t%s\n", api.JournalLine(st.Journal))
				for _, d := range st.Degraded {
					fmt.Fprintf(w, "DEGRADED\t%s\n", d)
				}
			})
		}),
	}
}

func (a *app) eventsCmd() *cobra.Command {
	var since uint64
	var follow bool
	cmd := &cobra.Command{
		Use:   "events [--since SEQ] [--follow]",
		Short: "Show the daemon's recent events, and follow new ones",
		Long: `Show the events the daemon keeps (the last ones of its catalogue: session
state changes, suspensions, storage communication, heartbeat, HA, takeover,
configuration), one per line: sequence number, time, message id, text.
The same events go to the journal and, as SNMP notifications, to the
configured managers.

--since SEQ shows only the events after that sequence number. --follow
keeps printing new events until interrupted; nothing falls between the
events already kept and the new ones. With --json each event is one JSON
document on its own line.`,
		Example: `  lockstepctl events
  lockstepctl events --since 120 --follow
  lockstepctl --json events --follow`,
		Args: cobra.NoArgs,
		RunE: a.leaf(func(ctx context.Context, c *client.Client, _ []string) error {
			print := func(ev api.EventDoc) {
				if a.json {
					json.NewEncoder(a.stdout).Encode(ev)
					return
				}
				fmt.Fprintf(a.stdout, "%6d %s %s %s\n", ev.Seq, ev.At.Format(time.RFC3339), ev.ID, ev.Text)
			}
			var live <-chan api.EventDoc
			if follow {
				var err error
				if live, err = c.Follow(ctx); err != nil { // subscribe first: nothing falls between
					return err
				}
			}
			list, err := c.Events(ctx, since)
			if err != nil {
				return err
			}
			last := since
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
		}),
	}
	cmd.Flags().Uint64Var(&since, "since", 0, "only events after this sequence number")
	cmd.Flags().BoolVar(&follow, "follow", false, "keep printing new events until interrupted")
	return cmd
}

func (a *app) firewallCmd() *cobra.Command {
	var format string
	var f api.FirewallFormat
	cmd := &cobra.Command{
		Use:   "firewall-hints [--format text|nft|iptables]",
		Short: "Print the firewall rules lockstepd needs, ready to paste",
		Long: `Print the rules a host firewall needs for lockstepd: the HA listener and
the partner's port, the local ephemeral port range (read from the kernel)
or the configured source ports, the storage systems' and the SNMP
managers' ports. --format chooses plain text (the default), an nft
ruleset or iptables commands.`,
		Example: `  lockstepctl firewall-hints
  lockstepctl firewall-hints --format nft > /etc/nftables.d/lockstep.nft`,
		Args: cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) (err error) {
			f, err = api.ParseFirewallFormat(format)
			return err
		},
		RunE: a.leaf(func(ctx context.Context, c *client.Client, _ []string) error {
			doc, err := c.FirewallHints(ctx, f)
			if err != nil {
				return err
			}
			if a.json {
				return a.show(doc, nil)
			}
			fmt.Fprint(a.stdout, doc.Rules)
			return nil
		}),
	}
	cmd.Flags().StringVar(&format, "format", "text", "text, nft or iptables")
	_ = cmd.RegisterFlagCompletionFunc("format", fixed("text", "nft", "iptables"))
	return cmd
}

// fixed completes a value from a fixed list.
func fixed(values ...string) cobra.CompletionFunc {
	return cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp)
}
