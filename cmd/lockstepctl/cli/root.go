package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/control/client"
	"github.com/lockstep-io/lockstep/internal/version"
)

// Exit codes of Run.
const (
	ExitOK    = 0
	ExitFail  = 1
	ExitUsage = 2
)

// BusEnv names the environment variable that chooses the bus when --bus
// is not given.
const BusEnv = "LOCKSTEP_BUS"

// errUsage marks a usage error found by a command itself (a malformed
// value); cobra's own (unknown verb or flag, wrong argument count) are
// recognised as errors returned before any command ran.
var errUsage = errors.New("usage")

func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

// Env looks up an environment variable (os.Getenv in the binary).
type Env func(key string) string

// app is one invocation: where output goes, the global flags, and
// whether a command started running (after which an error is the
// command's, not a usage error).
type app struct {
	stdout, stderr io.Writer
	getenv         Env
	bus            string
	json           bool
	ran            bool
}

// New returns lockstepctl's command tree. It connects to nothing: a
// command dials the bus when it runs. getenv may be nil (no environment).
func New(stdout, stderr io.Writer, getenv Env) *cobra.Command {
	_, root := newApp(stdout, stderr, getenv)
	return root
}

func newApp(stdout, stderr io.Writer, getenv Env) (*app, *cobra.Command) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	a := &app{stdout: stdout, stderr: stderr, getenv: getenv}
	root := &cobra.Command{
		Use:   "lockstepctl",
		Short: "Administer lockstepd, the Metro Mirror consistency manager",
		Long: `lockstepctl is the storage administrator's command line for lockstepd. It
defines the storage systems and the Metro Mirror sessions that lockstepd
keeps consistent, switches the heartbeat, runs the commands of a session,
drives the active/standby pair, and shows what the daemon knows.

It talks to lockstepd over its D-Bus admin API (org.lockstep.Manager1), on
the system bus unless --bus or $LOCKSTEP_BUS names another. Everyone may
read; changes need root or membership of group lockstep (the D-Bus policy
and the daemon both check).

--json prints every read as JSON (one document; events print one per
line). "lockstepctl VERB --help" and "lockstepctl help VERB" describe a
verb without contacting any bus.

Exit status: 0 done; 1 refused or failed (the message says why); 2 usage
(an unknown verb or flag, a wrong number of arguments, a malformed value).`,
		Example: `  lockstepctl status
  lockstepctl storage add IBM.2107-75ABC01 --addr 10.0.1.10:1750,10.0.1.11:1750 \
      --user lockstep --password-file /etc/lockstep/ds8k-abc01.pw
  lockstepctl session create prod --type mm-failover-failback --cg prod-cg
  lockstepctl session add-copyset prod IBM.2107-75ABC01/1001 IBM.2107-75XYZ02/1001
  lockstepctl session cmd prod start-h1-h2
  lockstepctl heartbeat on
  lockstepctl --json session show prod`,
		Version:       version.Version,
		SilenceErrors: true,
		SilenceUsage:  true,
		// No verb: the usage, and exit 2 (as for any usage error).
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprint(stderr, cmd.UsageString())
			return usageErr("lockstepctl [--bus BUS] [--json] COMMAND ... (a command is required)")
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("lockstepctl {{.Version}}\n")
	pf := root.PersistentFlags()
	pf.StringVar(&a.bus, "bus", "", `D-Bus to reach lockstepd on: "system", "session" or an address such as unix:path=/run/lockstep/bus (default $`+BusEnv+`, else system)`)
	pf.BoolVar(&a.json, "json", false, "print what is read as JSON")
	root.AddGroup(
		&cobra.Group{ID: "read", Title: "Looking:"},
		&cobra.Group{ID: "define", Title: "Defining and running:"},
		&cobra.Group{ID: "server", Title: "The server pair and its state:"},
	)
	for _, c := range []*cobra.Command{a.statusCmd(), a.eventsCmd(), a.firewallCmd()} {
		c.GroupID = "read"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{a.storageCmd(), a.hmcCmd(), a.zosCmd(), a.sessionCmd(), a.heartbeatCmd(), a.taskCmd()} {
		c.GroupID = "define"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{a.haCmd(), a.backupCmd(), a.snmpCmd()} {
		c.GroupID = "server"
		root.AddCommand(c)
	}
	// The help and completion verbs exist before Execute adds them, so
	// that the man pages and the completion script show them too.
	root.SetHelpCommand(helpCmd())
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	return a, root
}

// Run runs lockstepctl with args (without the program name) and returns
// its exit code. Errors are printed on stderr as "lockstepctl: ...".
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv Env) int {
	a, root := newApp(stdout, stderr, getenv)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(stderr, "lockstepctl: %v\n", err)
	switch {
	case !a.ran, errors.Is(err, errUsage):
		// cobra's own errors (unknown verb or flag, argument count)
		// come before any command runs.
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return ExitUsage
	case errors.Is(err, api.ErrInvalid):
		return ExitUsage
	default:
		return ExitFail
	}
}

// helpCmd is cobra's help verb, except that an unknown topic is a usage
// error (cobra's prints the root's help and exits 0).
func helpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		Long: `Help describes any command: "lockstepctl help session cmd" is
"lockstepctl session cmd --help". Neither contacts a bus.`,
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			cmd, _, err := c.Root().Find(args)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var names []cobra.Completion
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() && strings.HasPrefix(sub.Name(), toComplete) {
					names = append(names, cobra.CompletionWithDesc(sub.Name(), sub.Short))
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err != nil || len(rest) > 0 {
				return usageErr("unknown help topic %q", strings.Join(args, " "))
			}
			cmd.InitDefaultHelpFlag()
			return cmd.Help()
		},
	}
}

// group is a verb that only holds sub-verbs: without one, or with an
// unknown one, it is a usage error (cobra would print the help and exit
// 0).
func group(c *cobra.Command) *cobra.Command {
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return usageErr("%s: a subcommand is required (%s)", cmd.CommandPath(), subNames(cmd))
		}
		return usageErr("unknown command %q for %q (want %s)", args[0], cmd.CommandPath(), subNames(cmd))
	}
	return c
}

func subNames(cmd *cobra.Command) string {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	return strings.Join(names, ", ")
}

// leaf is a command's RunE: it connects to the bus, then runs f with the
// client. Help and usage errors never get here, so they need no bus.
func (a *app) leaf(f func(ctx context.Context, c *client.Client, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a.ran = true
		bus := a.bus
		if bus == "" {
			bus = a.getenv(BusEnv)
		}
		if bus == "" {
			bus = "system"
		}
		conn, err := client.Connect(bus)
		if err != nil {
			return fmt.Errorf("cannot reach the %s bus: %w", bus, err)
		}
		defer conn.Close()
		return f(cmd.Context(), client.New(conn), args)
	}
}

// show prints v as JSON with --json, else calls human on a table writer.
func (a *app) show(v any, human func(w io.Writer)) error {
	if a.json {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	human(tw)
	return tw.Flush()
}

func (a *app) warn(ws []string) {
	for _, w := range ws {
		fmt.Fprintf(a.stdout, "warning: %s\n", w)
	}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
