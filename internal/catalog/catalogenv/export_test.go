package catalogenv

import "time"

// SetClock makes d's throttled cache logs read the time from now (tests).
func SetClock(d *Deps, now func() time.Time) { d.now = now }
