package paymentsdb

import (
	"context"
	"time"
)

// SetFinishTimeout shortens the bound of s's writes (postgres.Detached's
// timeout, 10 s) to d for the test.
func SetFinishTimeout(s *Store, d time.Duration) {
	s.detach = func(ctx context.Context) (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), d)
	}
}
