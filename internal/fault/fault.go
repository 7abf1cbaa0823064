// Package fault is the project's error vocabulary: every error that can reach a
// client carries a Kind (how the caller should react), a stable machine Code and
// a Message that is safe to show. The cause stays wrapped for logs only.
//
// Domain packages return *Error values; the HTTP adapter in fnhttp is the single
// place where a Kind becomes a status code.
package fault

import (
	"errors"
	"fmt"
)

// Kind classifies an error by what the caller can do about it. The zero value is
// Internal, so an unclassified error is never mistaken for a client mistake.
type Kind int

// The kinds. Their HTTP mapping lives in fnhttp.
const (
	Internal             Kind = iota // a defect or an unexpected dependency failure
	Malformed                        // the request could not be parsed (bad JSON, wrong types, unknown fields)
	Invalid                          // the request parsed but a value is out of range or missing
	Unauthenticated                  // no valid credentials
	Forbidden                        // authenticated, but not allowed
	NotFound                         // no such resource, or not visible to this caller
	Conflict                         // the state of the resource forbids the request
	PaymentRequired                  // the payment was declined
	TooLarge                         // the request body exceeds the limit
	RateLimited                      // too many requests
	Unavailable                      // a dependency is down; retrying later may succeed
	Timeout                          // a dependency did not answer in time
	PreconditionFailed               // a conditional request's precondition did not hold
	MethodNotAllowed                 // the route exists but not for this method
	PreconditionRequired             // the request must be conditional (If-Match) and is not
)

var kindNames = [...]string{"internal", "malformed", "invalid", "unauthenticated", "forbidden",
	"not_found", "conflict", "payment_required", "too_large", "rate_limited", "unavailable", "timeout",
	"precondition_failed", "method_not_allowed", "precondition_required"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is a classified error. Code is stable (one of the constants in
// codes.go); Message is safe to return to a client; Err is the cause and is
// never shown.
type Error struct {
	Kind    Kind
	Code    Code
	Message string
	Err     error
	// Members are extension members of the problem the error is answered
	// with (RFC 9457 section 3.2): data a client acts on, safe to show like
	// Message and declared for Code in api/openapi.yaml. Nil for most errors.
	Members map[string]any
}

// E builds a classified error without a cause.
func E(kind Kind, code Code, message string) *Error {
	return &Error{Kind: kind, Code: code, Message: message}
}

// Wrap classifies cause. The cause is kept for logs and errors.Is/As.
func Wrap(cause error, kind Kind, code Code, message string) *Error {
	return &Error{Kind: kind, Code: code, Message: message, Err: cause}
}

// Internalf wraps an unexpected failure; clients see only a generic message.
func Internalf(format string, args ...any) *Error {
	return &Error{Kind: Internal, Code: CodeInternal, Message: "internal error", Err: fmt.Errorf(format, args...)}
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Classified reports whether err holds an *Error: a fault its code decided
// (a precondition, a refusal), to answer as it is, where anything else from a
// store (a failed BEGIN or COMMIT, a database that cannot be reached) is
// turned into a 503.
func Classified(err error) bool {
	var fe *Error
	return errors.As(err, &fe)
}

// KindOf reports the Kind of err, Internal when err is not classified.
func KindOf(err error) Kind {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Kind
	}
	return Internal
}

// CodeOf reports the machine code of err, CodeInternal when it is not classified.
func CodeOf(err error) Code {
	var fe *Error
	if errors.As(err, &fe) && fe.Code != "" {
		return fe.Code
	}
	return CodeInternal
}

// Is reports whether err is classified with kind and, when code is not empty, code.
func Is(err error, kind Kind, code Code) bool {
	var fe *Error
	if !errors.As(err, &fe) {
		return kind == Internal && err != nil
	}
	return fe.Kind == kind && (code == "" || fe.Code == code)
}

// Retryable reports whether the call that failed with err may succeed if it
// is made again unchanged, later: this is THE rule every caller of another
// service follows (the saga's steps, the catalog client, the RabbitMQ
// connector). It holds for failures of the moment — Internal (unexplained,
// so possibly transient), Unavailable, Timeout, RateLimited — and for
// Unauthenticated and Forbidden, because between services a credential is
// configuration an operator fixes without the caller changing anything. It
// does not hold for the answers that judge the request or decide on the
// resource (Malformed, Invalid, TooLarge, NotFound, Conflict,
// PaymentRequired, PreconditionFailed, MethodNotAllowed,
// PreconditionRequired): the same call gets the same answer. A nil err is not
// retryable.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	switch KindOf(err) {
	case Internal, Unavailable, Timeout, RateLimited, Unauthenticated, Forbidden:
		return true
	}
	return false
}

// maxCodeLen bounds a code read from another process's answer; the longest
// code of codes.go is a third of it.
const maxCodeLen = 64

// Valid reports whether c has the syntax of the shop's codes (codes.go):
// 1 to 64 bytes of lower-case ASCII letters, digits and '_', starting with a
// letter. A code taken from another process's answer, which the shop does not
// control, is repeated where an operator reads it (a dead letter's
// shop-last-error header) only when it is valid, so that answer cannot put
// arbitrary bytes, control characters or a long text there.
func (c Code) Valid() bool {
	if len(c) == 0 || len(c) > maxCodeLen || c[0] < 'a' || c[0] > 'z' {
		return false
	}
	for i := 1; i < len(c); i++ {
		if b := c[i]; (b < 'a' || b > 'z') && (b < '0' || b > '9') && b != '_' {
			return false
		}
	}
	return true
}
