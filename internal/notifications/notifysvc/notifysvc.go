// Package notifysvc runs notify-user's use case: one notification per event
// for the user it concerns, stored once (the event id is claimed in the same
// transaction), and, when a mail server is configured, its email sent to the
// account's address, at most one delivery at a time. The function notify-user
// is its HTTP wrapper.
package notifysvc

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/notifications"
	"github.com/shopfaas/shop/internal/telemetry"
	"github.com/shopfaas/shop/internal/users"
)

// Store keeps the notifications and their email state; notificationsdb.Store
// implements it.
type Store interface {
	// Record stores n once per event for consumer; first is false for a
	// redelivery, which returns the notification stored the first time.
	Record(ctx context.Context, consumer string, n notifications.Notification) (stored notifications.Notification, first bool, err error)
	// ClaimEmail takes the sending of n's email for lease and returns the
	// claim; false when it is sent already or another delivery holds an
	// unexpired claim, and, for an order's emails, while the other of its
	// placing and its end is claimed, or, for the placing's, once the end's
	// was sent: an order's emails go out in turn.
	ClaimEmail(ctx context.Context, id uuid.UUID, lease time.Duration) (claim time.Time, ok bool, err error)
	// ReleaseEmail gives claim back after a failed send, unless another
	// delivery has taken the email since.
	ReleaseEmail(ctx context.Context, id uuid.UUID, claim time.Time) error
	// MarkEmailed records that the email went out.
	MarkEmailed(ctx context.Context, id uuid.UUID) error
	// MarkRefused records, while claim is still held, that the email was
	// refused for good and releases the claim: it is never claimed again.
	// recorded is false when it was recorded refused already; an error when
	// the email was sent, or claimed by another delivery, meanwhile.
	MarkRefused(ctx context.Context, id uuid.UUID, claim time.Time) (recorded bool, err error)
	// EndEmailed reports whether the email of a notification telling the
	// end of order (notifications.Ends) went out to user.
	EndEmailed(ctx context.Context, userID, orderID uuid.UUID) (bool, error)
}

// Accounts finds a user's account (for the email address); usersdb.Store
// implements it.
type Accounts interface {
	Get(ctx context.Context, id uuid.UUID) (users.User, error)
}

// Mailer sends one email; smtpmail.Sender implements it. An error means the
// email may not have been delivered; one that wraps
// notifications.ErrUndeliverable means it never will be (the server refused
// it for good), and sending it again would get the same answer; one that
// wraps notifications.ErrUnanswered means the server had the whole message
// but never answered: it may have gone out, and it is recorded sent (at most
// once: never sent again).
type Mailer interface {
	Send(ctx context.Context, e notifications.Email) error
}

// EmailLease bounds how long a delivery may hold the sending of an email
// before another may take it over: above the longest send
// (smtpmail.MaxTimeout).
const EmailLease = time.Minute

// MarkTimeout bounds one try to record a sent email, which outlives the
// delivery's context.
const MarkTimeout = 5 * time.Second

// markMargin is kept between the last try to record a sent email (its
// MarkTimeout included) and the end of the claim's lease: until then no other
// delivery can take the claim and send the email again. It also covers a
// difference between this process's clock and the database's, which sets the
// lease.
const markMargin = 5 * time.Second

// Service notifies users of events.
type Service struct {
	store  Store
	users  Accounts
	mailer Mailer
	log    *slog.Logger
}

// New returns the service. mailer is nil when no mail server is configured:
// notifications are then only stored.
func New(store Store, accounts Accounts, mailer Mailer, log *slog.Logger) *Service {
	return &Service{store: store, users: accounts, mailer: mailer, log: log}
}

// Result is what Notify did.
type Result struct {
	Notification notifications.Notification
	// Duplicate is true when the event had been recorded before.
	Duplicate bool
	// Emailed is true when the notification's email has gone out (now or on
	// an earlier delivery).
	Emailed bool
	// Undeliverable is true when the mail server refused the email for good
	// (now or on an earlier delivery): it is not sent, nor tried again.
	Undeliverable bool
}

// Notify records the notification of event e for consumer and, with a
// Mailer, sends the email still owed. It returns only after the notification
// is committed (and its email sent): a failed send is fault.Unavailable, and
// the redelivery sends the email without storing a second notification. An
// email the server refuses for good (notifications.ErrUndeliverable) is
// recorded so and is no error: retrying could not change the answer, and the
// notification is stored. An order's placing is not emailed once the email
// of its end went out (its email, owed after a failed send, would tell the
// customer "confirmed" after "cancelled"): the notification is stored, its
// email left unsent, and that is no error either. Two deliveries of one
// order racing (neither email sent yet) never send at once: the claim
// (Store.ClaimEmail) refuses one while the other is sent, and that delivery
// is retried (fault.Unavailable); which goes first is not ordered, but a
// placing's retry after its end's email sends nothing. An event it can
// never process is fault.Invalid or fault.Malformed.
func (s *Service) Notify(ctx context.Context, consumer string, e notifications.Event, now time.Time) (Result, error) {
	n, err := notifications.New(e, now)
	if err != nil {
		return Result{}, err
	}
	stored, first, err := s.store.Record(ctx, consumer, n)
	if err != nil {
		return Result{}, err
	}
	if !first {
		s.log.InfoContext(ctx, "duplicate event", "event_id", e.ID, "type", e.Type)
	} else {
		s.log.InfoContext(ctx, "event processed", "event_id", e.ID, "type", e.Type, "notification_id", stored.ID)
	}
	res := Result{Notification: stored, Duplicate: !first, Emailed: stored.EmailedAt != nil, Undeliverable: stored.EmailRefusedAt != nil}
	if s.mailer != nil && !res.Emailed && !res.Undeliverable {
		if stored.OrderID != nil && !notifications.Ends(stored.Type) {
			ended, err := s.store.EndEmailed(ctx, stored.UserID, *stored.OrderID)
			if err != nil {
				return Result{}, err
			}
			if ended {
				s.log.InfoContext(ctx, "email not sent: its order's end was emailed already", "event_id", e.ID,
					"type", e.Type, "notification_id", stored.ID)
				return res, nil
			}
		}
		if res.Emailed, res.Undeliverable, err = s.email(ctx, stored); err != nil {
			return Result{}, err
		}
	}
	return res, nil
}

// email sends n to its user's address and records it, reporting whether it
// went out or was refused for good. A deleted account is no error (nothing to
// send, reported false, false); a failed send is fault.Unavailable so the
// connector retries, unless the server refused the email for good
// (notifications.ErrUndeliverable): that is recorded and reported, no error.
// A message the server had in full but never answered
// (notifications.ErrUnanswered) is recorded and reported sent: an email is
// sent at most once.
func (s *Service) email(ctx context.Context, n notifications.Notification) (sent, refused bool, err error) {
	u, err := s.users.Get(ctx, n.UserID)
	if fault.Is(err, fault.NotFound, "") {
		s.log.InfoContext(ctx, "no account to email", "user_id", n.UserID, "notification_id", n.ID)
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	claimedAt := time.Now()
	claim, claimed, err := s.store.ClaimEmail(ctx, n.ID, EmailLease)
	if err != nil {
		return false, false, err
	}
	if !claimed {
		// Sent since this delivery read the notification, or another delivery
		// holds the sending: it may be sending right now, or it may have died
		// with the claim held (its retry then finds the claim held too, until
		// the lease runs out). Or the other email of its order (placing or
		// end) is being sent, or, for a placing, the end's went out since
		// the check above. Either way this delivery is retried, not
		// acknowledged: its retry answers 200 once the email is recorded sent
		// (or a placing's end was), or takes the claim over once the lease
		// has run out (or once the email is recorded refused).
		return false, false, fault.E(fault.Unavailable, fault.CodeUnavailable, "the email is being sent by another delivery")
	}
	if err := s.mailer.Send(ctx, n.Email(u.Email)); err != nil {
		if errors.Is(err, notifications.ErrUndeliverable) {
			return false, true, s.refused(ctx, n, u.Email, claim, err)
		}
		if errors.Is(err, notifications.ErrUnanswered) {
			// The server has the whole message and may have sent it: it is
			// recorded sent, at most once. Kept unrecorded, its claim would
			// hold the order's other email for the lease's minute, and a
			// redelivery after it could send it a second time (and, for a
			// placing, after its end's).
			telemetry.ShopFrom(ctx).NotificationEmail(telemetry.EmailUnanswered)
			s.log.WarnContext(ctx, "email handed over but not answered: recorded sent, never sent again",
				"to", notifications.MaskEmail(u.Email), "user_id", n.UserID, "notification_id", n.ID, "err", err.Error())
			if err := s.markEmailed(ctx, n.ID, claimedAt.Add(EmailLease-MarkTimeout-markMargin)); err != nil {
				return true, false, err
			}
			return true, false, nil
		}
		telemetry.ShopFrom(ctx).NotificationEmail(telemetry.EmailFailed)
		s.log.WarnContext(ctx, "email not sent", "to", notifications.MaskEmail(u.Email), "user_id", n.UserID, "notification_id", n.ID,
			"err", err.Error())
		s.release(ctx, n.ID, claim)
		return false, false, fault.Wrap(err, fault.Unavailable, fault.CodeUnavailable, "the email could not be sent")
	}
	telemetry.ShopFrom(ctx).NotificationEmail(telemetry.EmailSent)
	if err := s.markEmailed(ctx, n.ID, claimedAt.Add(EmailLease-MarkTimeout-markMargin)); err != nil {
		return true, false, err
	}
	s.log.InfoContext(ctx, "email sent", "to", notifications.MaskEmail(u.Email), "user_id", n.UserID, "notification_id", n.ID)
	return true, false, nil
}

// release gives the claim on notification id back after a failed send or a
// failed refusal record, on a context of its own bounded by MarkTimeout: the
// delivery's may be ended, or used up by the record that failed. A release
// that fails is logged; the retry then waits for the lease to run out.
func (s *Service) release(ctx context.Context, id uuid.UUID, claim time.Time) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), MarkTimeout)
	defer cancel()
	if err := s.store.ReleaseEmail(rctx, id, claim); err != nil {
		s.log.WarnContext(ctx, "email claim not released", "notification_id", id, "err", err.Error())
	}
}

// refused records that the server refused n's email to address for good
// (sendErr), so that no redelivery sends it again: an address the server
// will never take (one it does not know, or one with a non-ASCII local part
// to a relay without SMTPUTF8, which registration accepts) would otherwise fail every
// delivery of every event of its account until the dead letters, and page
// on-call for what a client typed. The record is written on a context the
// delivery's end does not cancel; when it fails, the claim is released and the
// delivery is fault.Unavailable: its retry asks the server again. The release
// has its own MarkTimeout: the record may have failed by using all of its
// own, and a release on that ended context would fail at once, leaving the
// claim held for the rest of its lease (EmailLease).
func (s *Service) refused(ctx context.Context, n notifications.Notification, address string, claim time.Time, sendErr error) error {
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), MarkTimeout)
	defer cancel()
	recorded, err := s.store.MarkRefused(mctx, n.ID, claim)
	if err != nil {
		telemetry.ShopFrom(ctx).NotificationEmail(telemetry.EmailFailed)
		s.log.WarnContext(ctx, "a refused email could not be recorded; the delivery is retried", "user_id", n.UserID,
			"notification_id", n.ID, "err", err.Error())
		s.release(ctx, n.ID, claim)
		return err
	}
	if !recorded {
		return nil // by another delivery, which counted and logged it
	}
	telemetry.ShopFrom(ctx).NotificationEmail(telemetry.EmailRefused)
	s.log.WarnContext(ctx, "email refused for good: not sent, not retried", "to", notifications.MaskEmail(address),
		"user_id", n.UserID, "notification_id", n.ID, "err", sendErr.Error())
	return nil
}

// markEmailed records that notification id's email went out, the server
// having the message. It does so even when the delivery's context has ended
// since (the connector stopping, or the invocation's deadline), and tries
// again while the claim is held, starting no try after giveUp (set from when
// the claim was taken, so the last try ends before its lease does): a record
// that failed once and was given up would let the lease run out, and a
// redelivery send the email again. Retrying can keep the delivery past the
// connector's INVOKE_TIMEOUT; its retry then answers 503 (the claim is held)
// until the record lands, and 200 after.
func (s *Service) markEmailed(ctx context.Context, id uuid.UUID, giveUp time.Time) error {
	wait := 100 * time.Millisecond
	for {
		mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), MarkTimeout)
		err := s.store.MarkEmailed(mctx, id)
		cancel()
		if err == nil {
			return nil
		}
		if !time.Now().Add(wait).Before(giveUp) {
			s.log.ErrorContext(ctx, "a sent email could not be recorded: a redelivery after the claim's lease may send it again",
				"notification_id", id, "err", err.Error())
			return err
		}
		s.log.WarnContext(ctx, "record of a sent email failed; trying again", "notification_id", id, "err", err.Error())
		time.Sleep(wait)
		wait = min(2*wait, 2*time.Second)
	}
}
