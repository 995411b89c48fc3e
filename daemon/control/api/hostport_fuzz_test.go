package api

import (
	"net"
	"strconv"
	"testing"
)

// FuzzCheckHostPort: whatever it accepts is a host and a port that the
// driver can dial as they are, 1 to 65535.
func FuzzCheckHostPort(f *testing.F) {
	for _, s := range []string{"127.0.0.1:1750", "[fd00::1]:1750", "ds8k.example:1", "127.0.0.1:99999", "127.0.0.1:1e9",
		"127.0.0.1:-1", "127.0.0.1:0", ":1", "[::1]", "a:18446744073709551617", "[1.2.3.4]:5", "h:+80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, a string) {
		if CheckHostPort(a) != nil {
			return
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			t.Fatalf("accepted %q: %v", a, err)
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port && port[0] != '0' {
			t.Fatalf("accepted %q with port %q", a, port)
		}
	})
}
