package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// nobus is a bus address where nothing listens: a command that dials it
// fails with "cannot reach".
func nobus(t *testing.T) string {
	return "unix:path=" + filepath.Join(t.TempDir(), "none")
}

func run(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, &out, &errb, func(k string) string { return env[k] })
	return code, out.String(), errb.String()
}

// walk calls f with the path (without "lockstepctl") of every command of
// the tree, the root included.
func walk(c *cobra.Command, path []string, f func(path []string, c *cobra.Command)) {
	f(path, c)
	for _, sub := range c.Commands() {
		walk(sub, append(append([]string(nil), path...), sub.Name()), f)
	}
}

// Every verb and sub-verb prints its own help, for --help, -h and
// "help VERB", and exits 0 without dialing any bus: the bus here does
// not exist, and $LOCKSTEP_BUS names another that does not.
func TestHelpNeedsNoBus(t *testing.T) {
	t.Parallel()
	bus := nobus(t)
	env := map[string]string{BusEnv: nobus(t)}
	n := 0
	walk(New(nil, nil, nil), nil, func(path []string, c *cobra.Command) {
		if c.Hidden {
			return
		}
		n++
		for _, args := range [][]string{
			append(append([]string{"--bus", bus}, path...), "--help"),
			append(append([]string(nil), path...), "-h"),
			append([]string{"help"}, path...),
		} {
			code, out, errs := run(t, env, args...)
			if code != ExitOK || errs != "" {
				t.Errorf("%q: exit %d, stderr %q; want 0 and nothing on stderr", args, code, errs)
				continue
			}
			if !strings.Contains(out, "Usage:\n  "+c.UseLine()) && !strings.Contains(out, "Usage:\n  "+c.CommandPath()) {
				t.Errorf("%q: no usage line of %q in:\n%s", args, c.CommandPath(), out)
			}
			if !strings.Contains(out, strings.TrimSpace(c.Long)) {
				t.Errorf("%q: the help lacks the command's description", args)
			}
		}
	})
	// status, events, firewall-hints, storage ×5, session ×7, heartbeat
	// ×4, ha ×8, backup ×4, help, completion ×5, and the root.
	if n < 38 {
		t.Errorf("walked %d commands; the tree has lost some", n)
	}
}

// Every command says what it is for; every runnable leaf shows an example.
func TestEveryCommandIsDocumented(t *testing.T) {
	t.Parallel()
	walk(New(nil, nil, nil), nil, func(path []string, c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || (len(path) > 0 && path[0] == "completion") {
			return // cobra's own
		}
		if c.Short == "" || c.Long == "" {
			t.Errorf("%s: Short and Long are required", c.CommandPath())
		}
		if !c.HasSubCommands() && c.Example == "" {
			t.Errorf("%s: a runnable command needs an Example", c.CommandPath())
		}
		for _, line := range strings.Split(c.Example, "\n") {
			if line != "" && !strings.HasPrefix(line, "  lockstepctl ") && !strings.HasPrefix(line, "      ") {
				t.Errorf("%s: example line %q does not start with \"  lockstepctl \"", c.CommandPath(), line)
			}
		}
	})
}

// Usage errors, cobra's and the commands' own, exit 2 before any bus is
// dialed (the bus does not exist: a dial would say "cannot reach").
func TestUsageErrorsNeedNoBus(t *testing.T) {
	t.Parallel()
	bus := nobus(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no verb", nil, "a command is required"},
		{"unknown verb", []string{"frob"}, `unknown command "frob"`},
		{"unknown flag", []string{"status", "--frob"}, "unknown flag: --frob"},
		{"unknown global flag", []string{"--frob", "status"}, "unknown flag: --frob"},
		{"extra argument", []string{"status", "now"}, "unknown command"},
		{"missing argument", []string{"storage", "show"}, "accepts 1 arg(s), received 0"},
		{"missing flag", []string{"storage", "add", "S"}, `required flag(s) "addr" not set`},
		{"group without sub", []string{"ha"}, "a subcommand is required"},
		{"group with unknown sub", []string{"backup", "frob"}, `unknown command "frob" for "lockstepctl backup"`},
		{"bad session type", []string{"session", "create", "s", "--type", "xrc"}, `unknown session type "xrc"`},
		{"bad policy", []string{"session", "create", "s", "--policy", "x"}, `unknown suspend policy "x"`},
		{"bad volume", []string{"session", "add-copyset", "s", "A/1", "B/1001"}, "A/1"},
		{"bad session command", []string{"session", "cmd", "s", "explode"}, `unknown command "explode"`},
		{"bad firewall format", []string{"firewall-hints", "--format", "pf"}, `format "pf"`},
		{"bad number", []string{"events", "--since", "-1"}, "invalid argument"},
		{"help of an unknown verb", []string{"help", "frob"}, `unknown help topic "frob"`},
		{"help of an unknown sub-verb", []string{"help", "ha", "promote"}, `unknown help topic "ha promote"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out, errs := run(t, nil, append([]string{"--bus", bus}, tc.args...)...)
			all := out + errs
			if code != ExitUsage || !strings.Contains(errs, tc.want) || strings.Contains(all, "cannot reach") {
				t.Errorf("%q: exit %d, stderr %q; want 2, %q and no bus dialed", tc.args, code, errs, tc.want)
			}
			if !strings.Contains(errs, "--help' for usage") {
				t.Errorf("%q: stderr %q does not point at --help", tc.args, errs)
			}
		})
	}
}

// --version prints the build's version, without a bus.
func TestVersion(t *testing.T) {
	t.Parallel()
	code, out, errs := run(t, nil, "--bus", nobus(t), "--version")
	if code != ExitOK || out != "lockstepctl dev\n" || errs != "" {
		t.Errorf("--version: exit %d, stdout %q, stderr %q; want 0 and \"lockstepctl dev\"", code, out, errs)
	}
}

// A command that runs dials the bus: --bus first, then $LOCKSTEP_BUS,
// then the system bus.
func TestBusChoice(t *testing.T) {
	t.Parallel()
	flag, env := nobus(t), nobus(t)
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"flag wins", map[string]string{BusEnv: env}, []string{"--bus", flag, "status"}, flag},
		{"environment", map[string]string{BusEnv: env}, []string{"status"}, env},
		{"invalid", nil, []string{"--bus", "carrier-pigeon", "status"}, "carrier-pigeon"},
	} {
		code, _, errs := run(t, tc.env, tc.args...)
		if !strings.Contains(errs, "cannot reach the "+tc.want+" bus") {
			t.Errorf("%s: exit %d, stderr %q; want it to name %s", tc.name, code, errs, tc.want)
		}
	}
}

// The bash completion comes from the tree: verbs, sub-verbs, and the
// fixed values of flags and arguments.
func TestCompletion(t *testing.T) {
	t.Parallel()
	code, out, errs := run(t, nil, "completion", "bash")
	if code != ExitOK || !strings.Contains(out, "__start_lockstepctl") {
		t.Fatalf("completion bash: exit %d, stderr %q, script:\n%.300s", code, errs, out)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{""}, []string{"status", "storage", "session", "heartbeat", "ha", "backup", "events", "firewall-hints", "zos"}},
		{[]string{"ha", ""}, []string{"status", "set-standby", "set-as-standby", "takeover", "reconnect", "remove-standby", "remove-active"}},
		{[]string{"session", "cmd", "prod", ""}, []string{"start-h1-h2", "suspend", "release-io", "recover", "terminate", "refresh"}},
		{[]string{"session", "create", "s", "--type", ""}, []string{"mm-failover-failback", "mm-single-direction"}},
		{[]string{"firewall-hints", "--format", ""}, []string{"text", "nft", "iptables"}},
		{[]string{"storage", "add", "S", "--kind", ""}, []string{"direct"}},
	} {
		code, out, _ := run(t, nil, append([]string{"__complete"}, tc.args...)...)
		for _, w := range tc.want {
			if code != ExitOK || !strings.Contains(out, w+"\t") && !strings.Contains(out, w+"\n") {
				t.Errorf("__complete %q: exit %d, %q missing from:\n%s", tc.args, code, w, out)
			}
		}
	}
}
