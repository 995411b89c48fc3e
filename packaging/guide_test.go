package main

import (
	"bufio"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/lockstep-io/lockstep/cmd/lockstepctl/cli"
	"github.com/lockstep-io/lockstep/daemon/config"
)

// guidePath is the operations guide whose commands the tests run.
const guidePath = "../docs/operations.md"

// block is a fenced block of the guide: its info string ("sh", "sh demo",
// "toml"), the section it is in, and its text.
type block struct {
	Info    string
	Section string
	Text    string
}

func guideBlocks(t *testing.T) []block {
	t.Helper()
	f, err := os.Open(guidePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []block
	var cur *block
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(l, "## "):
			section = strings.TrimPrefix(l, "## ")
		case cur == nil && strings.HasPrefix(l, "```"):
			cur = &block{Info: strings.TrimPrefix(l, "```"), Section: section}
		case cur != nil && l == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.Text += l + "\n"
		}
	}
	if cur != nil {
		t.Fatalf("%s: a block in %q is not closed", guidePath, cur.Section)
	}
	return blocks
}

// commands are the command lines of a shell block: continuation lines
// joined, heredoc bodies left out.
func commands(text string) []string {
	var out []string
	var cur string
	heredoc := ""
	for _, l := range strings.Split(text, "\n") {
		if heredoc != "" {
			if l == heredoc {
				heredoc = ""
			}
			continue
		}
		if m := regexp.MustCompile(`<<'?(\w+)'?`).FindStringSubmatch(l); m != nil {
			heredoc = m[1]
		}
		if strings.HasSuffix(l, `\`) {
			cur += strings.TrimSuffix(l, `\`)
			continue
		}
		if cur += l; strings.TrimSpace(cur) != "" {
			out = append(out, strings.Join(strings.Fields(cur), " "))
		}
		cur = ""
	}
	return out
}

// The guide's blocks are what its introduction says: "sh" blocks (run by
// the boot test), "sh demo" blocks whose every lockstepctl command the
// daemon demo runs, and "toml" snippets that the configuration accepts.
// Every lockstepctl command parses with lockstepctl's own tree.
func TestOperationsGuide(t *testing.T) {
	t.Parallel()
	blocks := guideBlocks(t)
	var demo []byte
	for _, f := range []string{"daemondemo.go", "hyperswapdemo.go"} {
		b, err := os.ReadFile("../cmd/lockstep-lab/" + f)
		if err != nil {
			t.Fatal(err)
		}
		demo = append(demo, b...)
	}
	sections := map[string]bool{}
	ran := 0
	for _, b := range blocks {
		sections[b.Section] = true
		switch b.Info {
		case "sh", "sh demo":
			for _, c := range commands(b.Text) {
				if !strings.HasPrefix(c, "lockstepctl ") {
					if b.Info == "sh demo" {
						t.Errorf("%s: %q in a demo block: the demo runs only lockstepctl", b.Section, c)
					}
					continue
				}
				args := shellWords(c)[1:]
				if !strings.Contains(c, "$(") {
					checkParses(t, b.Section, args)
				}
				if b.Info == "sh demo" {
					// The demo calls lockstepctl with these words, quoted,
					// in this order: "session", "cmd", "prod", "start-h1-h2".
					var words []string
					for _, a := range args {
						if !regexp.MustCompile(`^[a-z0-9-]+$`).MatchString(a) {
							break
						}
						words = append(words, `"`+a+`"`)
					}
					if !strings.Contains(string(demo), strings.Join(words, ", ")) {
						t.Errorf("%s: the demo does not run %q (no %s in cmd/lockstep-lab/daemondemo.go or hyperswapdemo.go)", b.Section, c, strings.Join(words, ", "))
					}
				}
			}
			if b.Info == "sh" {
				ran++
			}
		case "toml":
			if _, err := config.Parse(b.Text); err != nil {
				t.Errorf("%s: the configuration refuses the snippet:\n%v\n%s", b.Section, err, b.Text)
			}
		default:
			t.Errorf("%s: a block of kind %q: the guide holds sh, sh demo and toml blocks only", b.Section, b.Info)
		}
	}
	for _, s := range []string{"Install", "First configuration", "Adding storage", "A session", "The heartbeat",
		"An HA pair", "Upgrades", "Backups", "Logs, events and traps", "Removing"} {
		if !sections[s] {
			t.Errorf("the guide has no section %q", s)
		}
	}
	if ran < 10 {
		t.Errorf("only %d blocks for the boot test to run", ran)
	}
}

// shellWords splits a command line as sh would for the guide's commands:
// at blanks, except inside double or single quotes, which it removes.
func shellWords(line string) []string {
	var out []string
	var cur strings.Builder
	in, quote := false, rune(0)
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

// checkParses parses a lockstepctl command line as lockstepctl would,
// without running it.
func checkParses(t *testing.T, section string, args []string) {
	t.Helper()
	root := cli.New(nil, nil, nil)
	c, rest, err := root.Find(args)
	if err == nil {
		err = c.ParseFlags(rest)
	}
	if err == nil {
		err = c.ValidateArgs(c.Flags().Args())
	}
	if err == nil {
		err = c.ValidateRequiredFlags()
	}
	if err == nil && c.HasSubCommands() {
		err = errNotALeaf
	}
	if err != nil {
		t.Errorf("%s: lockstepctl %s: %v", section, strings.Join(args, " "), err)
	}
}

var errNotALeaf = errors.New("a verb that needs a sub-verb")
