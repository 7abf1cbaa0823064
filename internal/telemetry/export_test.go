package telemetry

import "time"

// SetClock makes f read the time from now (tests): a test steps it over
// ExportFailureLogEvery instead of waiting a minute.
func SetClock(f *ExportFailures, now func() time.Time) { f.now = now }
