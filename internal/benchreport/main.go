package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// Errors of the report.
var (
	ErrNoMarkers = errors.New("benchreport: the document has no bench:begin/bench:end markers")
	ErrNoResults = errors.New("benchreport: no benchmark results in the input")
)

const (
	beginMarker = "<!-- bench:begin -->"
	endMarker   = "<!-- bench:end -->"
)

// Result is one benchmark line: its name (without the -N CPU suffix) and
// its metrics by unit.
type Result struct {
	Pkg     string
	Name    string
	Metrics map[string]float64
}

// Run is what one bench.out holds.
type Run struct {
	CPU     string
	Results []Result
}

// Parse reads `go test -bench` output. Lines that are not results are
// skipped; a result line whose metrics do not parse is an error.
func Parse(r io.Reader) (Run, error) {
	var run Run
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "pkg: "):
			pkg = strings.TrimPrefix(line, "pkg: ")
		case strings.HasPrefix(line, "cpu: "):
			run.CPU = strings.TrimPrefix(line, "cpu: ")
		case strings.HasPrefix(line, "Benchmark"):
			f := strings.Fields(line)
			if len(f) < 2 {
				continue // a sub-benchmark's name alone, under -v
			}
			if _, err := strconv.Atoi(f[1]); err != nil {
				continue // not a result line
			}
			if (len(f)-2)%2 != 0 {
				return Run{}, fmt.Errorf("benchreport: %q: metrics do not come in value-unit pairs", line)
			}
			res := Result{Pkg: pkg, Name: trimProcs(f[0]), Metrics: map[string]float64{}}
			for i := 2; i < len(f); i += 2 {
				v, err := strconv.ParseFloat(f[i], 64)
				if err != nil {
					return Run{}, fmt.Errorf("benchreport: %q: metric %q: %w", line, f[i+1], err)
				}
				res.Metrics[f[i+1]] = v
			}
			run.Results = append(run.Results, res)
		}
	}
	if err := sc.Err(); err != nil {
		return Run{}, fmt.Errorf("benchreport: reading: %w", err)
	}
	return run, nil
}

// trimProcs drops the -GOMAXPROCS suffix go test adds to a name.
func trimProcs(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return name
	}
	if _, err := strconv.Atoi(name[i+1:]); err != nil {
		return name
	}
	return name[:i]
}

// Table renders the results as Markdown: latency metrics (units ending
// in -µs) grouped by prefix as p50 / p99 / max in milliseconds, the rest
// (ratios, counts, rates) as they are.
func Table(run Run, machine string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s.\n\n", machine)
	b.WriteString("| benchmark | figure | p50 | p99 | max | samples |\n|---|---|---|---|---|---|\n")
	var other []string
	for _, r := range run.Results {
		name := strings.TrimPrefix(r.Name, "Benchmark")
		prefixes := map[string]bool{}
		for unit := range r.Metrics {
			if p, stat := split(unit); stat == "p99-µs" {
				prefixes[p] = true
			}
		}
		for _, p := range slices.Sorted(func(yield func(string) bool) {
			for p := range prefixes {
				if !yield(p) {
					return
				}
			}
		}) {
			key := func(stat string) string {
				if p == "" {
					return stat
				}
				return p + "-" + stat
			}
			ms := func(stat string) string {
				v, ok := r.Metrics[key(stat)]
				if !ok {
					return "—"
				}
				return strconv.FormatFloat(v/1000, 'f', 2, 64) + " ms"
			}
			samples := "—"
			if v, ok := r.Metrics[key("samples")]; ok {
				samples = strconv.FormatFloat(v, 'f', 0, 64)
			}
			figure := p
			if figure == "" {
				figure = "latency"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", name, figure, ms("p50-µs"), ms("p99-µs"), ms("max-µs"), samples)
		}
		var units []string
		for unit := range r.Metrics {
			p, stat := split(unit)
			if !strings.HasSuffix(unit, "-µs") && !(stat == "samples" && prefixes[p]) && unit != "ns/op" {
				units = append(units, unit)
			}
		}
		slices.Sort(units)
		for _, unit := range units {
			other = append(other, fmt.Sprintf("| %s | %s | %s |", name, unit, strconv.FormatFloat(r.Metrics[unit], 'g', 4, 64)))
		}
	}
	if len(other) > 0 {
		b.WriteString("\n| benchmark | metric | value |\n|---|---|---|\n")
		for _, l := range other {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// split cuts a unit into the prefix of a latency report and its
// statistic (p50-µs, p99-µs, max-µs or samples; "" and "" for others).
// internal/latency names them prefix-stat, or stat alone for no prefix.
func split(unit string) (prefix, stat string) {
	for _, st := range []string{"p50-µs", "p99-µs", "max-µs", "samples"} {
		if unit == st {
			return "", st
		}
		if p, ok := strings.CutSuffix(unit, "-"+st); ok {
			return p, st
		}
	}
	return "", ""
}

// Splice replaces what lies between the markers of doc with table.
func Splice(doc []byte, table string) ([]byte, error) {
	i := bytes.Index(doc, []byte(beginMarker))
	j := bytes.Index(doc, []byte(endMarker))
	if i < 0 || j < i {
		return nil, ErrNoMarkers
	}
	var out bytes.Buffer
	out.Write(doc[:i+len(beginMarker)])
	out.WriteString("\n" + table)
	out.Write(doc[j:])
	return out.Bytes(), nil
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func main() {
	docPath := flag.String("doc", "docs/performance.md", "document whose bench section is rewritten")
	flag.Parse()
	if err := run(os.Stdin, *docPath); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(in io.Reader, docPath string) error {
	r, err := Parse(in)
	if err != nil {
		return err
	}
	if len(r.Results) == 0 {
		return ErrNoResults
	}
	doc, err := os.ReadFile(docPath)
	if err != nil {
		return fmt.Errorf("benchreport: %w", err)
	}
	machine := fmt.Sprintf("%s, %d cores, load average %s (1, 5, 15 min) when the report was made",
		r.CPU, runtime.NumCPU(), loadAverage())
	out, err := Splice(doc, Table(r, machine))
	if err != nil {
		return fmt.Errorf("%w: %s", err, docPath)
	}
	return os.WriteFile(docPath, out, 0o644)
}
