package schedule_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopfaas/shop/internal/schedule"
)

func at(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestNext(t *testing.T) {
	tests := []struct {
		spec, from string
		want       []string // the next times, in order
	}{
		{"*/1 * * * *", "2026-01-01 10:00", []string{"2026-01-01 10:01", "2026-01-01 10:02"}},
		{"* * * * *", "2026-12-31 23:59", []string{"2027-01-01 00:00"}},
		{"*/15 * * * *", "2026-01-01 10:07", []string{"2026-01-01 10:15", "2026-01-01 10:30", "2026-01-01 10:45", "2026-01-01 11:00"}},
		{"5 4 * * *", "2026-01-01 04:05", []string{"2026-01-02 04:05"}},
		{"0,30 9-10 * * *", "2026-01-01 08:00", []string{"2026-01-01 09:00", "2026-01-01 09:30", "2026-01-01 10:00", "2026-01-01 10:30", "2026-01-02 09:00"}},
		{"10-20/5 * * * *", "2026-01-01 00:00", []string{"2026-01-01 00:10", "2026-01-01 00:15", "2026-01-01 00:20", "2026-01-01 01:10"}},
		{"50/5 * * * *", "2026-01-01 00:00", []string{"2026-01-01 00:50", "2026-01-01 00:55", "2026-01-01 01:50"}},
		{"0 0 29 2 *", "2026-01-01 00:00", []string{"2028-02-29 00:00"}},
		{"0 0 * * 0", "2026-01-01 00:00", []string{"2026-01-04 00:00"}}, // 2026-01-01 is a Thursday
		{"0 0 * * 7", "2026-01-01 00:00", []string{"2026-01-04 00:00"}},
		{"0 0 * * 1-5", "2026-01-02 12:00", []string{"2026-01-05 00:00", "2026-01-06 00:00"}},
		// Both day fields restricted: either matches (Vixie cron).
		{"0 0 13 * 5", "2026-02-01 00:00", []string{"2026-02-06 00:00", "2026-02-13 00:00", "2026-02-20 00:00"}},
		{"0 12 1 */3 *", "2026-02-15 00:00", []string{"2026-04-01 12:00", "2026-07-01 12:00"}},
		{"0 0 30 2 *", "2026-01-01 00:00", []string{"0001-01-01 00:00"}}, // never
	}
	for _, tt := range tests {
		t.Run(tt.spec+" from "+tt.from, func(t *testing.T) {
			s, err := schedule.Parse(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			cur := at(tt.from)
			for range tt.want {
				cur = s.Next(cur)
				got = append(got, cur.Format("2006-01-02 15:04"))
				if !cur.IsZero() && !s.Matches(cur) {
					t.Errorf("Next returned %v, which does not match", cur)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, spec := range []string{"", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * 32 * *",
		"* * * 13 *", "* * * * 8", "*/0 * * * *", "5-1 * * * *", "a * * * *", "* * * JAN *", "1,,2 * * * *", "-1 * * * *", "@hourly"} {
		if _, err := schedule.Parse(spec); err == nil {
			t.Errorf("Parse(%q) accepted", spec)
		}
	}
	s, err := schedule.Parse("  */5   *  * * *")
	if err != nil || s.String() != "*/5 * * * *" {
		t.Errorf("whitespace: %q %v", s.String(), err)
	}
}

func TestFromAnnotations(t *testing.T) {
	tests := []struct {
		name    string
		ann     map[string]string
		ok, err bool
	}{
		{"no annotations", nil, false, false},
		{"schedule only", map[string]string{"schedule": "*/1 * * * *"}, true, false},
		{"cron topic", map[string]string{"schedule": "*/1 * * * *", "topic": "cron-function"}, true, false},
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
