package layering

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/lockstep-io/lockstep"

// rule is one import rule: no package that from matches may depend,
// directly or not, on a package deny matches (unless except matches it
// too); and, when only is set, on any package of this module that only
// does not match, nor on any package outside the module and the standard
// library that external does not match. Patterns of this module's
// packages are module-relative import paths, external ones full import
// paths; "x/..." matches x and everything under it. Only non-test code
// counts: `go list -deps` leaves _test.go files out, and tests may wire
// anything.
type rule struct {
	name   string   // what the rule says, for the failure message
	from   []string // the packages checked (go list patterns)
	deny   []string // the packages they must not depend on
	except []string // denied packages they may depend on after all
	only   []string // if set: the only module packages they may depend on
	// external, with only: the only third-party packages they may depend
	// on (the standard library is always allowed).
	external []string
}

// rules are the layering of the design. Add a rule here, with a name
// that says why, rather than a test of its own.
var rules = []rule{
	{
		name: "persist stores opaque records: the storage layer imports nothing of the daemon's domain",
		from: []string{"persist/..."},
		deny: []string{"daemon/..."},
	},
	{
		name: "ha and its link ship records as bytes: they import nothing of the daemon",
		from: []string{"ha/..."},
		deny: []string{"daemon/..."},
	},
	{
		name: "lockstepctl links the admin API's contract and its client, never the daemon's core",
		from: []string{"cmd/lockstepctl/..."},
		only: []string{"cmd/lockstepctl/...", "daemon/control/api", "daemon/control/client", "daemon/control/snmpstate",
			"hal", "hal/clock", "internal/version"},
		external: []string{"github.com/spf13/cobra", "github.com/spf13/pflag", "github.com/godbus/dbus/v5/..."},
	},
	{
		// hal/clock comes with hal (its driver spec names the clock): a
		// leaf of the standard library, nothing of the core.
		name: "the admin API's contract is plain data: the standard library and hal's value types only",
		from: []string{"daemon/control/api"},
		only: []string{"daemon/control/api", "hal", "hal/clock"},
	},
	{
		// lockstepctl snmp pass-persist serves it, and daemon/notify
		// writes the MIB from it: both sides need it, so it must not pull
		// the daemon into lockstepctl.
		name: "LOCKSTEP-MIB's pollable state is plain data over the contract: lockstepctl links it",
		from: []string{"daemon/control/snmpstate"},
		only: []string{"daemon/control/snmpstate", "daemon/control/api", "hal", "hal/clock"},
	},
	{
		name:     "the admin API's client speaks the contract over D-Bus, without the server",
		from:     []string{"daemon/control/client"},
		only:     []string{"daemon/control/client", "daemon/control/api", "hal", "hal/clock"},
		external: []string{"github.com/godbus/dbus/v5/..."},
	},
	{
		name: "the HMC driver imports only hal, its clock, its event subscriptions and the wire protocol: only cmd wires drivers in",
		from: []string{"drivers/hmc"},
		only: []string{"drivers/hmc", "drivers/wire", "hal", "hal/clock", "hal/eventsub"},
	},
	{
		name: "the composition of a system's connections knows only hal: any driver composes",
		from: []string{"hal/compose"},
		only: []string{"hal/compose", "hal", "hal/clock"},
	},
	{
		name: "the z/OS driver talks to storage through hal and the wire protocol only",
		from: []string{"drivers/zos"},
		only: []string{"drivers/zos", "drivers/wire", "hal", "hal/clock", "hal/eventsub"},
	},
	{
		// Everything under internal/ is lab or test tooling (the
		// emulator, lab server, workload and oracle, topologies and
		// scenarios) except the production helpers named here.
		name:   "lockstepd links no emulator, lab or test harness: of internal/ only the production helpers",
		from:   []string{"cmd/lockstepd"},
		deny:   []string{"internal/..."},
		except: []string{"internal/version", "internal/secretfile"},
	},
	{
		name: "the daemon sees storage only through hal: it imports no driver (cmd/lockstepd maps connection kinds to driver factories)",
		from: []string{"daemon/..."},
		deny: []string{"drivers/..."},
	},
}

// driverRules are the rules of every package under drivers/, found at
// test time so that a new driver (drivers/hmc, drivers/zos) is held the
// day it lands: a driver imports only hal (+ hal/clock, hal/eventsub) and the wire
// package (and its own subpackages); the wire package only hal.
func driverRules(t *testing.T) []rule {
	t.Helper()
	out, err := exec.Command("go", "list", module+"/drivers/...").Output()
	if err != nil {
		t.Fatalf("go list drivers: %v", err)
	}
	var rs []rule
	for _, path := range strings.Fields(string(out)) {
		rel := strings.TrimPrefix(path, module+"/")
		if matches(path, "drivers/wire/...") {
			rs = append(rs, rule{name: "the storage protocol's wire package imports only hal (+ hal/clock): " + rel,
				from: []string{rel}, only: []string{"drivers/wire/...", "hal", "hal/clock"}})
			continue
		}
		rs = append(rs, rule{name: "a driver imports only hal (+ hal/clock, hal/eventsub) and its wire package: " + rel,
			from: []string{rel}, only: []string{rel + "/...", "drivers/wire", "hal", "hal/clock", "hal/eventsub"}})
	}
	if len(rs) == 0 {
		t.Fatal("no package under drivers/")
	}
	return rs
}

// TestLayering checks every rule against the module's real import graph.
func TestLayering(t *testing.T) {
	t.Parallel()
	for _, r := range append(slices.Clone(rules), driverRules(t)...) {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			g, roots := listDeps(t, r.from)
			for _, v := range r.check(g, roots) {
				t.Error(v)
			}
		})
	}
}

// TestRuleMessages: a broken rule is reported with its name, the
// offending import and the chain that leads to it (on a made-up graph:
// the real one must have no violation).
func TestRuleMessages(t *testing.T) {
	t.Parallel()
	g := graph{
		module + "/persist":         {"fmt", module + "/hal/clock", module + "/persist/inner"},
		module + "/persist/inner":   {module + "/daemon/session"},
		module + "/daemon/session":  {module + "/hal"},
		module + "/hal/clock":       {"time"},
		module + "/hal":             nil,
		module + "/cmd/lockstepctl": {module + "/daemon/control", module + "/hal", "fmt", "github.com/spf13/cobra"},
		module + "/daemon/control":  nil,
		module + "/cmd/lockstepd":   {module + "/internal/version", module + "/internal/relay", "github.com/godbus/dbus/v5"},
		module + "/internal/relay":  {module + "/internal/version"},
		"github.com/spf13/cobra":    {"github.com/spf13/pflag"},
		"github.com/spf13/pflag":    {"fmt"},
	}
	for _, tc := range []struct {
		name  string
		r     rule
		roots []string
		want  []string
	}{
		{
			name:  "denied, through another package",
			r:     rule{name: "no domain", from: []string{"persist/..."}, deny: []string{"daemon/..."}},
			roots: []string{module + "/persist"},
			want: []string{
				`rule "no domain" broken: ` + module + `/persist/inner imports ` + module + `/daemon/session` +
					` (` + module + `/persist -> ` + module + `/persist/inner -> ` + module + `/daemon/session)`,
			},
		},
		{
			name:  "allowed",
			r:     rule{name: "no hal", from: []string{"persist"}, deny: []string{"drivers/..."}},
			roots: []string{module + "/persist"},
		},
		{
			name:  "outside the allowlist",
			r:     rule{name: "ctl links only its API", from: []string{"cmd/lockstepctl"}, only: []string{"hal", "cmd/lockstepctl"}},
			roots: []string{module + "/cmd/lockstepctl"},
			want: []string{
				`rule "ctl links only its API" broken: ` + module + `/cmd/lockstepctl imports ` + module + `/daemon/control` +
					` (` + module + `/cmd/lockstepctl -> ` + module + `/daemon/control), which is not in its allowlist`,
				`rule "ctl links only its API" broken: ` + module + `/cmd/lockstepctl imports github.com/spf13/cobra` +
					` (` + module + `/cmd/lockstepctl -> github.com/spf13/cobra), which is not in its allowlist`,
			},
		},
		{
			name: "third party, allowed with what it imports",
			r: rule{name: "ctl", from: []string{"cmd/lockstepctl"}, only: []string{"hal", "cmd/lockstepctl", "daemon/control"},
				external: []string{"github.com/spf13/..."}},
			roots: []string{module + "/cmd/lockstepctl"},
		},
		{
			name: "denied but excepted",
			r: rule{name: "no harness", from: []string{"cmd/lockstepd"}, deny: []string{"internal/..."},
				except: []string{"internal/version"}},
			roots: []string{module + "/cmd/lockstepd"},
			want: []string{
				`rule "no harness" broken: ` + module + `/cmd/lockstepd imports ` + module + `/internal/relay` +
					` (` + module + `/cmd/lockstepd -> ` + module + `/internal/relay)`,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.r.check(g, tc.roots); !slices.Equal(got, tc.want) {
				t.Errorf("check =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// graph maps each package to its direct imports.
type graph map[string][]string

// listDeps runs `go list -deps` on the patterns: the import graph of
// the packages and of everything they depend on, and the packages the
// patterns name (the roots).
func listDeps(t *testing.T, patterns []string) (graph, []string) {
	t.Helper()
	args := []string{"list", "-deps", "-f", `{{.ImportPath}}{{if .DepOnly}}{{else}} root{{end}}:{{join .Imports " "}}`}
	for _, p := range patterns {
		args = append(args, module+"/"+p)
	}
	cmd := exec.Command("go", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	g := graph{}
	var roots []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		head, imports, _ := strings.Cut(sc.Text(), ":")
		path, root := strings.CutSuffix(head, " root")
		g[path] = strings.Fields(imports)
		if root {
			roots = append(roots, path)
		}
	}
	if len(roots) == 0 {
		t.Fatalf("go %s: no package", strings.Join(args, " "))
	}
	return g, roots
}

// matches reports whether the import path matches a module-relative
// pattern.
func matches(path, pattern string) bool { return matchesFull(path, module+"/"+pattern) }

// matchesFull reports whether the import path matches a full pattern.
func matchesFull(path, pattern string) bool {
	full := strings.TrimSuffix(pattern, "/...")
	if strings.HasSuffix(pattern, "/...") {
		return path == full || strings.HasPrefix(path, full+"/")
	}
	return path == full
}

func matchesAny(path string, patterns []string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return matches(path, p) })
}

// standard reports whether the import path is of the standard library
// (or cgo's C): its first element has no dot, the test cmd/go itself
// makes (a module path outside the standard library starts with a
// domain name).
func standard(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// check walks the graph from the roots (breadth first, so each chain
// reported is a shortest one) and returns one message per package that
// breaks the rule, naming the import that brings it in and the chain
// from a root.
func (r rule) check(g graph, roots []string) []string {
	parent := map[string]string{}
	seen := map[string]bool{}
	queue := slices.Clone(roots)
	for _, root := range roots {
		seen[root] = true
	}
	var out []string
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, imp := range g[p] {
			if seen[imp] {
				continue
			}
			seen[imp] = true
			parent[imp] = p
			inModule := imp == module || strings.HasPrefix(imp, module+"/")
			external := !inModule && !standard(imp)
			switch {
			case matchesAny(imp, r.deny) && !matchesAny(imp, r.except):
				out = append(out, fmt.Sprintf("rule %q broken: %s imports %s (%s)", r.name, p, imp, chain(parent, imp)))
			case r.only != nil && inModule && !matchesAny(imp, r.only),
				r.only != nil && external && !slices.ContainsFunc(r.external, func(e string) bool { return matchesFull(imp, e) }):
				out = append(out, fmt.Sprintf("rule %q broken: %s imports %s (%s), which is not in its allowlist", r.name, p, imp, chain(parent, imp)))
			default:
				queue = append(queue, imp)
			}
		}
	}
	return out
}

// chain is the import chain from a root to p.
func chain(parent map[string]string, p string) string {
	c := []string{p}
	for {
		q, ok := parent[p]
		if !ok {
			break
		}
		c = append(c, q)
		p = q
	}
	slices.Reverse(c)
	return strings.Join(c, " -> ")
}
