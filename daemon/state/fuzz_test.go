package state

import (
	"bytes"
	"testing"
)

// FuzzLoad: Load (a snapshot, a backup's state, the active's state on a
// standby: hostile until checked) never panics, and a state it accepts
// encodes to bytes that load to the same encoding.
func FuzzLoad(f *testing.F) {
	for _, name := range []string{"snapshots", "journal-only"} {
		f.Add([]byte(readFixture(f, name, "want-state.json")))
	}
	f.Add([]byte(`{"v":1,"session":{"v":1,"sessions":[]}}`))
	f.Add([]byte(readFixture(f, "../hmc-legacy/want-state.json")))
	f.Add([]byte(readFixture(f, "../zos-legacy/want-state.json")))
	f.Add([]byte(`{"v":1,"session":{"v":1,"sessions":[]},"registry":{"version":1,"storage":{},"zoss":{"SYSA":{"name":"SYSA",` +
		`"addresses":["z:5858"],"sysplex":"PLEX1","systems":["A","B"]}},"heartbeat":true,"epoch":2}}`))
	f.Add([]byte(`{"v":1,"session":{"v":1,"sessions":[]},"registry":{"version":1,"storage":{},"hmcs":{"H":{"name":"H",` +
		`"addresses":["h1:1751","h2:1751"],"attached":["A","B"]}},"heartbeat":true,"epoch":2}}`))
	f.Add([]byte(`{"v":1,"session":{"v":1,"sessions":[]},"registry":{}}`))
	f.Add([]byte(`{"v":1,"session":{"v":1,"sessions":[null]}}`))
	f.Add([]byte(readTaskFixture(f, "want-state.json")))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := Load(data)
		if err != nil {
			return
		}
		b, err := st.Snapshot()
		if err != nil {
			t.Fatalf("a loaded state does not encode: %v", err)
		}
		again, err := Load(b)
		if err != nil {
			t.Fatalf("the encoding of a loaded state does not load: %v", err)
		}
		if b2, _ := again.Snapshot(); !bytes.Equal(b, b2) {
			t.Fatalf("encoding not stable:\n%s\n%s", b, b2)
		}
	})
}

// FuzzDecodeRecord: decodeRecord (every journal payload at replay and
// every record from the active) never panics, and a record it accepts
// is of one family and encodes to a payload that decodes to the same
// encoding.
func FuzzDecodeRecord(f *testing.F) {
	for _, p := range replicaBase(f) {
		f.Add(p)
	}
	for _, tc := range replicaRegressions {
		f.Add(tc.payload)
	}
	for _, r := range taskFixtureRecords() {
		if b, err := encodeRecord(r); err == nil && r.Task != nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		r, err := decodeRecord(payload)
		if err != nil {
			return
		}
		if r.family() == "" {
			t.Fatalf("a record of %v families", r)
		}
		b, err := encodeRecord(r)
		if err != nil {
			t.Fatalf("a decoded record does not encode: %v", err)
		}
		again, err := decodeRecord(b)
		if err != nil {
			t.Fatalf("the encoding of a decoded record does not decode: %v", err)
		}
		if b2, _ := encodeRecord(again); !bytes.Equal(b, b2) {
			t.Fatalf("encoding not stable:\n%s\n%s", b, b2)
		}
	})
}
