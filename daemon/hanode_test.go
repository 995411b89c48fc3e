package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lockstep-io/lockstep/ha"
)

func TestRelationshipFile(t *testing.T) {
	dir := t.TempDir()
	r, err := loadRelationship(dir)
	if err != nil || r.Role != ha.Standalone || !r.Peer.IsZero() {
		t.Fatalf("no file: %+v, %v; want standalone", r, err)
	}
	for _, want := range []ha.Relationship{
		{Role: ha.Active, Peer: ha.Peer{Addr: "tcp://b:9730", Name: "b"}},
		{Role: ha.Active, Peer: ha.Peer{Addr: "tcp://b:9730", Name: "b"}, Conn: ha.DisconnectedConsistent},
		{Role: ha.Standby, Peer: ha.Peer{Addr: "tcp://a:9730", Name: "a"}, Conn: ha.Disconnected},
		{Role: ha.DisconnectedStandby, Peer: ha.Peer{Addr: "vsock://2:9730"}, Conn: ha.Disconnected},
		{Role: ha.DisconnectedStandby, Peer: ha.Peer{Addr: "tcp://b:9730", Name: "b"}, Conn: ha.Disconnected, Seen: 102},
		{Role: ha.Standalone},
	} {
		if err := saveRelationship(dir, want); err != nil {
			t.Fatal(err)
		}
		got, err := loadRelationship(dir)
		if err != nil || got != want {
			t.Fatalf("round trip: %+v, %v; want %+v", got, err, want)
		}
	}
	// A file of an earlier version, without the HA state: Unknown.
	os.WriteFile(filepath.Join(dir, relationshipFile), []byte(`{"role":"active","peer_addr":"tcp://b:1","peer_name":"b"}`), 0o644)
	if r, err := loadRelationship(dir); err != nil || r.Conn != ha.Unknown || r.Peer.Name != "b" {
		t.Fatalf("an earlier file: %+v, %v", r, err)
	}
	for _, bad := range []string{"{", `{"role":"boss"}`, "", `{"role":"active","ha_state":"Happy"}`} {
		os.WriteFile(filepath.Join(dir, relationshipFile), []byte(bad), 0o644)
		if _, err := loadRelationship(dir); err == nil || !strings.Contains(err.Error(), relationshipFile) {
			t.Fatalf("%q: %v, want an error naming the file", bad, err)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*tmp*")); len(m) != 0 {
		t.Fatalf("temp files left: %v", m)
	}
}

// FuzzRelationshipFile: any bytes in the file give a relationship or a
// clear error, never a panic; what loads saves and loads back the same.
func FuzzRelationshipFile(f *testing.F) {
	f.Add([]byte(`{"role":"active","peer_addr":"tcp://b:9730","peer_name":"b"}`))
	f.Add([]byte(`{"role":"standby"}`))
	f.Add([]byte(`{"role":"standby","peer_name":"a","ha_state":"Disconnected Consistent"}`))
	f.Add([]byte(`{"role":"standby","seen_epoch":18446744073709551615}`))
	f.Add([]byte(`{"role":"disconnected-standby","peer_addr":"vsock://2:1"}`))
	f.Add([]byte("\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, relationshipFile), b, 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := loadRelationship(dir)
		if err != nil {
			if !strings.Contains(err.Error(), relationshipFile) {
				t.Fatalf("error without the file's name: %v", err)
			}
			return
		}
		if err := saveRelationship(dir, r); err != nil {
			t.Fatal(err)
		}
		again, err := loadRelationship(dir)
		if err != nil || again != r {
			t.Fatalf("reload: %+v, %v; want %+v", again, err, r)
		}
	})
}
