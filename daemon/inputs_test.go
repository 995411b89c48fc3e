package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lockstep-io/lockstep/daemon/control"
)

// TestRefusedStorageAddChangesNothing: issue 12 §3. A storage system
// added with an address that cannot be dialled, or with credentials the
// daemon cannot use, is refused with a clear error before anything is
// journaled: the journal's last index does not move.
func TestRefusedStorageAddChangesNothing(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	dir := t.TempDir()
	pw := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("pw-Zq81x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, open := pw("good.pw", 0o600), pw("open.pw", 0o644)
	conn := func(addrs []string, user, file string) control.StorageSpec {
		return control.StorageSpec{Serial: "LAB.2107-75P0001", Connections: []control.ConnectionSpec{
			{Name: "direct", Kind: control.Direct, Addresses: addrs, User: user, PasswordFile: file}}}
	}
	last := func() uint64 {
		t.Helper()
		doc, err := c.HAStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return doc.LastIndex
	}
	tests := []struct {
		name string
		spec control.StorageSpec
		kind error
		msg  string
	}{
		{"user without password file", conn([]string{"127.0.0.1:1750"}, "admin", ""), control.ErrInvalid, "needs --password-file"},
		{"relative password file", conn([]string{"127.0.0.1:1750"}, "admin", "good.pw"), control.ErrInvalid, "absolute path"},
		{"missing password file", conn([]string{"127.0.0.1:1750"}, "admin", filepath.Join(dir, "none.pw")), control.ErrRefused, "no such file"},
		{"password file readable by others", conn([]string{"127.0.0.1:1750"}, "admin", open), control.ErrRefused, "mode 0644"},
		{"password file is a directory", conn([]string{"127.0.0.1:1750"}, "admin", dir), control.ErrRefused, "directory"},
	}
	for _, port := range []string{"99999", "65536", "-1", "0", "1e9", "18446744073709551617"} {
		tests = append(tests, struct {
			name string
			spec control.StorageSpec
			kind error
			msg  string
		}{"port " + port, conn([]string{"127.0.0.1:1751", "127.0.0.1:" + port}, "", ""), control.ErrInvalid, "port"})
	}
	before := last()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.StorageAdd(ctx, tc.spec)
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("storage add: %v, want %v saying %q", err, tc.kind, tc.msg)
			}
			if strings.Contains(err.Error(), "Zq81x") {
				t.Fatalf("the error shows the password: %v", err)
			}
			if got := last(); got != before {
				t.Fatalf("the journal moved from %d to %d on a refused storage add", before, got)
			}
			if list, err := c.StorageList(ctx); err != nil || len(list) != 0 {
				t.Fatalf("storage list after a refusal: %v, %v", list, err)
			}
		})
	}
	if _, err := c.StorageAdd(ctx, conn([]string{"127.0.0.1:1751", "127.0.0.1:65535"}, "admin", good)); err != nil {
		t.Fatalf("a good storage add: %v", err)
	}
	if got := last(); got != before+1 {
		t.Fatalf("a good storage add moved the journal from %d to %d, want one record", before, got)
	}
}
