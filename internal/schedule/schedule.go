// Package schedule is the scheduler's logic without I/O: the cron expressions
// of the `schedule` annotation, parsed exactly as openfaas/cron-connector
// parses them (robfig/cron/v3's standard parser), and which functions of the
// gateway are scheduled.
package schedule

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule is a parsed cron expression. The zero value never runs.
type Schedule struct {
	spec string
	cron cron.Schedule
}

// Parse reads a cron expression the way cron-connector does, with
// cron.ParseStandard (the options Minute | Hour | Dom | Month | Dow |
// Descriptor that cron-connector passes to cron.NewParser):
//   - five fields, minute hour day-of-month month day-of-week, each "*", "?"
//     (day fields), a value, a range "A-B", a step "*/N", "A-B/N" or "A/N"
//     (A to the field's maximum), or a comma list of those;
//   - month names JAN-DEC and day names SUN-SAT, in any case; day of week
//     0-6 (7 is refused, as there);
//   - when both day fields are restricted, a day matching either matches;
//   - the descriptors @yearly (@annually), @monthly, @weekly, @daily
//     (@midnight), @hourly, and "@every <duration>" (time.ParseDuration;
//     robfig/cron runs anything under a second, zero or negative included,
//     every second);
//   - an optional "CRON_TZ=<zone> " or "TZ=<zone> " prefix: the expression's
//     own time zone, which wins over the location Next is given.
//
// Leading and trailing space is ignored. robfig/cron v3.0.1 panics on a
// zone prefix with no expression after it ("CRON_TZ=UTC"); Parse refuses it.
func Parse(spec string) (Schedule, error) {
	spec = strings.TrimSpace(spec)
	if (strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=")) && !strings.Contains(spec, " ") {
		return Schedule{}, fmt.Errorf("schedule %q: a time zone prefix needs an expression after it", spec)
	}
	c, err := cron.ParseStandard(spec)
	if err != nil {
		return Schedule{}, fmt.Errorf("schedule %q: %w", spec, err)
	}
	return Schedule{spec: spec, cron: c}, nil
}

// String is the expression as parsed, without surrounding space.
func (s Schedule) String() string { return s.spec }

// Next is the first scheduled time strictly after t, in t's location unless
// the expression names its own zone, or the zero time when none comes within
// five years (30 February) or s is the zero Schedule. Expressions run on
// whole minutes; "@every D" runs D after t, on a whole second.
func (s Schedule) Next(t time.Time) time.Time {
	if s.cron == nil {
		return time.Time{}
	}
	return s.cron.Next(t)
}
