package tasks

import (
	"errors"
	"testing"
	"time"
)

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := LoadZone(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestNext: every form, and both DST transitions of two zones whose rules
// differ (Europe/Berlin switches at 01:00 UTC, America/New_York at 02:00
// local).
func TestNext(t *testing.T) {
	t.Parallel()
	anchor := utc("2026-01-01T00:00:00Z")
	tests := []struct {
		name, zone, sched, after, want string // want "" : none
	}{
		{"at", "Europe/Berlin", "at 2026-12-24T02:00", "2026-12-01T00:00:00Z", "2026-12-24T01:00:00Z"},
		{"at passed", "Europe/Berlin", "at 2026-12-24T02:00", "2026-12-24T01:00:00Z", ""},
		{"at in a spring gap", "Europe/Berlin", "at 2026-03-29T02:15", "2026-03-01T00:00:00Z", "2026-03-29T01:00:00Z"},
		{"at repeated in the fall", "Europe/Berlin", "at 2026-10-25T02:30", "2026-10-01T00:00:00Z", "2026-10-25T00:30:00Z"},
		{"every from the anchor", "UTC", "every 6h", "2026-01-01T05:59:59Z", "2026-01-01T06:00:00Z"},
		{"every at an occurrence", "UTC", "every 6h", "2026-01-01T06:00:00Z", "2026-01-01T12:00:00Z"},
		{"every before the anchor", "UTC", "every 6h", "2025-12-31T00:00:00Z", "2026-01-01T06:00:00Z"},
		{"every seconds", "UTC", "every 5s", "2026-01-01T00:00:07Z", "2026-01-01T00:00:10Z"},
		{"every is absolute across a DST change", "Europe/Berlin", "every 1h", "2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z"},
		{"daily", "UTC", "daily 02:00", "2026-05-05T02:00:00Z", "2026-05-06T02:00:00Z"},
		{"daily later today", "UTC", "daily 23:59", "2026-05-05T02:00:00Z", "2026-05-05T23:59:00Z"},
		{"daily midnight", "Asia/Tokyo", "daily 00:00", "2026-05-05T15:00:00Z", "2026-05-06T15:00:00Z"},
		{"daily Berlin skipped runs at the next valid minute", "Europe/Berlin", "daily 02:30", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
		{"daily Berlin the day after the gap", "Europe/Berlin", "daily 02:30", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"},
		{"daily Berlin repeated runs at the first", "Europe/Berlin", "daily 02:30", "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z"},
		{"daily Berlin repeated runs once", "Europe/Berlin", "daily 02:30", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"},
		{"daily New York skipped", "America/New_York", "daily 02:30", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z"},
		{"daily New York repeated first", "America/New_York", "daily 01:30", "2026-10-31T12:00:00Z", "2026-11-01T05:30:00Z"},
		{"daily New York repeated once", "America/New_York", "daily 01:30", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"},
		{"weekly", "UTC", "weekly sun 03:30", "2026-12-02T00:00:00Z", "2026-12-06T03:30:00Z"},
		{"weekly same day later", "UTC", "weekly wed 03:30", "2026-12-02T00:00:00Z", "2026-12-02T03:30:00Z"},
		{"weekly same day passed", "UTC", "weekly wed 03:30", "2026-12-02T03:30:00Z", "2026-12-09T03:30:00Z"},
		{"weekly Berlin skipped", "Europe/Berlin", "weekly sun 02:30", "2026-03-25T00:00:00Z", "2026-03-29T01:00:00Z"},
		{"weekly Berlin after the gap", "Europe/Berlin", "weekly sun 02:30", "2026-03-29T01:00:00Z", "2026-04-05T00:30:00Z"},
		{"weekly New York repeated once", "America/New_York", "weekly sun 01:30", "2026-11-01T05:30:00Z", "2026-11-08T06:30:00Z"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := ParseSchedule(tc.sched)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := s.Next(mustZone(t, tc.zone), anchor, utc(tc.after))
			switch {
			case tc.want == "" && ok:
				t.Fatalf("Next = %s, want none", got.UTC())
			case tc.want != "" && (!ok || !got.Equal(utc(tc.want))):
				t.Fatalf("Next = %s %v, want %s", got.UTC(), ok, tc.want)
			}
		})
	}
}

// TestDailyOncePerDay: over a whole year of both zones, a daily task
// occurs exactly once a day, whatever its time: the skipped and the
// repeated hours included.
func TestDailyOncePerDay(t *testing.T) {
	t.Parallel()
	for _, zone := range []string{"Europe/Berlin", "America/New_York"} {
		for _, hm := range []string{"00:00", "01:30", "02:00", "02:30", "02:59", "03:00", "23:59"} {
			t.Run(zone+" "+hm, func(t *testing.T) {
				t.Parallel()
				loc := mustZone(t, zone)
				s, err := ParseSchedule("daily " + hm)
				if err != nil {
					t.Fatal(err)
				}
				at := time.Date(2026, 1, 1, 0, 0, 0, 0, loc).Add(-time.Nanosecond)
				days := map[string]int{}
				for {
					n, ok := s.Next(loc, at, at)
					if !ok || !n.After(at) {
						t.Fatalf("Next(%s) = %s %v", at, n, ok)
					}
					if n.In(loc).Year() > 2026 {
						break
					}
					days[n.In(loc).Format("2006-01-02")]++
					at = n
				}
				if len(days) != 365 {
					t.Fatalf("%d days with an occurrence, want 365", len(days))
				}
				for d, c := range days {
					if c != 1 {
						t.Errorf("%s: %d occurrences", d, c)
					}
				}
			})
		}
	}
}

func TestParseSchedule(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string // want "": refused
	}{
		{"at", "at 2026-12-24T02:00", "at 2026-12-24T02:00"},
		{"every", "every 6h", "every 6h0m0s"},
		{"every seconds", "every 90s", "every 1m30s"},
		{"daily", "daily 2:05", "daily 02:05"},
		{"weekly", "WEEKLY Sun 03:30", "weekly sun 03:30"},
		{"empty", "", ""},
		{"unknown form", "hourly", ""},
		{"at without time", "at 2026-12-24", ""},
		{"at bad date", "at 2026-02-30T02:00", ""},
		{"every too short", "every 500ms", ""},
		{"every fraction", "every 1500ms", ""},
		{"every negative", "every -1h", ""},
		{"daily 24:00", "daily 24:00", ""},
		{"weekly bad day", "weekly sunday 03:30", ""},
		{"trailing", "daily 02:00 extra", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := ParseSchedule(tc.in)
			if tc.want == "" {
				if !errors.Is(err, ErrSyntax) {
					t.Fatalf("ParseSchedule(%q) = %v, %v; want ErrSyntax", tc.in, s, err)
				}
				return
			}
			if err != nil || s.String() != tc.want {
				t.Fatalf("ParseSchedule(%q) = %q, %v; want %q", tc.in, s, err, tc.want)
			}
		})
	}
}

func TestParseStep(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string // want "": refused
	}{
		{"command", "suspend prod", "suspend prod"},
		{"start", "START-H1-H2 prod", "start-h1-h2 prod"},
		{"wait default timeout", "wait prod prepared", "wait prod prepared timeout 10m0s"},
		{"wait label", "wait prod Target Available timeout 30s", "wait prod target-available timeout 30s"},
		{"wait partial", "wait prod suspended (partial)", "wait prod suspended-partial timeout 10m0s"},
		{"unknown command", "explode prod", ""},
		{"no session", "suspend", ""},
		{"bad session", "suspend -prod", ""},
		{"two sessions", "suspend a b", ""},
		{"wait no state", "wait prod", ""},
		{"wait only timeout", "wait prod timeout 5s", ""},
		{"wait unknown state", "wait prod sleeping", ""},
		{"wait bad timeout", "wait prod prepared timeout 0s", ""},
		{"wait huge timeout", "wait prod prepared timeout 48h", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := ParseStep(tc.in)
			if tc.want == "" {
				if !errors.Is(err, ErrSyntax) {
					t.Fatalf("ParseStep(%q) = %v, %v; want ErrSyntax", tc.in, s, err)
				}
				return
			}
			if err != nil || s.String() != tc.want {
				t.Fatalf("ParseStep(%q) = %q, %v; want %q", tc.in, s, err, tc.want)
			}
		})
	}
}

func TestLoadZoneRefusesUnknown(t *testing.T) {
	t.Parallel()
	for _, z := range []string{"", "Local", "Mars/Olympus", "../etc/passwd"} {
		if _, err := LoadZone(z); !errors.Is(err, ErrSyntax) {
			t.Errorf("LoadZone(%q) = %v, want ErrSyntax", z, err)
		}
	}
}

// FuzzParse: the schedule and step parsers never panic, and what they
// accept prints to a canonical text that parses to the same thing.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"at 2026-12-24T02:00", "every 6h", "daily 02:00", "weekly sun 03:30",
		"suspend prod", "wait prod target available timeout 5m", "every 1s", "weekly xyz 99:99"} {
		f.Add(s)
	}
	loc := time.UTC
	f.Fuzz(func(t *testing.T, s string) {
		if sc, err := ParseSchedule(s); err == nil {
			again, err := ParseSchedule(sc.String())
			if err != nil || again != sc {
				t.Fatalf("schedule %q: canonical %q reparses to %v, %v", s, sc, again, err)
			}
			at := utc("2026-06-01T00:00:00Z")
			if n, ok := sc.Next(loc, at, at); ok && !n.After(at) {
				t.Fatalf("schedule %q: Next %s not after %s", s, n, at)
			}
		}
		if st, err := ParseStep(s); err == nil {
			again, err := ParseStep(st.String())
			if err != nil || again != st {
				t.Fatalf("step %q: canonical %q reparses to %v, %v", s, st, again, err)
			}
		}
	})
}
