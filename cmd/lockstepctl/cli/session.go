package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/control/client"
)

func (a *app) sessionCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "session",
		Short: "Define Metro Mirror sessions and run their commands",
		Long: `A session is a set of copy sets (an H1 volume and its H2 volume) managed
together with one consistency scope: when any pair of the session stops
mirroring, lockstepd freezes every other pair of the session before a
dependent write can reach the secondary. Sessions that share a
consistency-group name (--cg) freeze together.

A session is defined (create, add-copyset), then driven with "session cmd"
(start-h1-h2, suspend, release-io, recover, ...); "session show" lists the
commands its state allows.`,
	})
	cmd.AddCommand(a.sessionListCmd(), a.sessionShowCmd(), a.sessionCreateCmd(), a.sessionAddCopySetCmd(),
		a.sessionCmdCmd(), a.sessionRemoveCmd())
	return cmd
}

func (a *app) sessionListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List the sessions with their state and status",
		Long:    "List every session: type, state, status, whether it is recoverable, its number of copy sets and its consistency group.",
		Example: "  lockstepctl session list\n  lockstepctl --json session list",
		Args:    cobra.NoArgs,
		RunE: a.leaf(func(ctx context.Context, c *client.Client, _ []string) error {
			list, err := c.SessionList(ctx)
			if err != nil {
				return err
			}
			return a.show(list, func(w io.Writer) {
				fmt.Fprintln(w, "NAME\tTYPE\tSTATE\tSTATUS\tRECOVERABLE\tCOPY SETS\tCG")
				for _, s := range list {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%v\t%d\t%s\n", s.Name, s.Type, s.State.Label(), s.Status.Label(), s.Recoverable,
						len(s.CopySets), s.CG)
				}
			})
		}),
	}
}

func (a *app) sessionShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show one session and the commands its state allows",
		Long: `Show one session: type, state and status, whether it is recoverable,
copying, in error or holding host I/O, the active site and the copy
direction, its consistency group and suspend policy, the last change and
its reason, and the commands its state allows now. --json also lists its
copy sets.`,
		Example: "  lockstepctl session show prod\n  lockstepctl --json session show prod",
		Args:    cobra.ExactArgs(1),
		RunE: a.leaf(func(ctx context.Context, c *client.Client, args []string) error {
			s, err := c.SessionShow(ctx, args[0])
			if err != nil {
				return err
			}
			return a.show(s, func(w io.Writer) { printSession(w, s) })
		}),
	}
}

func (a *app) sessionCreateCmd() *cobra.Command {
	var typ, cg, policy string
	var t api.SessionType
	var p api.SuspendPolicy
	cmd := &cobra.Command{
		Use:   "create NAME [--type TYPE] [--cg NAME] [--policy hold-io|release-io]",
		Short: "Define a new, empty session",
		Long: `Define a session called NAME, with no copy sets yet.

--type is mm-failover-failback (the default: production can move to H2
and back), mm-single-direction (H1 to H2 only; after a recover the way
back is terminate and start again) or mm-hyperswap (Metro Mirror
Failover/Failback with HyperSwap: a z/OS host swaps its I/O to H2 on the
hyperswap command, or on its own when I/O to H1 fails; it needs a z/OS
connection of this server's sysplex with every H1 and H2 system online,
checked at start, and the heartbeat never covers it). --cg names a
consistency group shared with other sessions: a freeze in one freezes
them all before any is thawed; a HyperSwap session shares one only with
other HyperSwap sessions. --policy says what happens to host writes after a freeze:
hold-io (the default) keeps them held until "session cmd NAME release-io"
or the storage system's consistency-group timeout; release-io lets them
continue, unmirrored, as soon as every freeze is certain.`,
		Example: "  lockstepctl session create prod --type mm-failover-failback --cg prod-cg",
		Args:    cobra.ExactArgs(1),
		PreRunE: func(*cobra.Command, []string) error {
			var err1, err2 error
			t, err1 = api.ParseSessionType(typ)
			p, err2 = api.ParseSuspendPolicy(policy)
			if err := errors.Join(err1, err2); err != nil {
				return usageErr("%v", err)
			}
			return nil
		},
		RunE: a.leaf(func(ctx context.Context, c *client.Client, args []string) error {
			return c.SessionCreate(ctx, args[0], t, cg, p)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&typ, "type", string(api.MetroMirrorFailoverFailback), "session type: mm-failover-failback, mm-single-direction or mm-hyperswap")
	f.StringVar(&cg, "cg", "", "consistency-group name shared with other sessions")
	f.StringVar(&policy, "policy", string(api.HoldIO), "after a freeze: hold-io or release-io")
	_ = cmd.RegisterFlagCompletionFunc("type", fixed(words(api.SessionTypes())...))
	_ = cmd.RegisterFlagCompletionFunc("policy", fixed(words(api.SuspendPolicies())...))
	return cmd
}

func (a *app) sessionAddCopySetCmd() *cobra.Command {
	var cs api.CopySet
	return &cobra.Command{
		Use:   "add-copyset NAME H1 H2",
		Short: "Add a copy set (an H1 volume and its H2 volume) to a session",
		Long: `Add a copy set to the session NAME: the volume H1 at host site 1 and the
volume H2 at host site 2, each written SERIAL/VVVV (the storage system's
serial, a slash, and the volume id: 2 hex digits of LSS, 2 of volume).
Both storage systems must be defined (storage add).`,
		Example: "  lockstepctl session add-copyset prod IBM.2107-75ABC01/1001 IBM.2107-75XYZ02/1001",
		Args:    cobra.ExactArgs(3),
		PreRunE: func(_ *cobra.Command, args []string) error {
			var err1, err2 error
			cs.H1, err1 = api.ParseVolumeRef(args[1])
			cs.H2, err2 = api.ParseVolumeRef(args[2])
			if err := errors.Join(err1, err2); err != nil {
				return usageErr("%v", err)
			}
			return nil
		},
		RunE: a.leaf(func(ctx context.Context, c *client.Client, args []string) error {
			return c.SessionAddCopySet(ctx, args[0], cs)
		}),
	}
}

func (a *app) sessionCmdCmd() *cobra.Command {
	var command api.SessionCommand
	names := words(api.SessionCommands())
	return &cobra.Command{
		Use:   "cmd NAME COMMAND",
		Short: "Run a command on a session: " + strings.Join(names, ", "),
		Long: `Run COMMAND on the session NAME and show the session after it:

  start-h1-h2   establish the pairs and copy from H1 to H2
  start-h2-h1   copy from H2 to H1 (failover/failback, after a recover to H2)
  suspend       freeze every pair of the session (a planned suspension)
  hyperswap     (mm-hyperswap, Prepared) the z/OS hosts swap, then the group is frozen
                their I/O to H2: Target Available with H2 active, Normal
                if the freeze was certain, Severe otherwise
  release-io    let the held host writes continue after a freeze
  recover       make the consistent secondary image usable by hosts
  terminate     remove the pairs and the paths no other session uses: the
                volumes become simplex, the session Defined (refused while
                I/O is held: release-io first)
  refresh       ask the storage systems for the pairs' states

Each state allows only some commands; "session show NAME" lists them, and
a command the state does not allow is refused with the reason.`,
		Example: "  lockstepctl session cmd prod start-h1-h2\n  lockstepctl session cmd prod suspend",
		Args:    cobra.ExactArgs(2),
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) == 1 {
				return names, cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		PreRunE: func(_ *cobra.Command, args []string) (err error) {
			if command, err = api.ParseSessionCommand(args[1]); err != nil {
				return usageErr("%v", err)
			}
			return nil
		},
		RunE: a.leaf(func(ctx context.Context, c *client.Client, args []string) error {
			s, err := c.SessionCommand(ctx, args[0], command)
			if err != nil {
				return err
			}
			if err := a.show(s, func(w io.Writer) { printSession(w, s) }); err != nil {
				return err
			}
			if !a.json {
				a.warn(s.Warnings)
			}
			return nil
		}),
	}
}

func (a *app) sessionRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "remove NAME",
		Short:   "Remove a session's definition",
		Long:    "Remove the session NAME. Only a session in state Defined can be removed: terminate it first.",
		Example: "  lockstepctl session cmd prod terminate\n  lockstepctl session remove prod",
		Args:    cobra.ExactArgs(1),
		RunE: a.leaf(func(ctx context.Context, c *client.Client, args []string) error {
			return c.SessionRemove(ctx, args[0])
		}),
	}
}

func printSession(w io.Writer, s api.SessionDoc) {
	fmt.Fprintf(w, "session\t%s (%s)\n", s.Name, s.Type)
	fmt.Fprintf(w, "state\t%s\nstatus\t%s\n", s.State.Label(), s.Status.Label())
	fmt.Fprintf(w, "recoverable\t%v\ncopying\t%v\nerror\t%v\nI/O held\t%v\n", s.Recoverable, s.Copying, s.Error, s.IOHeld)
	fmt.Fprintf(w, "active site\t%s\ndirection\t%s\n", s.ActiveSite, s.Direction)
	if s.CG != "" {
		fmt.Fprintf(w, "consistency group\t%s\n", s.CG)
	}
	fmt.Fprintf(w, "policy\t%s\ncopy sets\t%d\n", s.Policy, len(s.CopySets))
	if s.Reason != "" {
		fmt.Fprintf(w, "last change\t%s: %s\n", s.LastChange.Format(time.RFC3339), s.Reason)
	}
	fmt.Fprintf(w, "available commands\t%s\n", strings.Join(words(s.AvailableCommands), ", "))
}

// words are the API's words as strings, for completions and lists.
func words[T ~string](ws []T) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = string(w)
	}
	return out
}
