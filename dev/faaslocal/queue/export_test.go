package queue

import "time"

// SetSyncDir replaces the directory sync of Journal.Put until the returned
// function restores it.
func SetSyncDir(f func(dir string) error) (restore func()) {
	was := syncDir
	syncDir = f
	return func() { syncDir = was }
}

// SetClock replaces the clock of new entries' sequences until the returned
// function restores it.
func SetClock(f func() time.Time) (restore func()) {
	was := now
	now = f
	return func() { now = was }
}

// Waiting is how many calls wait for a turn.
func (w *Worker) Waiting() int { return w.turns.waiters() }

// Stopping is closed once Stop has begun.
func (w *Worker) Stopping() <-chan struct{} { return w.stopped }
