package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/lockstep-io/lockstep/cmd/lockstepctl/cli"
)

// page is one generated manual page, not yet compressed.
type page struct {
	Name    string // lockstepctl-session-cmd
	Section string // "8"
	Roff    []byte
}

func (p page) file() string { return p.Name + "." + p.Section }

// manual is the header every page shares: its date is the commit's, so
// that a rebuild of the same commit gives the same bytes.
type manual struct {
	Version string
	Date    time.Time
}

const manualName = "lockstep Manual"

// lockstepctlPages are lockstepctl(8) and one page per verb and sub-verb
// (lockstepctl-session-cmd(8), ...), from the same command tree as
// lockstepctl's --help (package cli).
func lockstepctlPages(m manual) ([]page, error) {
	root := cli.New(nil, nil, nil)
	var pages []page
	var walk func(c *cobra.Command) error
	walk = func(c *cobra.Command) error {
		for _, sub := range c.Commands() {
			if !sub.IsAvailableCommand() || sub.IsAdditionalHelpTopicCommand() {
				continue
			}
			if err := walk(sub); err != nil {
				return err
			}
		}
		c.DisableAutoGenTag = true
		date := m.Date
		var b bytes.Buffer
		if err := doc.GenMan(c, &doc.GenManHeader{Section: "8", Date: &date, Source: "lockstep " + m.Version, Manual: manualName}, &b); err != nil {
			return fmt.Errorf("packaging: man page of %s: %w", c.CommandPath(), err)
		}
		pages = append(pages, page{Name: strings.ReplaceAll(c.CommandPath(), " ", "-"), Section: "8", Roff: b.Bytes()})
		return nil
	}
	if err := walk(root); err != nil {
		return nil, err
	}
	return pages, nil
}

// roff writes man(7) source.
type roff struct{ bytes.Buffer }

// text escapes s for roff: backslashes, dashes (so that options copy
// and paste as ASCII), and a leading '.' or '\” that would be read as a
// request.
func esc(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	s = strings.NewReplacer("×", `\(mu`, "—", `\(em`, "–", `\(en`, "→", `\(->`).Replace(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

func (r *roff) th(title, section string, m manual) {
	fmt.Fprintf(r, ".TH %q %q %q %q %q\n", title, section, m.Date.Format("Jan 2006"), "lockstep "+m.Version, manualName)
	r.WriteString(".nh\n.ad l\n") // no hyphenation, ragged right: names and paths stay whole
}

func (r *roff) sh(name string) { fmt.Fprintf(r, ".SH %s\n", name) }
func (r *roff) ss(name string) { fmt.Fprintf(r, ".SS %s\n", esc(name)) }
func (r *roff) pp()            { r.WriteString(".PP\n") }
func (r *roff) line(s string)  { r.WriteString(esc(s) + "\n") }
func (r *roff) bold(s string)  { r.WriteString(`\fB` + esc(s) + `\fR` + "\n") }
func (r *roff) tp(tag string)  { r.WriteString(".TP\n" + tag + "\n") }
func (r *roff) para(lines ...string) {
	r.pp()
	for _, l := range lines {
		r.line(l)
	}
}

// raw writes roff as it is.
func (r *roff) raw(s string) { r.WriteString(s + "\n") }

// pre writes lines as they are (no filling), indented, without the
// indentation they share.
func (r *roff) pre(lines []string) {
	common := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		if n := len(l) - len(strings.TrimLeft(l, " ")); common < 0 || n < common {
			common = n
		}
	}
	r.WriteString(".RS\n.nf\n")
	for _, l := range lines {
		if len(l) >= common && common > 0 {
			l = l[common:]
		}
		r.WriteString(esc(l) + "\n")
	}
	r.WriteString(".fi\n.RE\n")
}

// helpOf runs a freshly built binary with args and returns its standard
// output: what the user sees for --help is what the manual says.
func helpOf(bin string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("packaging: %s %s: %w", bin, strings.Join(args, " "), err)
	}
	return string(out), nil
}

// flagHelp is a Go flag set's --help: synopsis lines, then the options
// as flag.PrintDefaults writes them.
type flagHelp struct {
	Synopsis []string
	Options  []option
}

type option struct {
	Name string // config
	Arg  string // FILE, or empty for a switch
	Text string
}

var (
	optionRe   = regexp.MustCompile(`^  -([a-z][a-z0-9-]*)(?: ([A-Za-z][A-Za-z0-9_-]*))?$`)
	synopsisRe = regexp.MustCompile(`^(?:usage: |       )(\S.*)$`)
)

func parseFlagHelp(text string) (flagHelp, error) {
	var h flagHelp
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case len(h.Options) == 0 && synopsisRe.MatchString(line):
			h.Synopsis = append(h.Synopsis, synopsisRe.FindStringSubmatch(line)[1])
		case optionRe.MatchString(line):
			m := optionRe.FindStringSubmatch(line)
			h.Options = append(h.Options, option{Name: m[1], Arg: m[2]})
		case strings.HasPrefix(line, "    \t") && len(h.Options) > 0:
			o := &h.Options[len(h.Options)-1]
			o.Text = strings.TrimSpace(o.Text + " " + strings.TrimSpace(line))
		}
	}
	if len(h.Synopsis) == 0 || len(h.Options) == 0 {
		return h, fmt.Errorf("packaging: --help has no usage line or no options:\n%s", text)
	}
	return h, nil
}

// lockstepdPage is lockstepd(8): the synopsis and options from
// lockstepd --help, around the text of lockstepd.8.in.
func lockstepdPage(m manual, bin, template string) (page, error) {
	text, err := helpOf(bin, "--help")
	if err != nil {
		return page{}, err
	}
	h, err := parseFlagHelp(text)
	if err != nil {
		return page{}, err
	}
	var syn, opts roff
	for n, s := range h.Synopsis {
		if n > 0 {
			syn.WriteString(".br\n")
		}
		for i, w := range strings.Fields(s) {
			switch {
			case i == 0:
				syn.bold(w)
			default:
				syn.line(w)
			}
		}
	}
	for _, o := range h.Options {
		tag := `\fB\-\-` + esc(o.Name) + `\fR`
		if o.Arg != "" {
			tag += ` \fI` + esc(o.Arg) + `\fR`
		}
		opts.tp(tag)
		opts.line(o.Text)
	}
	var r roff
	r.th("LOCKSTEPD", "8", m)
	body := strings.NewReplacer("@SYNOPSIS@\n", syn.String(), "@OPTIONS@\n", opts.String(), "@VERSION@", m.Version).Replace(template)
	r.WriteString(body)
	return page{Name: "lockstepd", Section: "8", Roff: r.Bytes()}, nil
}

// labPage is lockstep-lab(1): its --help as the synopsis.
func labPage(m manual, bin string) (page, error) {
	text, err := helpOf(bin, "help")
	if err != nil {
		return page{}, err
	}
	var r roff
	r.th("LOCKSTEP\\-LAB", "1", m)
	r.sh("NAME")
	r.line("lockstep-lab - emulated storage systems, scenarios and the consistency oracle of lockstep")
	r.sh("SYNOPSIS")
	r.pre(strings.Split(strings.TrimRight(text, "\n"), "\n"))
	r.sh("DESCRIPTION")
	r.para("lockstep-lab emulates the storage systems lockstepd manages (Metro Mirror pairs, paths,",
		"consistency groups, the freeze and the heartbeat timers), serves them over the storage control",
		"protocol for lockstepd to connect to, injects faults, runs a dependent-write workload, and checks",
		"with an oracle that the secondary image is consistent. It is a laboratory and test tool: no",
		"real storage system is involved.")
	r.sh("EXIT STATUS")
	r.para("0: done, or the secondary image is consistent; 1: failed, or inconsistent; 2: usage.")
	r.sh("SEE ALSO")
	r.raw(`\fBlockstepd\fR(8), \fBlockstepctl\fR(8)`)
	return page{Name: "lockstep-lab", Section: "1", Roff: r.Bytes()}, nil
}

// The reference configuration, read as the manual of its format: blocks
// of comments and keys separated by blank lines, in sections.
var (
	keyRe     = regexp.MustCompile(`^(# )?([a-z_]+) = (.+)$`)
	tableRe   = regexp.MustCompile(`^(# )?\[\[?([a-z.]+)\]\]?$`)
	sectionRe = regexp.MustCompile(`^\[([a-z]+)\]$`)
)

// configPage is lockstep.toml(5), generated from the reference file that
// the package installs as /etc/lockstep/lockstep.toml: its comments are
// the manual, each key with the comment above it.
func configPage(m manual, reference []byte, path string) (page, []string, error) {
	var r roff
	r.th("LOCKSTEP.TOML", "5", m)
	r.sh("NAME")
	r.line("lockstep.toml - configuration of lockstepd")
	r.sh("SYNOPSIS")
	r.bold(path)
	r.sh("DESCRIPTION")
	var keys []string
	section := ""
	blocks := splitBlocks(string(reference))
	for i, b := range blocks {
		if sectionRe.MatchString(b[0]) {
			section = sectionRe.FindStringSubmatch(b[0])[1]
			r.sh(`\fB[` + esc(section) + `]\fR`)
			if b = b[1:]; len(b) == 0 {
				continue
			}
		}
		if i == 0 {
			// The file's head: its first line names the file; the rest
			// is the rules of the format.
			b = b[1:]
		}
		if isExample(b) {
			// An example: its first comment lines say what it is, the
			// rest is TOML to uncomment.
			j := 0
			for j < len(b) && !keyRe.MatchString(b[j]) && !tableRe.MatchString(b[j]) {
				j++
			}
			writeProse(&r, comments(b[:j]), true)
			r.pre(comments(b[j:]))
			table := section
			for _, l := range b[j:] {
				if tm := tableRe.FindStringSubmatch(l); tm != nil {
					table = tm[2] // [[snmp.manager]], [[storage.pin]]
				}
				if km := keyRe.FindStringSubmatch(l); km != nil {
					keys = append(keys, table+"."+km[2])
				}
			}
			continue
		}
		// Keys: the run of key lines that ends the block, described by
		// the comment above them.
		j := len(b)
		for j > 0 && keyRe.MatchString(b[j-1]) {
			j--
		}
		if j == len(b) {
			writeProse(&r, comments(b), true)
			continue
		}
		for n, l := range b[j:] {
			km := keyRe.FindStringSubmatch(l)
			keys = append(keys, section+"."+km[2])
			// A long value (a fingerprint) may break after a colon: \: is
			// roff's break point that prints nothing.
			tag := `\fB` + esc(km[2]) + `\fR = ` + strings.ReplaceAll(esc(km[3]), ":", `:\:`)
			if km[1] != "" {
				tag += ` (commented out)`
			}
			if n == 0 {
				r.tp(tag)
			} else {
				r.WriteString(".TQ\n" + tag + "\n")
			}
		}
		writeProse(&r, comments(b[:j]), false)
	}
	r.sh("FILES")
	r.tp(`\fB` + esc(path) + `\fR`)
	r.line("The configuration, installed with every key at its default. A package upgrade keeps your changes.")
	r.sh("SEE ALSO")
	r.raw(`\fBlockstepd\fR(8), \fBlockstepctl\fR(8), \fBsystemctl\fR(1)`)
	return page{Name: "lockstep.toml", Section: "5", Roff: r.Bytes()}, keys, nil
}

// isExample: lines that end in TOML (keys or tables), at least one of
// them a table header: an example to uncomment.
func isExample(b []string) bool {
	for _, l := range b {
		if m := tableRe.FindStringSubmatch(l); m != nil && strings.HasPrefix(l, "# [[") {
			return true
		}
	}
	return false
}

func splitBlocks(text string) [][]string {
	var blocks [][]string
	var cur []string
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimRight(l, " ")
		if l == "" || l == "#" && len(cur) == 0 {
			if len(cur) > 0 {
				blocks = append(blocks, cur)
				cur = nil
			}
			continue
		}
		cur = append(cur, l)
	}
	if len(cur) > 0 {
		blocks = append(blocks, cur)
	}
	return blocks
}

// comments strips "# " (or "#") from comment lines.
func comments(b []string) []string {
	var out []string
	for _, l := range b {
		l = strings.TrimPrefix(l, "#")
		l = strings.TrimPrefix(l, " ")
		out = append(out, l)
	}
	return out
}

// codeRe is `a command` in a comment: bold in the manual.
var codeRe = regexp.MustCompile("`([^`]+)`")

// laidOut is a line whose spaces matter: indented (a list, a table of
// keys) or aligned in columns inside.
func laidOut(l string) bool {
	return strings.HasPrefix(l, " ") || strings.Contains(strings.TrimSpace(l), "   ")
}

// writeProse writes comment text: runs of plain lines become filled
// paragraphs; laid-out lines (lists, tables of keys, commands) stay as
// written. An empty comment line ("#") separates paragraphs.
func writeProse(r *roff, lines []string, newPara bool) {
	first := true
	for i := 0; i < len(lines); {
		switch {
		case lines[i] == "":
			i++
			first = false
		case laidOut(lines[i]):
			j := i
			for j < len(lines) && laidOut(lines[j]) {
				j++
			}
			r.pre(lines[i:j])
			i = j
			first = false
		default:
			if !first || newPara {
				r.pp()
			}
			for ; i < len(lines) && lines[i] != "" && !laidOut(lines[i]); i++ {
				r.raw(codeRe.ReplaceAllString(esc(lines[i]), `\fB$1\fR`))
			}
			first = false
		}
	}
}

// readFile reads a file of the source tree.
func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("packaging: %w", err)
	}
	return b, nil
}
