package schedule_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopfaas/shop/internal/schedule"
)

func at(t *testing.T, s string, loc *time.Location) time.Time {
	t.Helper()
	v, err := time.ParseInLocation("2006-01-02 15:04:05", s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// The expressions openfaas/cron-connector accepts (robfig/cron/v3's standard
// parser: five fields, names of months and days, ?, the @ descriptors,
// @every, a CRON_TZ= prefix) are accepted here.
func TestCronConnectorExpressionsAccepted(t *testing.T) {
	for _, spec := range []string{
		"* * * * *", "*/15 * * * *", "0,30 9-17 * * *", "10-50/10 * * * *", "5/15 * * * *",
		"@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually",
		"@every 5m", "@every 1h30m", "@every 90s",
		"0 9 * * MON-FRI", "0 9 * * mon-fri", "0 0 * * SUN,SAT", "0 0 1 JAN,JUL *", "0 0 1 jan-mar *",
		"0 0 ? * *", "0 0 * * 0", "0 0 30 2 *",
		"CRON_TZ=Europe/Paris 0 9 * * MON-FRI", "TZ=UTC @hourly",
	} {
		if _, err := schedule.Parse(spec); err != nil {
			t.Errorf("Parse(%q): %v", spec, err)
		}
	}
}

// What cron-connector refuses is refused here, and an expression robfig/cron
// v3.0.1 would panic on ("CRON_TZ=" without an expression) is refused too.
func TestInvalidExpressionsRefused(t *testing.T) {
	for _, spec := range []string{
		"", "   ", "* * * *", "* * * * * *", "0 0 9 * * MON-FRI", "MON-FRI",
		"60 * * * *", "* 24 * * *", "* * 0 * *", "* * 32 * *", "* * * 13 *", "* * * 0 *",
		"* * * * 7", "* * * * MON-SUN", "*/0 * * * *", "5-1 * * * *", "1-2-3 * * * *", "*/5/2 * * * *",
		"-1 * * * *", "a * * * *", "L * * * *", "0 0 * * MONDAY", "0 0 1 JANUARY *",
		"@reboot", "@HOURLY", "@fortnightly", "@hourly extra", "@every", "@every 5", "@every soon",
		"every minute", "TZ=Nowhere/City * * * * *", "CRON_TZ=UTC", "TZ=Europe/Paris",
	} {
		if _, err := schedule.Parse(spec); err == nil {
			t.Errorf("Parse(%q) accepted", spec)
		}
	}
}

func TestNextRunTimes(t *testing.T) {
	paris, newYork := zone(t, "Europe/Paris"), zone(t, "America/New_York")
	tests := []struct {
		spec string
		from time.Time
		want []string // the next times, in order, formatted in from's location
	}{
		{"*/15 * * * *", at(t, "2026-01-01 10:07:00", time.UTC), []string{"2026-01-01 10:15:00", "2026-01-01 10:30:00", "2026-01-01 10:45:00"}},
		{"* * * * *", at(t, "2026-12-31 23:59:30", time.UTC), []string{"2027-01-01 00:00:00"}},
		{"@hourly", at(t, "2026-01-01 10:07:00", time.UTC), []string{"2026-01-01 11:00:00", "2026-01-01 12:00:00"}},
		{"@daily", at(t, "2026-01-01 10:07:00", time.UTC), []string{"2026-01-02 00:00:00", "2026-01-03 00:00:00"}},
		{"@every 5m", at(t, "2026-01-01 10:00:30", time.UTC), []string{"2026-01-01 10:05:30", "2026-01-01 10:10:30"}},
		// 2026-01-02 is a Friday.
		{"0 9 * * MON-FRI", at(t, "2026-01-02 12:00:00", time.UTC), []string{"2026-01-05 09:00:00", "2026-01-06 09:00:00"}},
		{"0 0 1 JAN,JUL *", at(t, "2026-01-02 00:00:00", time.UTC), []string{"2026-07-01 00:00:00", "2027-01-01 00:00:00"}},
		{"0 0 29 2 *", at(t, "2026-01-01 00:00:00", time.UTC), []string{"2028-02-29 00:00:00"}},
		// Both day fields restricted: either matches (Vixie cron).
		{"0 0 13 * FRI", at(t, "2026-02-01 00:00:00", time.UTC), []string{"2026-02-06 00:00:00", "2026-02-13 00:00:00", "2026-02-20 00:00:00"}},
		// In a time zone: 09:00 Paris time, across the change to summer time
		// on Sunday 2026-03-29 (Friday 27th, then Monday 30th).
		{"0 9 * * MON-FRI", at(t, "2026-03-27 10:00:00", paris), []string{"2026-03-30 09:00:00", "2026-03-31 09:00:00"}},
		// CRON_TZ= in the expression wins over the location of from.
		{"CRON_TZ=America/New_York 0 9 * * *", at(t, "2026-01-05 12:00:00", time.UTC), []string{"2026-01-05 14:00:00", "2026-01-06 14:00:00"}},
		{"0 9 * * *", at(t, "2026-07-01 12:00:00", newYork), []string{"2026-07-02 09:00:00"}},
		{"0 0 30 2 *", at(t, "2026-01-01 00:00:00", time.UTC), []string{"0001-01-01 00:00:00"}}, // never
	}
	for _, tt := range tests {
		t.Run(tt.spec+" from "+tt.from.String(), func(t *testing.T) {
			s, err := schedule.Parse(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			cur := tt.from
			for range tt.want {
				cur = s.Next(cur)
				if !cur.IsZero() {
					cur = cur.In(tt.from.Location())
				}
				got = append(got, cur.Format("2006-01-02 15:04:05"))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	// The absolute instants of the Paris case: 07:00 UTC in summer time.
	s, err := schedule.Parse("0 9 * * MON-FRI")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Next(at(t, "2026-03-27 10:00:00", paris)).UTC(), at(t, "2026-03-30 07:00:00", time.UTC); !got.Equal(want) {
		t.Errorf("Paris 09:00 after the change to summer time = %v UTC, want %v", got, want)
	}
}

func TestStringIsTheTrimmedExpression(t *testing.T) {
	s, err := schedule.Parse("  */5 * * * *  ")
	if err != nil || s.String() != "*/5 * * * *" {
		t.Errorf("String() = %q, %v", s.String(), err)
	}
	var zero schedule.Schedule
	if next := zero.Next(time.Now()); !next.IsZero() {
		t.Errorf("the zero Schedule runs at %v, want never", next)
	}
}

// Parse never panics, whatever the annotation holds, and what it accepts has
// a next time strictly after now or none.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{"* * * * *", "@every 5m", "@hourly", "0 9 * * MON-FRI", "CRON_TZ=UTC", "TZ=", "CRON_TZ=Europe/Paris 0 9 * * *", "1-2/3,4 * ? JAN SUN", "@every -1s"} {
		f.Add(seed)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := schedule.Parse(spec)
		if err != nil {
			return
		}
		if next := s.Next(now); !next.IsZero() && !next.After(now) {
			t.Errorf("Parse(%q).Next(%v) = %v, not after", spec, now, next)
		}
	})
}

func TestFromAnnotations(t *testing.T) {
	tests := []struct {
		name    string
		ann     map[string]string
		ok, err bool
	}{
		{"no annotations", nil, false, false},
		{"schedule only", map[string]string{"schedule": "*/1 * * * *"}, true, false},
		{"descriptor", map[string]string{"schedule": "@every 5m"}, true, false},
		{"cron topic", map[string]string{"schedule": "0 9 * * MON-FRI", "topic": "cron-function"}, true, false},
		{"cron among topics", map[string]string{"schedule": "0 * * * *", "topic": "order.placed.v1, cron-function"}, true, false},
		{"event topics only", map[string]string{"schedule": "0 * * * *", "topic": "order.placed.v1"}, false, false},
		{"topic without schedule", map[string]string{"topic": "cron-function"}, false, false},
		{"bad expression", map[string]string{"schedule": "every minute"}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job, ok, err := schedule.FromAnnotations("fn", tt.ann)
			if ok != tt.ok || (err != nil) != tt.err {
				t.Fatalf("ok %v err %v; want ok %v err %v", ok, err, tt.ok, tt.err)
			}
			if ok && (job.Function != "fn" || job.Schedule.String() != tt.ann["schedule"]) {
				t.Errorf("job %+v", job)
			}
		})
	}
}
