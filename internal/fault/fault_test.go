package fault_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shopfaas/shop/internal/fault"
)

func TestClassificationThroughWrapping(t *testing.T) {
	cause := errors.New("disk on fire")
	conflict := fault.E(fault.Conflict, "out_of_stock", "not enough stock")
	tests := []struct {
		name     string
		err      error
		wantKind fault.Kind
		wantCode fault.Code
	}{
		{"nil", nil, fault.Internal, "internal"},
		{"plain error is internal", cause, fault.Internal, "internal"},
		{"classified", conflict, fault.Conflict, "out_of_stock"},
		{"wrapped once with %w", fmt.Errorf("reserve: %w", conflict), fault.Conflict, "out_of_stock"},
		{"wrapped twice", fmt.Errorf("order: %w", fmt.Errorf("reserve: %w", conflict)), fault.Conflict, "out_of_stock"},
		{"joined", errors.Join(cause, conflict), fault.Conflict, "out_of_stock"},
		{"Wrap keeps kind and code", fault.Wrap(cause, fault.NotFound, "not_found", "no such order"), fault.NotFound, "not_found"},
		{"Internalf", fault.Internalf("query: %w", cause), fault.Internal, "internal"},
		{"empty code falls back", fault.E(fault.Invalid, "", "bad"), fault.Invalid, "internal"},
		{"wrapped %v loses classification", fmt.Errorf("x: %v", conflict), fault.Internal, "internal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := struct {
				Kind fault.Kind
				Code fault.Code
			}{fault.KindOf(tt.err), fault.CodeOf(tt.err)}
			want := struct {
				Kind fault.Kind
				Code fault.Code
			}{tt.wantKind, tt.wantCode}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestIs(t *testing.T) {
	conflict := fmt.Errorf("wrapped: %w", fault.E(fault.Conflict, "out_of_stock", "m"))
	tests := []struct {
		name string
		err  error
		kind fault.Kind
		code fault.Code
		want bool
	}{
		{"kind and code", conflict, fault.Conflict, "out_of_stock", true},
		{"kind only", conflict, fault.Conflict, "", true},
		{"other code", conflict, fault.Conflict, "sku_taken", false},
		{"other kind", conflict, fault.NotFound, "", false},
		{"unclassified is internal", errors.New("boom"), fault.Internal, "", true},
		{"nil is nothing", nil, fault.Internal, "", false},
		{"unclassified is not conflict", errors.New("boom"), fault.Conflict, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fault.Is(tt.err, tt.kind, tt.code); got != tt.want {
				t.Errorf("Is = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCauseKeptForErrorsIs(t *testing.T) {
	cause := errors.New("connection refused")
	err := fmt.Errorf("store: %w", fault.Wrap(cause, fault.Unavailable, "unavailable", "try later"))
	if !errors.Is(err, cause) {
		t.Error("errors.Is does not reach the cause through fault.Error")
	}
	var fe *fault.Error
	if !errors.As(err, &fe) || fe.Message != "try later" {
		t.Errorf("errors.As = %+v", fe)
	}
}

func TestKindString(t *testing.T) {
	got := []string{fault.Internal.String(), fault.NotFound.String(), fault.PreconditionFailed.String(), fault.Kind(99).String()}
	want := []string{"internal", "not_found", "precondition_failed", "kind(99)"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// Retryable is the one rule for "may the same call succeed later": failures
// of the moment and of configuration are, answers about the request or the
// resource are not.
func TestOnlyFailuresOfTheMomentOrOfConfigurationAreRetryable(t *testing.T) {
	retryable := map[fault.Kind]bool{
		fault.Internal: true, fault.Unavailable: true, fault.Timeout: true, fault.RateLimited: true,
		fault.Unauthenticated: true, fault.Forbidden: true,
	}
	for k := fault.Internal; k <= fault.PreconditionRequired; k++ {
		err := fmt.Errorf("call: %w", fault.E(k, "x", "m"))
		if got := fault.Retryable(err); got != retryable[k] {
			t.Errorf("Retryable(%v) = %v, want %v", k, got, retryable[k])
		}
	}
	if !fault.Retryable(errors.New("connection reset")) {
		t.Error("an unclassified error is Internal and must be retryable")
	}
	if fault.Retryable(nil) {
		t.Error("nil is not a failure")
	}
}

// Only a code with the syntax of codes.go is valid: a code read from another
// process's answer may hold anything (dev/contract checks that every code of
// codes.go is valid).
func TestOnlyACodeWithTheShopsSyntaxIsValid(t *testing.T) {
	valid := []fault.Code{fault.CodeInternal, "event_expired", "idempotency_key_reused", "a", "x9", fault.Code(strings.Repeat("a", 64))}
	invalid := []fault.Code{"", "Event_expired", "event-expired", "event expired", "_event", "9lives", "event\nexpired",
		"event_expiré", `event"`, fault.Code(strings.Repeat("a", 65))}
	for _, c := range valid {
		if !c.Valid() {
			t.Errorf("%q is not valid, want valid", c)
		}
	}
	for _, c := range invalid {
		if c.Valid() {
			t.Errorf("%q is valid, want invalid", c)
		}
	}
}
