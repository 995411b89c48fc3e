package config

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Kinds of problems. A Problem wraps exactly one of them, so callers can
// test with errors.Is(err, config.ErrUnknownKey) on a Problem or on the
// whole Problems list.
var (
	ErrSyntax     = errors.New("config: not valid TOML")
	ErrUnknownKey = errors.New("config: unknown key")
	ErrKeyCase    = errors.New("config: key not in lower case")
	ErrType       = errors.New("config: wrong value type")
	ErrDuration   = errors.New("config: bad duration")
	ErrValue      = errors.New("config: bad value")
	ErrAddress    = errors.New("config: bad address")
	ErrRequired   = errors.New("config: required key missing")
	ErrConflict   = errors.New("config: keys that do not go together")
	ErrDuplicate  = errors.New("config: duplicate")
	ErrTiming     = errors.New("config: unsafe heartbeat timing")
	ErrFile       = errors.New("config: cannot read the file")
)

// A Problem is one thing wrong with a config file (or, in
// Config.Warnings, one thing accepted but worth saying).
type Problem struct {
	File string // set by Load; empty from Parse
	Line int    // 1-based; 0 when the problem has no single line
	Key  string // dotted key, array elements indexed: "snmp.manager[1].user"
	Msg  string // what is wrong, for a human
	Kind error  // one of the Err* sentinels of this package
	// Cause is the underlying error when there is one (a
	// freeze.ErrTiming for heartbeat timings, a strconv error, ...).
	Cause error
}

// Error reads "FILE:LINE: KEY: MSG", or "line LINE: KEY: MSG" without a
// file name; parts that are unknown are left out.
func (p Problem) Error() string {
	var b strings.Builder
	switch {
	case p.File != "" && p.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", p.File, p.Line)
	case p.File != "":
		fmt.Fprintf(&b, "%s: ", p.File)
	case p.Line > 0:
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Unwrap gives the kind and the cause.
func (p Problem) Unwrap() []error {
	errs := []error{p.Kind}
	if p.Cause != nil {
		errs = append(errs, p.Cause)
	}
	return errs
}

// Problems is every problem found in a config file, in file order (those
// without a line last). It is the error Parse and Load return.
type Problems []Problem

// Error gives one problem per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.Is and errors.As look at every problem.
func (ps Problems) Unwrap() []error {
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errs
}

// sortByLine orders problems as the file reads; problems with no line
// go last. The sort is stable so that problems of one line keep the
// order in which they were found.
func (ps Problems) sortByLine() {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		if (a.Line == 0) != (b.Line == 0) {
			if a.Line == 0 {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.Line, b.Line)
	})
}

func (ps Problems) withFile(file string) Problems {
	for i := range ps {
		ps[i].File = file
	}
	return ps
}
