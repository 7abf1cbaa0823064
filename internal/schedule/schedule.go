// Package schedule is the scheduler's logic without I/O: the 5-field cron
// expressions of the `schedule` annotation (minute hour day-of-month month
// day-of-week, with *, lists, ranges and steps, as in the OpenFaaS
// cron-connector) and which functions of the gateway are scheduled.
package schedule

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Schedule is a parsed cron expression. The zero value matches nothing.
type Schedule struct {
	spec                          string
	minute, hour, dom, month, dow uint64 // bit i set: value i matches
	domAny, dowAny                bool   // the field was "*" (or "*/1")
}

type field struct {
	name     string
	min, max int
}

var fields = [5]field{{"minute", 0, 59}, {"hour", 0, 23}, {"day of month", 1, 31}, {"month", 1, 12}, {"day of week", 0, 7}}

// Parse reads a 5-field cron expression. Each field is "*" or a comma list
// of "N", "A-B", each optionally followed by "/STEP" ("*/15", "1-30/5", and
// "5/10" meaning 5 to the field's maximum). Day of week is 0-7, 0 and 7
// both Sunday. Names (JAN, MON) and the @ shortcuts are not supported. As
// in Vixie cron, when both day of month and day of week are restricted, a
// day matching either matches.
func Parse(spec string) (Schedule, error) {
	parts := strings.Fields(spec)
	if len(parts) != 5 {
		return Schedule{}, fmt.Errorf("schedule %q: want 5 fields (minute hour day-of-month month day-of-week), got %d", spec, len(parts))
	}
	s := Schedule{spec: strings.Join(parts, " ")}
	var sets [5]uint64
	for i, p := range parts {
		set, err := parseField(p, fields[i])
		if err != nil {
			return Schedule{}, fmt.Errorf("schedule %q: %w", spec, err)
		}
		sets[i] = set
	}
	s.minute, s.hour, s.dom, s.month, s.dow = sets[0], sets[1], sets[2], sets[3], sets[4]
	if s.dow&(1<<7) != 0 {
		s.dow |= 1 // 7 is Sunday too
	}
	s.domAny = parts[2] == "*" || parts[2] == "*/1"
	s.dowAny = parts[4] == "*" || parts[4] == "*/1"
	return s, nil
}

func parseField(text string, f field) (uint64, error) {
	var set uint64
	for _, item := range strings.Split(text, ",") {
		rng, stepText, hasStep := strings.Cut(item, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepText)
			if err != nil || n < 1 || n > f.max {
				return 0, fmt.Errorf("%s: bad step %q", f.name, stepText)
			}
			step = n
		}
		lo, hi := f.min, f.max
		switch {
		case rng == "*":
		case strings.Contains(rng, "-"):
			a, b, _ := strings.Cut(rng, "-")
			var err error
			if lo, err = number(a, f); err != nil {
				return 0, err
			}
			if hi, err = number(b, f); err != nil {
				return 0, err
			}
			if lo > hi {
				return 0, fmt.Errorf("%s: range %q runs backwards", f.name, rng)
			}
		default:
			n, err := number(rng, f)
			if err != nil {
				return 0, err
			}
			lo = n
			if !hasStep {
				hi = n
			}
		}
		for v := lo; v <= hi; v += step {
			set |= 1 << v
		}
	}
	return set, nil
}

func number(text string, f field) (int, error) {
	n, err := strconv.Atoi(text)
	if err != nil || n < f.min || n > f.max {
		return 0, fmt.Errorf("%s: %q is not a number from %d to %d", f.name, text, f.min, f.max)
	}
	return n, nil
}

// String is the expression as parsed (fields separated by single spaces).
func (s Schedule) String() string { return s.spec }

// Matches reports whether the minute of t (in t's location) is scheduled.
func (s Schedule) Matches(t time.Time) bool {
	return s.minute&(1<<t.Minute()) != 0 && s.hour&(1<<t.Hour()) != 0 &&
		s.month&(1<<int(t.Month())) != 0 && s.dayMatches(t)
}

func (s Schedule) dayMatches(t time.Time) bool {
	dom := s.dom&(1<<t.Day()) != 0
	dow := s.dow&(1<<int(t.Weekday())) != 0
	if s.domAny || s.dowAny {
		return dom && dow
	}
	return dom || dow
}

// horizon bounds the search of Next: an expression that matches no real date
// (30 February) has no next time.
const horizon = 5 * 366 * 24 * time.Hour

// Next is the first scheduled minute strictly after t (in t's location), or
// the zero time when none comes within five years.
func (s Schedule) Next(t time.Time) time.Time {
	end := t.Add(horizon)
	loc := t.Location()
	t = t.Truncate(time.Minute).Add(time.Minute)
	for t.Before(end) {
		switch {
		case s.month&(1<<int(t.Month())) == 0:
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, loc)
		case !s.dayMatches(t):
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, loc)
		case s.hour&(1<<t.Hour()) == 0:
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour()+1, 0, 0, 0, loc)
		case s.minute&(1<<t.Minute()) == 0:
			t = t.Add(time.Minute)
		default:
			return t
		}
	}
	return time.Time{}
}
