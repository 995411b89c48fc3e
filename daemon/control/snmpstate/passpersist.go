package snmpstate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// ErrProtocol reports input that is not net-snmp's pass_persist protocol;
// Serve stops on it, and snmpd starts the program again at its next
// request.
var ErrProtocol = errors.New("snmpstate: pass_persist protocol")

// maxLine bounds an input line: an OID of 128 arcs of 10 digits and dots
// fits in 1408 bytes; a set's value line may be longer and is skipped.
const maxLine = 64 << 10

// DefaultTTL is how long a snapshot answers before the next request
// reads the daemon again: one read serves a whole walk of a poll, and a
// poll a few seconds later sees fresh values.
const DefaultTTL = 5 * time.Second

// ServeOptions configure Serve.
type ServeOptions struct {
	// Root is lockstepMIB's OID (the enterprise prefix, then 1).
	Root OID
	// Load reads the daemon's documents.
	Load func(ctx context.Context) (Docs, error)
	// TTL is how long a snapshot is reused (0: DefaultTTL).
	TTL time.Duration
	// Now is the clock (the caller's time.Now).
	Now func() time.Time
	// Errors receives one line per failed read of the daemon (nil:
	// discarded); snmpd logs the program's standard error.
	Errors io.Writer
}

// Serve answers snmpd's pass_persist requests from in on out until in
// ends, an empty line, or ctx ends. Each get and getnext is answered from
// a snapshot at most TTL old; while the daemon cannot be read, every
// request is answered NONE (the NMS sees no such instance, not stale
// values). A set is answered not-writable.
func Serve(ctx context.Context, in io.Reader, out io.Writer, opt ServeOptions) error {
	if opt.TTL <= 0 {
		opt.TTL = DefaultTTL
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	w := bufio.NewWriter(out)
	c := cache{opt: opt}
	line := func() (string, error) {
		if !sc.Scan() {
			if err := sc.Err(); err != nil {
				return "", fmt.Errorf("%w: %w", ErrProtocol, err)
			}
			return "", io.EOF
		}
		return strings.TrimRight(sc.Text(), "\r"), nil
	}
	for ctx.Err() == nil {
		cmd, err := line()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		reply, err := answer(ctx, strings.ToLower(strings.TrimSpace(cmd)), line, &c)
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: input ended inside a %q request", ErrProtocol, cmd)
		}
		if err != nil {
			return err
		}
		if reply == "" {
			return nil // the empty line: snmpd asks the program to end
		}
		if _, err := w.WriteString(reply); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// answer handles one request whose first line is cmd, reading its other
// lines with line; "" for the request to end.
func answer(ctx context.Context, cmd string, line func() (string, error), c *cache) (string, error) {
	switch cmd {
	case "":
		return "", nil
	case "ping":
		return "PONG\n", nil
	case "get", "getnext":
		s, err := line()
		if err != nil {
			return "", err
		}
		oid, err := ParseOID(strings.TrimSpace(s))
		if err != nil {
			return "NONE\n", nil // a request snmpd cannot have meant: no such instance
		}
		snap := c.snapshot(ctx)
		if snap == nil {
			return "NONE\n", nil
		}
		var v Var
		var ok bool
		if cmd == "get" {
			v, ok = snap.Get(oid)
		} else {
			v, ok = snap.Next(oid)
		}
		if !ok {
			return "NONE\n", nil
		}
		return v.OID.String() + "\n" + string(v.Type) + "\n" + v.Value + "\n", nil
	case "set":
		for range 2 { // the OID, then "type value"
			if _, err := line(); err != nil {
				return "", err
			}
		}
		return "not-writable\n", nil
	}
	return "", fmt.Errorf("%w: unknown request %q", ErrProtocol, cut(cmd, 40))
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// cache is the snapshot of the last read (nil if it failed) and when it
// was made. A failed read is reused for the TTL too: a walk while the
// daemon is down costs one read, not one per instance.
type cache struct {
	opt  ServeOptions
	snap *Snapshot
	at   time.Time
	read bool
}

func (c *cache) snapshot(ctx context.Context) *Snapshot {
	now := c.opt.Now()
	if c.read && now.Sub(c.at) < c.opt.TTL && !now.Before(c.at) {
		return c.snap
	}
	c.snap, c.at, c.read = nil, now, true
	d, err := c.opt.Load(ctx)
	if err != nil {
		if c.opt.Errors != nil {
			fmt.Fprintf(c.opt.Errors, "lockstepctl snmp pass-persist: cannot read lockstepd: %v\n", err)
		}
		return nil
	}
	c.snap = Build(c.opt.Root, d)
	return c.snap
}
