package fault

// Code is the stable machine code of an error: the "code" member of every
// problem answer, which clients branch on. The constants below are every code
// the shop answers; a new code is added here, with when it is answered, before
// it is used.
type Code string

// Codes of every service, answered with the status of their kind.
const (
	// CodeInternal: a defect or an unexpected failure; the cause is only logged (500).
	CodeInternal Code = "internal"
	// CodeInvalidJSON: the body is not JSON, has a value of the wrong type, an
	// unknown field or trailing data (400).
	CodeInvalidJSON Code = "invalid_json"
	// CodeUnsupportedMediaType: a body declares no Content-Type, or one that
	// is not JSON (400).
	CodeUnsupportedMediaType Code = "unsupported_media_type"
	// CodeBodyTooLarge: the body exceeds the function's limit (413).
	CodeBodyTooLarge Code = "body_too_large"
	// CodeInvalidRequest: the request parsed but a value is missing or out of
	// range (422; the local edge also answers it, 400, for an unreadable body).
	CodeInvalidRequest Code = "invalid_request"
	// CodeInvalidText: a string of the body, a query parameter or the path is
	// not valid UTF-8 or holds a NUL or another control character (the text
	// rule of internal/fnhttp), or a database refused the text (422).
	CodeInvalidText Code = "invalid_text"
	// CodeUnauthenticated: no bearer token or internal credential, or an
	// invalid or expired one (401).
	CodeUnauthenticated Code = "unauthenticated"
	// CodeInvalidCredentials: login with an unknown email or a wrong password (401).
	CodeInvalidCredentials Code = "invalid_credentials"
	// CodeForbidden: an admin route called without the admin role (403).
	CodeForbidden Code = "forbidden"
	// CodeNotFound: no such resource or route, or one the caller may not see,
	// answered exactly as a missing one (404).
	CodeNotFound Code = "not_found"
	// CodeMethodNotAllowed: the route exists for other methods (405, with Allow).
	CodeMethodNotAllowed Code = "method_not_allowed"
	// CodePreconditionFailed: an If-Match did not match the current ETag (412).
	CodePreconditionFailed Code = "precondition_failed"
	// CodePreconditionRequired: a write that must be conditional (set-stock)
	// came without If-Match or If-None-Match (428).
	CodePreconditionRequired Code = "precondition_required"
	// CodeUnavailable: a database, cache, broker or another function is down;
	// retrying later may succeed (503).
	CodeUnavailable Code = "unavailable"
	// CodeTimeout: a dependency did not answer in time (504).
	CodeTimeout Code = "timeout"
	// CodeRateLimited: the edge's rate limit was reached (429, with Retry-After).
	CodeRateLimited Code = "rate_limited"
)

// Codes of the local edge (Kong in production answers with its own bodies).
const (
	// CodeLengthRequired: a body was sent without a valid Content-Length (411).
	CodeLengthRequired Code = "length_required"
	// CodeBadGateway: the upstream function did not answer (502).
	CodeBadGateway Code = "bad_gateway"
	// CodeUpstreamTimeout: the upstream function did not answer in time (504).
	CodeUpstreamTimeout Code = "upstream_timeout"
)

// Codes of the users service.
const (
	// CodeEmailTaken: register-user with an email that has an account (409).
	CodeEmailTaken Code = "email_taken"
)

// Codes of the catalog and search.
const (
	// CodeSKUTaken: create-product or update-product with a sku another
	// product has (409).
	CodeSKUTaken Code = "sku_taken"
	// CodeInvalidCursor: a list cursor not written as the list writes one
	// (422).
	CodeInvalidCursor Code = "invalid_cursor"
	// CodeSearchUnavailable: the search backend is down (503).
	CodeSearchUnavailable Code = "search_unavailable"
)

// Codes of inventory and reservations.
const (
	// CodeBelowReserved: set-stock below the units reserved for orders (409).
	CodeBelowReserved Code = "below_reserved"
	// CodeOutOfStock: reserve-stock or commit-stock without enough units, and
	// create-order for an order refused for lack of stock (409).
	CodeOutOfStock Code = "out_of_stock"
	// CodeReservationReleased: reserve-stock or commit-stock for an order
	// whose hold was released, expired or restocked (409).
	CodeReservationReleased Code = "reservation_released"
)

// Codes of the cart.
const (
	// CodeInvalidQuantity: a cart quantity outside 0..99 (422).
	CodeInvalidQuantity Code = "invalid_quantity"
	// CodeCartFull: a line added to a cart that holds the most products (422).
	CodeCartFull Code = "cart_full"
	// CodeCurrencyMismatch: a product priced in another currency than the
	// cart's other lines (409).
	CodeCurrencyMismatch Code = "currency_mismatch"
)

// Codes of orders and the checkout.
const (
	// CodeCartEmpty: create-order without items for a caller whose cart is empty (422).
	CodeCartEmpty Code = "cart_empty"
	// CodeUnknownProduct: create-order with a product the catalog does not sell (422).
	CodeUnknownProduct Code = "unknown_product"
	// CodeIdempotencyKeyReused: an Idempotency-Key sent again with another body (409).
	CodeIdempotencyKeyReused Code = "idempotency_key_reused"
	// CodeRequestInProgress: an Idempotency-Key whose first request is still
	// running after the wait (409).
	CodeRequestInProgress Code = "request_in_progress"
	// CodeNotCancellable: cancel-order for an order that is not confirmed,
	// including one already cancelled (409).
	CodeNotCancellable Code = "not_cancellable"
	// CodeInvalidTransition: a status change the order's state machine
	// forbids, other than a cancellation (409).
	CodeInvalidTransition Code = "invalid_transition"
	// CodeOrderRejected: create-order for an order another service refused
	// for a reason no other code names (422).
	CodeOrderRejected Code = "order_rejected"
)

// Codes of payments.
const (
	// CodePaymentDeclined: the processor declined the charge; answered by
	// charge-payment and by create-order for the order it failed (402).
	CodePaymentDeclined Code = "payment_declined"
	// CodeInvalidPaymentToken: a payment token the processor does not accept
	// (422; also create-order's answer for the order it failed).
	CodeInvalidPaymentToken Code = "invalid_payment_token"
	// CodePaymentMismatch: charge-payment for an order charged before with
	// another amount or user (409).
	CodePaymentMismatch Code = "payment_mismatch"
	// CodeInvalidRefund: the processor has no captured charge of that amount
	// to refund (422).
	CodeInvalidRefund Code = "invalid_refund"
	// CodeProcessorUnavailable: the payment processor refused (503) or did not
	// answer in time (504); retrying is safe.
	CodeProcessorUnavailable Code = "processor_unavailable"
)

// Codes of event consumers, answered to the RabbitMQ connector.
const (
	// CodeInvalidEvent: a body that is not a CloudEvents envelope, or whose
	// data is missing or of the wrong shape (400: dead-lettered at once).
	CodeInvalidEvent Code = "invalid_event"
	// CodeUnsupportedEvent: an event type the function does not subscribe to
	// (422: dead-lettered at once).
	CodeUnsupportedEvent Code = "unsupported_event"
	// CodeInvalidSignature: an event without the outbox relay's signature, or
	// with one no configured key verifies (403: retried like any credential
	// problem, then dead-lettered; see docs/events.md, "Signed events").
	CodeInvalidSignature Code = "invalid_signature"
	// CodeEventExpired: a signed event whose envelope time is older than the
	// inbox retention (its processed-event record may be pruned: applying it
	// again could double its effect) or missing (422: dead-lettered at once;
	// see docs/events.md, "Signed events").
	CodeEventExpired Code = "event_expired"
	// CodeEventEarly: a signed event whose envelope time is more than
	// inbox.MaxClockSkew ahead of the consumer's clock (503: retried, since
	// it becomes valid once the clocks agree; a dead letter of it is replayed
	// after fixing them).
	CodeEventEarly Code = "event_early"
)
