package connector

import (
	"testing"
	"time"
)

// Every retry delay is positive and within MaxRetryDelay, also when
// RetryDelay doubled MaxAttempts-2 times passes the largest Duration (about
// 292 years: a RetryDelay of 10 h and MAX_ATTEMPTS=20). Until 2026-12-07 the
// doubling went on past the cap and overflowed to a negative delay, whose
// retry queue (x-message-ttl below 0) the broker refused to declare: every
// refresh failed and no function was consumed.
func TestRetryDelaysStayWithinTheCap(t *testing.T) {
	for _, cfg := range []Config{
		{RetryDelay: 10 * time.Hour, MaxRetryDelay: 24 * time.Hour, MaxAttempts: 20},
		{RetryDelay: 10 * time.Hour, MaxAttempts: 20},
		{RetryDelay: time.Second, MaxRetryDelay: time.Hour, MaxAttempts: 20},
	} {
		delays := cfg.Delays()
		if len(delays) != cfg.MaxAttempts-1 {
			t.Errorf("RetryDelay %s: %d delays, want %d", cfg.RetryDelay, len(delays), cfg.MaxAttempts-1)
		}
		cfg.setDefaults()
		for i, d := range delays {
			if d <= 0 || d > cfg.MaxRetryDelay {
				t.Errorf("RetryDelay %s, MaxRetryDelay %s: delay %d is %s", cfg.RetryDelay, cfg.MaxRetryDelay, i, d)
			}
		}
	}
}
