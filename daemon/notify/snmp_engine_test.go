package notify

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/lockstep-io/lockstep/daemon/config"
)

func TestEngineIDCreatedOnceAndBootsCount(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "snmp-engine-id")
	prefix, _ := config.ParseOID(config.DefaultEnterpriseOID)
	first, err := loadEngine(path, prefix, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// 0x80 | PEN 61942 (0xf1f6), format 5, 8 random octets.
	if len(first.id) != 13 || !bytes.Equal(first.id[:5], []byte{0x80, 0x00, 0xf1, 0xf6, 0x05}) || first.boots != 1 {
		t.Fatalf("engine id %x, boots %d", first.id, first.boots)
	}
	onDisk, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(onDisk, first.id) {
		t.Fatalf("file holds %x (%v), want the raw id %x", onDisk, err, first.id)
	}
	for _, p := range []string{path, path + ".boots"} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v", p, err, fi.Mode())
		}
	}
	second, err := loadEngine(path, prefix, iotest.ErrReader(errors.New("no randomness needed")))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(second.id, first.id) || second.boots != 2 {
		t.Fatalf("second start: id %x boots %d, want the same id and boots 2", second.id, second.boots)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestEngineIDUsesTheSitesEnterprise(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		prefix string
		pen    []byte
	}{
		{"1.3.6.1.4.1.8072.9", []byte{0x80, 0x00, 0x1f, 0x88}},
		{"1.3.6.1.3.5", []byte{0x80, 0x00, 0xf1, 0xf6}}, // not under enterprises: the default
	} {
		prefix, _ := config.ParseOID(tc.prefix)
		id := newEngineID(penOf(prefix), rand.Reader)
		if !bytes.Equal(id[:4], tc.pen) {
			t.Errorf("%s: engine id %x, want it to start with %x", tc.prefix, id, tc.pen)
		}
	}
}

func TestBadEngineIDFilesRefused(t *testing.T) {
	t.Parallel()
	prefix, _ := config.ParseOID(config.DefaultEnterpriseOID)
	for _, tc := range []struct {
		name, id, boots, want string
	}{
		{"too short", "abcd", "", "holds 4 bytes"},
		{"too long", strings.Repeat("x", 33), "", "holds 33 bytes"},
		{"bad boots", "0123456789", "many\n", "not a boot counter"},
		{"boots overflow", "0123456789", "2147483648\n", "not a boot counter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "id")
			if err := os.WriteFile(path, []byte(tc.id), 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.boots != "" {
				if err := os.WriteFile(path+".boots", []byte(tc.boots), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := loadEngine(path, prefix, rand.Reader)
			if !errors.Is(err, ErrEngineID) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrEngineID with %q", err, tc.want)
			}
			if got, _ := os.ReadFile(path); string(got) != tc.id {
				t.Fatal("a bad engine id file was overwritten")
			}
		})
	}
	if _, err := loadEngine(filepath.Join(t.TempDir(), "no", "such", "dir", "id"), prefix, rand.Reader); !errors.Is(err, ErrEngineID) {
		t.Fatalf("unwritable path: %v", err)
	}
}

func TestBootsStopAtTheMaximum(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "boots")
	if err := os.WriteFile(path, []byte("2147483647\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := nextBoots(path); err != nil || b != maxEngineBoots {
		t.Fatalf("boots %d, %v", b, err)
	}
}
