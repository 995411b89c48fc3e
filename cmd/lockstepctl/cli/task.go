package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/control/client"
)

func (a *app) taskCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "task",
		Short: "Define and run scheduled tasks (session commands on a schedule)",
		Long: `A scheduled task is a named list of steps run on a schedule: session
commands ("suspend prod", "start-h1-h2 prod", "refresh prod", ...) and waits
until a session reaches a state ("wait prod prepared timeout 15m"). The
steps run in order; the first that fails ends the run.

Schedules, in wall-clock time of the task's IANA time zone (--zone; by
default the server's, stored in the task so that both servers of an HA pair
agree):

  at 2026-12-24T02:00    once
  every 6h               every interval (a duration: 30s, 15m, 6h), from
                         the task's creation or its last enabling
  daily 02:00            every day
  weekly sun 03:30       every week (sun mon tue wed thu fri sat)

A time the zone skips (the spring DST change) runs at the next valid
minute of that day; one it repeats (the fall change) runs once, at the first.

Tasks are journaled, so the standby has them, and only the acting server
runs them. Each run is journaled started before its first step: a run
whose server stopped before it finished is shown "interrupted" and is not
run again. A run that came due while no server acted (during a takeover,
a restart) is shown "missed", not run late: the former active may have run
it. Successes and failures are events and SNMP traps (LS7001I, LS7002E).`,
	})
	var spec api.TaskSpec
	create := &cobra.Command{
		Use:   "create NAME --schedule SCHEDULE --step STEP [--step STEP]...",
		Short: "Define a scheduled task",
		Long: `Define the task NAME: its schedule, its steps in order (repeat --step),
its time zone. The task is enabled unless --disabled.`,
		Example: `  lockstepctl task create nightly-copy --schedule "daily 02:00" --zone Europe/Berlin \
      --step "suspend prod" --step "wait prod suspended timeout 5m" --step "start-h1-h2 prod"
  lockstepctl task create refresh --schedule "every 6h" --step "refresh prod"`,
		Args: cobra.ExactArgs(1),
		RunE: a.leaf(func(ctx context.Context, c *client.Client, args []string) error {
			spec.Name = args[0]
			t, err := c.TaskCreate(ctx, spec)
			if err != nil {
				return err
			}
			return a.show(t, func(w io.Writer) { fmt.Fprintf(w, "task %s created; next run %s\n", t.Name, when(t.Next, t.Zone)) })
		}),
	}
	create.Flags().StringVar(&spec.Schedule, "schedule", "", `when: "at 2026-12-24T02:00", "every 6h", "daily 02:00" or "weekly sun 03:30"`)
	create.Flags().StringArrayVar(&spec.Steps, "step", nil, `a step, in order: "COMMAND SESSION" or "wait SESSION STATE [timeout D]"`)
	create.Flags().StringVar(&spec.Zone, "zone", "", "IANA time zone of the schedule (default: the server's)")
	create.Flags().BoolVar(&spec.Disabled, "disabled", false, "create the task disabled")
	_ = create.MarkFlagRequired("schedule")
	_ = create.MarkFlagRequired("step")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the tasks: next run, last run, last result and message",
		Long: `List the tasks with their schedule, whether enabled, the next run, and the
last run's time, result (success, failed, interrupted, missed) and message,
times in each task's zone.`,
		Example: "  lockstepctl task list",
		Args:    cobra.NoArgs,
		RunE: a.leaf(func(ctx context.Context, c *client.Client, _ []string) error {
			list, err := c.TaskList(ctx)
			if err != nil {
				return err
			}
			return a.show(list, func(w io.Writer) {
				fmt.Fprintln(w, "NAME\tENABLED\tSCHEDULE\tZONE\tNEXT RUN\tLAST RUN\tLAST RESULT\tMESSAGE")
				for _, t := range list {
					last, result, msg := "-", "-", "-"
					if t.Running != nil {
						last, result = when(t.Running.Started, t.Zone), "running"
					} else if t.Last != nil {
						last, result, msg = when(lastTime(t.Last), t.Zone), t.Last.Result, t.Last.Message
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, yesNo(t.Enabled), t.Schedule, t.Zone,
						when(t.Next, t.Zone), last, result, msg)
				}
			})
		}),
	}
	show := &cobra.Command{
		Use:     "show NAME",
		Short:   "Show a task: schedule, steps, next and last runs",
		Long:    "Show the task NAME: its schedule and zone, its steps, the next run, a run in progress, and the last run's result and message.",
		Example: "  lockstepctl task show nightly-copy",
		Args:    cobra.ExactArgs(1),
		RunE: a.leaf(func(ctx context.Context, c *client.Client, args []string) error {
			t, err := c.TaskShow(ctx, args[0])
			if err != nil {
				return err
			}
			return a.show(t, func(w io.Writer) { showTask(w, t) })
		}),
	}
	enable := &cobra.Command{
		Use:   "enable NAME",
		Short: "Enable a task: its schedule runs again from now",
		Long: `Enable the task NAME. Runs that came due while it was disabled are not run
and not counted as missed; an every schedule counts again from now.`,
		Example: "  lockstepctl task enable nightly-copy",
		Args:    cobra.ExactArgs(1),
		RunE: a.leaf(func(ctx context.Context, c *client.Client, args []string) error {
			t, err := c.TaskEnable(ctx, args[0], true)
			if err != nil {
				return err
			}
			return a.show(t, func(w io.Writer) { fmt.Fprintf(w, "task %s enabled; next run %s\n", t.Name, when(t.Next, t.Zone)) })
		}),
	}
	disable := &cobra.Command{
		Use:     "disable NAME",
		Short:   "Disable a task: its schedule no longer runs",
		Long:    "Disable the task NAME. A run in progress finishes; task run still runs it.",
		Example: "  lockstepctl task disable nightly-copy",
		Args:    cobra.ExactArgs(1),
		RunE: a.leaf(func(ctx context.Context, c *client.Client, args []string) error {
			t, err := c.TaskEnable(ctx, args[0], false)
			if err != nil {
				return err
			}
			return a.show(t, func(w io.Writer) { fmt.Fprintf(w, "task %s disabled\n", t.Name) })
		}),
	}
	var at string
	run := &cobra.Command{
		Use:   "run NAME [--at TIME]",
		Short: "Run a task once, now or at a time, enabled or not",
		Long: `Run the task NAME once, now, or at TIME (--at): RFC 3339
(2026-12-24T02:00:00+01:00) or YYYY-MM-DDTHH:MM in lockstepctl's local
time zone. One such run is pending at a time: a second replaces it. The
run does not change the schedule.`,
		Example: "  lockstepctl task run nightly-copy\n  lockstepctl task run nightly-copy --at 2026-12-24T01:30",
		Args:    cobra.ExactArgs(1),
		RunE: a.leaf(func(ctx context.Context, c *client.Client, args []string) error {
			var t time.Time
			if at != "" {
				var err error
				if t, err = parseAt(at); err != nil {
					return err
				}
			}
			doc, err := c.TaskRun(ctx, args[0], t)
			if err != nil {
				return err
			}
			return a.show(doc, func(w io.Writer) { fmt.Fprintf(w, "task %s runs at %s\n", doc.Name, when(doc.RunAt, doc.Zone)) })
		}),
	}
	run.Flags().StringVar(&at, "at", "", "when to run it (default: now)")
	remove := &cobra.Command{
		Use:     "remove NAME",
		Short:   "Remove a task (refused while it runs)",
		Long:    "Remove the task NAME and its history. Refused while a run of it is in progress.",
		Example: "  lockstepctl task remove nightly-copy",
		Args:    cobra.ExactArgs(1),
		RunE: a.leaf(func(ctx context.Context, c *client.Client, args []string) error {
			return c.TaskRemove(ctx, args[0])
		}),
	}
	cmd.AddCommand(create, list, show, enable, disable, run, remove)
	return cmd
}

// parseAt reads task run --at.
func parseAt(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02 15:04"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usageErr("--at %q: want RFC 3339 (2026-12-24T02:00:00+01:00) or YYYY-MM-DDTHH:MM", s)
}

// lastTime is when an occurrence ended (or, missed, was due).
func lastTime(o *api.OccurrenceDoc) time.Time {
	if !o.Finished.IsZero() {
		return o.Finished
	}
	return o.Scheduled
}

// when prints a time in the task's zone, "-" for none.
func when(t time.Time, zone string) string {
	if t.IsZero() {
		return "-"
	}
	if loc, err := time.LoadLocation(zone); err == nil {
		t = t.In(loc)
	}
	return t.Format("2006-01-02 15:04:05 MST")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func showTask(w io.Writer, t api.TaskDoc) {
	fmt.Fprintf(w, "Name:\t%s\n", t.Name)
	fmt.Fprintf(w, "Enabled:\t%s\n", yesNo(t.Enabled))
	fmt.Fprintf(w, "Schedule:\t%s (%s)\n", t.Schedule, t.Zone)
	for i, s := range t.Steps {
		fmt.Fprintf(w, "Step %d:\t%s\n", i+1, s)
	}
	fmt.Fprintf(w, "Next run:\t%s\n", when(t.Next, t.Zone))
	if !t.RunAt.IsZero() {
		fmt.Fprintf(w, "Run asked for:\t%s\n", when(t.RunAt, t.Zone))
	}
	if o := t.Running; o != nil {
		fmt.Fprintf(w, "Running:\tdue %s, started %s (epoch %d)\n", when(o.Scheduled, t.Zone), when(o.Started, t.Zone), o.Epoch)
	}
	if o := t.Last; o != nil {
		fmt.Fprintf(w, "Last run:\tdue %s, ended %s (epoch %d)\n", when(o.Scheduled, t.Zone), when(lastTime(o), t.Zone), o.Epoch)
		fmt.Fprintf(w, "Last result:\t%s\n", o.Result)
		fmt.Fprintf(w, "Last message:\t%s\n", strings.ReplaceAll(o.Message, "\n", " "))
	}
	fmt.Fprintf(w, "Missed:\t%d\n", t.Missed)
	fmt.Fprintf(w, "Created:\t%s\n", when(t.Created, t.Zone))
}
