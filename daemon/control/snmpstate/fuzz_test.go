package snmpstate

import (
	"context"
	"strings"
	"testing"
	"time"
)

// FuzzServe: any input ends Serve (no hang, no panic), every reply is
// one of the protocol's forms, and an OID in a reply is one of the
// snapshot's.
func FuzzServe(f *testing.F) {
	for _, s := range []string{"PING\n", "get\n.1.3.6.1.4.1.61942.1.3.1.1.0\n", "getnext\n.1\n", "set\n.1\nstring x\n",
		"getnext\n.1.3.6.1.4.1.61942.1.3.2.1.2.2.115.50\n", "get\n\n", "\n", "GET\n.01\n", "getnext\n.4294967296\n"} {
		f.Add(s)
	}
	snap := Build(root, sampleDocs())
	f.Fuzz(func(t *testing.T, in string) {
		var out strings.Builder
		_ = Serve(context.Background(), strings.NewReader(in), &out, ServeOptions{Root: root,
			Load: func(context.Context) (Docs, error) { return sampleDocs(), nil }, Now: func() time.Time { return t0 }})
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		for i := 0; i < len(lines) && out.Len() > 0; i++ {
			switch l := lines[i]; l {
			case "PONG", "NONE", "not-writable":
			default:
				oid, err := ParseOID(l)
				if err != nil {
					t.Fatalf("reply line %q is no OID: %v", l, err)
				}
				if _, ok := snap.Get(oid); !ok || i+2 >= len(lines) {
					t.Fatalf("reply %q is not an instance with a type and value", l)
				}
				i += 2
			}
		}
	})
}

func FuzzParseOID(f *testing.F) {
	for _, s := range []string{".1.3.6", "1", "", ".", "1..2", "01", "4294967295", "4294967296", "-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		oid, err := ParseOID(s)
		if err != nil {
			return
		}
		again, err := ParseOID(oid.String())
		if err != nil || compare(oid, again) != 0 {
			t.Fatalf("%q -> %s does not read back: %v", s, oid, err)
		}
	})
}
