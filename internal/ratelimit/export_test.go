package ratelimit

import "time"

// SetClock makes l read the time from now (tests).
func SetClock(l *Limiter, now func() time.Time) { l.now = now }
