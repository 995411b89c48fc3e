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
// directly or not, on a package deny matches; and, when only is set, on
// any package of this module that only does not match. Patterns are
// module-relative import paths; "x/..." matches x and everything under
// it. Only non-test code counts: `go list -deps` leaves _test.go files
// out, and tests may wire anything.
type rule struct {
	name string   // what the rule says, for the failure message
	from []string // the packages checked (go list patterns)
	deny []string // the packages they must not depend on
	only []string // if set: the only module packages they may depend on
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
}

// TestLayering checks every rule against the module's real import graph.
func TestLayering(t *testing.T) {
	t.Parallel()
	for _, r := range rules {
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
		module + "/cmd/lockstepctl": {module + "/daemon/control", module + "/hal"},
		module + "/daemon/control":  nil,
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
func matches(path, pattern string) bool {
	full := module + "/" + strings.TrimSuffix(pattern, "/...")
	if strings.HasSuffix(pattern, "/...") {
		return path == full || strings.HasPrefix(path, full+"/")
	}
	return path == full
}

func matchesAny(path string, patterns []string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return matches(path, p) })
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
			switch {
			case matchesAny(imp, r.deny):
				out = append(out, fmt.Sprintf("rule %q broken: %s imports %s (%s)", r.name, p, imp, chain(parent, imp)))
			case r.only != nil && inModule && !matchesAny(imp, r.only):
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
