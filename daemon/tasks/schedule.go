package tasks

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	// The zone database, embedded: a server without tzdata (a minimal
	// image) still reads every task's zone, so both servers of a pair
	// compute the same occurrences. The system's database wins when
	// present.
	_ "time/tzdata"
)

// ErrSyntax: a schedule or a step that does not parse.
var ErrSyntax = errors.New("tasks: syntax")

// Form is the kind of a schedule.
type Form string

const (
	FormAt     Form = "at"     // once, at a wall-clock time
	FormEvery  Form = "every"  // every interval, from the task's anchor
	FormDaily  Form = "daily"  // every day at a wall-clock time
	FormWeekly Form = "weekly" // every week, on a weekday at a wall-clock time
)

// MinEvery is the shortest interval of an every schedule: a task is not a
// heartbeat.
const MinEvery = time.Second

// Wall is a wall-clock time in the task's zone, to the minute.
type Wall struct {
	Year   int        `json:"year,omitempty"`
	Month  time.Month `json:"month,omitempty"`
	Day    int        `json:"day,omitempty"`
	Hour   int        `json:"hour"`
	Minute int        `json:"minute"`
}

// Schedule is a parsed schedule. Its String is the canonical text, which
// is what the journal stores; ParseSchedule(s.String()) == s.
type Schedule struct {
	Form    Form
	At      Wall          // FormAt (date and time), FormDaily, FormWeekly (time)
	Every   time.Duration // FormEvery
	Weekday time.Weekday  // FormWeekly
}

var weekdays = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// ParseSchedule parses one of
//
//	at 2026-12-24T02:00
//	every 6h          (a Go duration, whole seconds, at least 1s)
//	daily 02:00
//	weekly sun 03:30  (sun mon tue wed thu fri sat)
//
// Times are wall-clock times in the task's zone, to the minute.
func ParseSchedule(s string) (Schedule, error) {
	f := strings.Fields(s)
	bad := func(why string) (Schedule, error) {
		return Schedule{}, fmt.Errorf("%w: schedule %q: %s (want \"at 2026-12-24T02:00\", \"every 6h\", \"daily 02:00\" or \"weekly sun 03:30\")", ErrSyntax, s, why)
	}
	if len(f) == 0 {
		return bad("empty")
	}
	switch Form(strings.ToLower(f[0])) {
	case FormAt:
		if len(f) != 2 {
			return bad("at takes one date and time")
		}
		t, err := time.Parse("2006-01-02T15:04", f[1])
		if err != nil {
			return bad("the time is not YYYY-MM-DDTHH:MM")
		}
		return Schedule{Form: FormAt, At: Wall{Year: t.Year(), Month: t.Month(), Day: t.Day(), Hour: t.Hour(), Minute: t.Minute()}}, nil
	case FormEvery:
		if len(f) != 2 {
			return bad("every takes one interval")
		}
		d, err := time.ParseDuration(f[1])
		if err != nil {
			return bad("the interval is not a duration such as 30s, 15m or 6h")
		}
		if d < MinEvery || d%time.Second != 0 {
			return bad("the interval must be whole seconds, at least " + MinEvery.String())
		}
		return Schedule{Form: FormEvery, Every: d}, nil
	case FormDaily:
		if len(f) != 2 {
			return bad("daily takes one time")
		}
		w, ok := parseHM(f[1])
		if !ok {
			return bad("the time is not HH:MM")
		}
		return Schedule{Form: FormDaily, At: w}, nil
	case FormWeekly:
		if len(f) != 3 {
			return bad("weekly takes a weekday and a time")
		}
		wd := -1
		for i, n := range weekdays {
			if strings.EqualFold(f[1], n) {
				wd = i
			}
		}
		if wd < 0 {
			return bad("the weekday is not one of sun mon tue wed thu fri sat")
		}
		w, ok := parseHM(f[2])
		if !ok {
			return bad("the time is not HH:MM")
		}
		return Schedule{Form: FormWeekly, Weekday: time.Weekday(wd), At: w}, nil
	}
	return bad("unknown form " + strconv.Quote(f[0]))
}

func parseHM(s string) (Wall, bool) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return Wall{}, false
	}
	return Wall{Hour: t.Hour(), Minute: t.Minute()}, true
}

func (s Schedule) String() string {
	switch s.Form {
	case FormAt:
		return fmt.Sprintf("at %04d-%02d-%02dT%02d:%02d", s.At.Year, int(s.At.Month), s.At.Day, s.At.Hour, s.At.Minute)
	case FormEvery:
		return "every " + s.Every.String()
	case FormDaily:
		return fmt.Sprintf("daily %02d:%02d", s.At.Hour, s.At.Minute)
	case FormWeekly:
		return fmt.Sprintf("weekly %s %02d:%02d", weekdays[s.Weekday], s.At.Hour, s.At.Minute)
	}
	return "invalid"
}

// LoadZone loads an IANA time zone by name ("" is refused: a task always
// names its zone, so that both servers of a pair agree whatever their
// own).
func LoadZone(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return nil, fmt.Errorf("%w: time zone %q: name an IANA zone such as Europe/Berlin or UTC", ErrSyntax, name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("%w: time zone %q: %w", ErrSyntax, name, err)
	}
	return loc, nil
}

// Next is the schedule's first occurrence strictly after after, and false
// when there is none (an at schedule whose time has passed). anchor is
// where an every schedule counts from (the task's creation or its last
// enabling); loc is the task's zone.
//
// A wall-clock time the zone skips (a DST spring-forward gap) occurs at
// the next valid wall-clock minute of that day (02:30 in a gap from 02:00
// to 03:00 occurs at 03:00); one it repeats (fall back) occurs once, at
// its first instant. Each day's occurrence is therefore exactly one
// instant, which is what lets the journal name an occurrence by it.
func (s Schedule) Next(loc *time.Location, anchor, after time.Time) (time.Time, bool) {
	switch s.Form {
	case FormAt:
		t := resolve(loc, s.At.Year, s.At.Month, s.At.Day, s.At.Hour, s.At.Minute)
		return t, t.After(after)
	case FormEvery:
		if after.Before(anchor) {
			return anchor.Add(s.Every), true
		}
		k := after.Sub(anchor)/s.Every + 1
		return anchor.Add(k * s.Every), true
	case FormDaily, FormWeekly:
		// From the day before after's day in the zone (a skipped time
		// late on a day resolves into the next one) to a week after.
		d := after.In(loc)
		y, m, day := d.Date()
		for i := -1; i <= 8; i++ {
			dd := time.Date(y, m, day+i, 12, 0, 0, 0, time.UTC) // date arithmetic only
			if s.Form == FormWeekly && dd.Weekday() != s.Weekday {
				continue
			}
			t := resolve(loc, dd.Year(), dd.Month(), dd.Day(), s.At.Hour, s.At.Minute)
			if t.After(after) {
				return t, true
			}
		}
	}
	return time.Time{}, false
}

// resolve is the instant of a wall-clock time in loc: its first instant
// if the zone repeats it, the next valid wall-clock minute of that day if
// the zone skips it (past midnight, the first instant of the next
// minute that exists). time.Date leaves both cases unspecified, so the
// candidates are computed here from the offsets around the time.
func resolve(loc *time.Location, y int, mo time.Month, d, h, mi int) time.Time {
	naive := time.Date(y, mo, d, h, mi, 0, 0, time.UTC)
	// A zone skips at most a few hours; a day of minutes bounds the walk.
	for step := range 24 * 60 {
		w := naive.Add(time.Duration(step) * time.Minute)
		if t, ok := instant(loc, w); ok {
			return t
		}
	}
	return time.Date(y, mo, d, h, mi, 0, 0, loc) // unreachable for real zones
}

// instant is the first instant whose wall clock in loc reads w (given
// as a UTC time), false if the zone skips w.
func instant(loc *time.Location, w time.Time) (time.Time, bool) {
	var best time.Time
	found := false
	for _, probe := range []time.Duration{-48 * time.Hour, -12 * time.Hour, 0, 12 * time.Hour, 48 * time.Hour} {
		_, off := w.Add(probe).In(loc).Zone()
		t := w.Add(-time.Duration(off) * time.Second)
		if sameWall(t.In(loc), w) && (!found || t.Before(best)) {
			best, found = t, true
		}
	}
	return best, found
}

func sameWall(a, w time.Time) bool {
	ay, am, ad := a.Date()
	wy, wm, wd := w.Date()
	return ay == wy && am == wm && ad == wd && a.Hour() == w.Hour() && a.Minute() == w.Minute() && a.Second() == 0
}
