package connector

import (
	"net/http"
	"testing"
)

// Only an answer that retrying cannot change dead-letters a message at once;
// the statuses of outages, credentials and redeploys are retried.
func TestOnlyAnswersRetryingCannotChangeAreDeadLetteredAtOnce(t *testing.T) {
	deadLettered := []int{
		// The event is bad.
		http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity,
		// The function decided on it.
		http.StatusConflict, http.StatusPaymentRequired, http.StatusPreconditionFailed,
	}
	retried := []int{
		// No answer at all; outages and load.
		0, http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout,
		// A credential to fix.
		http.StatusUnauthorized, http.StatusForbidden,
		// The gateway's 404: a function being redeployed.
		http.StatusNotFound,
	}
	for _, status := range deadLettered {
		if !permanent(status) {
			t.Errorf("%d is retried, want it dead-lettered at once", status)
		}
	}
	for _, status := range retried {
		if permanent(status) {
			t.Errorf("%d is dead-lettered at once, want it retried", status)
		}
	}
}
