package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lockstep-io/lockstep/daemon/control/client"
)

func (a *app) heartbeatCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "heartbeat",
		Short: "Switch the Metro Mirror heartbeat on or off, and show it",
		Long: `With the Metro Mirror heartbeat on, lockstepd refreshes a timer on every
storage system of a heartbeat-enabled session; a storage system whose
timer runs out (because it lost contact with lockstepd) freezes its own
volumes of the session. The heartbeat covers the failures the manager
cannot see. The switch is persisted state, kept in the journal; the
timings are in [heartbeat] of /etc/lockstep/lockstep.toml.`,
	})
	set := func(on bool) *cobra.Command {
		use, short := "off", "Stop the heartbeat"
		if on {
			use, short = "on", "Start the heartbeat to every storage system of the sessions"
		}
		return &cobra.Command{
			Use:   use,
			Short: short,
			Long: short + `. What the daemon notices but accepts (for instance a storage
system that cannot carry the heartbeat) is printed as "warning: ...".`,
			Example: "  lockstepctl heartbeat " + use,
			Args:    cobra.NoArgs,
			RunE: a.leaf(func(ctx context.Context, c *client.Client, _ []string) error {
				ws, err := c.HeartbeatSet(ctx, on)
				a.warn(ws)
				return err
			}),
		}
	}
	show := &cobra.Command{
		Use:   "show",
		Short: "Show the heartbeat, its interval and each consistency group's timer",
		Long: `Show whether the heartbeat is on and its interval, then per consistency
group its phase and storage-side timeout H, and per storage system
whether its timer is armed, whether it froze, and its last reply.`,
		Example: "  lockstepctl heartbeat show\n  lockstepctl --json heartbeat show",
		Args:    cobra.NoArgs,
		RunE: a.leaf(func(ctx context.Context, c *client.Client, _ []string) error {
			hb, err := c.HeartbeatShow(ctx)
			if err != nil {
				return err
			}
			return a.show(hb, func(w io.Writer) {
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
		}),
	}
	cmd.AddCommand(set(true), set(false), show)
	return cmd
}
