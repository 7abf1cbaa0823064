// Package cartsvc runs the cart use cases: it reads the stored lines, asks the
// catalog for today's prices, lets package cart decide, and writes the result.
// The cart functions (get-cart, set-cart-item, clear-cart) are thin wrappers of
// it. Checkout does not use it: the order saga reads the stored lines
// (cartredis Lines), prices them itself, and removes the ordered lines with
// RemoveOrdered.
package cartsvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/cart"
	"github.com/shopfaas/shop/internal/catalogclient"
	"github.com/shopfaas/shop/internal/fault"
)

// Store keeps the carts' lines (cartredis.Store in production).
type Store interface {
	Lines(ctx context.Context, user uuid.UUID) ([]cart.Line, error)
	SetLine(ctx context.Context, user, product uuid.UUID, quantity, maxLines int) error
	SetLineIfUnchanged(ctx context.Context, user, product uuid.UUID, quantity, maxLines int, currency string, known []uuid.UUID) error
	Remove(ctx context.Context, user uuid.UUID, products ...uuid.UUID) error
	Clear(ctx context.Context, user uuid.UUID) error
}

// Catalog tells whether a product is for sale and its price
// (catalogclient.Client in production): fault.NotFound for an unknown or
// archived product.
type Catalog interface {
	GetProduct(ctx context.Context, id uuid.UUID) (catalogclient.Product, error)
}

// fanOut bounds the concurrent catalog calls made to price one cart.
const fanOut = 8

// Service runs the cart use cases for the identity its caller verified.
type Service struct {
	store   Store
	catalog Catalog
	log     *slog.Logger
}

// New returns a service over store and catalog.
func New(store Store, catalog Catalog, log *slog.Logger) *Service {
	return &Service{store: store, catalog: catalog, log: log}
}

// Get returns the user's cart priced with the catalog's current prices. Lines
// whose product is unknown or archived are dropped from the answer and from
// the stored cart. Errors: fault.Unavailable when the catalog or the store is
// down, fault.Conflict "currency_mismatch" when the catalog's products no
// longer share a currency.
func (s *Service) Get(ctx context.Context, user uuid.UUID) (cart.View, error) {
	lines, err := s.load(ctx, user)
	if err != nil {
		return cart.View{}, err
	}
	prices, err := s.prices(ctx, lines, nil)
	if err != nil {
		return cart.View{}, err
	}
	view, dropped, err := cart.Price(lines, prices)
	if err != nil {
		return cart.View{}, err
	}
	s.drop(ctx, user, dropped)
	return view, nil
}

// SetItem sets the quantity of product in the user's cart (0 removes the line)
// and returns the priced cart. The product must be for sale (fault.NotFound
// otherwise) unless the line is being removed; a new line beyond cart.MaxLines
// is fault.Invalid "cart_full"; a product in another currency than the cart's
// is fault.Conflict "currency_mismatch". Such a refusal writes nothing (lines
// of products that left the catalog are removed only once a line is accepted,
// just before it is written: a write given up because the cart kept changing
// may have removed them, as get-cart would).
// A removal is written even when the rest of the cart cannot be priced (its
// products no longer share a currency): then it answers a "currency_mismatch"
// whose message says the line was removed (cart.Mixed).
// The line is written only while the cart has gained no line of another
// currency since it was read (a line added since by a write that recorded
// the same currency is no obstacle); otherwise SetItem decides again, and
// after setTries answers cart.ErrChanged (503).
func (s *Service) SetItem(ctx context.Context, user, product uuid.UUID, quantity int) (cart.View, error) {
	if quantity == 0 {
		return s.remove(ctx, user, product)
	}
	p, err := s.catalog.GetProduct(ctx, product)
	if fault.Is(err, fault.NotFound, "") {
		return cart.View{}, fault.Wrap(err, fault.NotFound, fault.CodeNotFound, "product not found")
	}
	if err != nil {
		return cart.View{}, err
	}
	// The line is decided on the cart as read, and written only while the
	// cart has gained no line that may be of another currency (a racing add
	// of a product in another currency): otherwise read and decide again.
	for range setTries {
		view, err := s.setOnce(ctx, user, product, quantity, cart.Money(p.Price))
		if !errors.Is(err, cart.ErrChanged) {
			return view, err
		}
	}
	return cart.View{}, cart.ErrChanged
}

// remove deletes product's line and returns the priced cart. The line is
// gone even when the rest of the cart still mixes currencies, so that 409
// says so and names the products that keep it mixed: a client must not read
// it as a removal that was not made.
func (s *Service) remove(ctx context.Context, user, product uuid.UUID) (cart.View, error) {
	if err := s.store.SetLine(ctx, user, product, 0, cart.MaxLines); err != nil {
		return cart.View{}, err
	}
	view, err := s.Get(ctx, user)
	if currencies, ok := cart.MixedCurrencies(err); ok {
		return cart.View{}, cart.Mixed(fmt.Sprintf("product %s is no longer in the cart, but the cart still cannot be priced: ", product), currencies)
	}
	return view, err
}

// setTries is how many times SetItem reads, decides and writes a line before
// it gives up on a cart that keeps changing under it (cart.ErrChanged, 503).
const setTries = 3

// setOnce is one try of SetItem: read the cart, price it with price for
// product, decide, and write the line unless the cart gained a line that may
// be of another currency since it was read (cart.ErrChanged).
func (s *Service) setOnce(ctx context.Context, user, product uuid.UUID, quantity int, price cart.Money) (cart.View, error) {
	lines, err := s.load(ctx, user)
	if err != nil {
		return cart.View{}, err
	}
	prices, err := s.prices(ctx, lines, map[uuid.UUID]cart.Money{product: price})
	if err != nil {
		return cart.View{}, err
	}
	// Lines of products that left the catalog do not count against the
	// cart's line limit; they are removed only once the line is accepted
	// (just before it is written), so a refusal writes nothing.
	var dropped []uuid.UUID
	kept := lines[:0:0]
	for _, l := range lines {
		if _, ok := prices[l.ProductID]; ok {
			kept = append(kept, l)
		} else {
			dropped = append(dropped, l.ProductID)
		}
	}
	next, err := cart.Set(kept, product, quantity)
	if err != nil {
		return cart.View{}, err
	}
	view, _, err := cart.Price(next, prices)
	if err != nil {
		return cart.View{}, err
	}
	s.drop(ctx, user, dropped)
	known := make([]uuid.UUID, len(kept))
	for i, l := range kept {
		known[i] = l.ProductID
	}
	if err := s.store.SetLineIfUnchanged(ctx, user, product, quantity, cart.MaxLines, price.Currency, known); err != nil {
		return cart.View{}, err
	}
	return view, nil
}

// Clear empties the user's cart; clearing an empty cart succeeds.
func (s *Service) Clear(ctx context.Context, user uuid.UUID) error {
	return s.store.Clear(ctx, user)
}

func (s *Service) load(ctx context.Context, user uuid.UUID) ([]cart.Line, error) {
	return s.store.Lines(ctx, user)
}

// prices asks the catalog for the price of every line's product not already
// in known, at most fanOut at a time. Products that are not found are absent
// from the result; any other failure fails the whole call.
func (s *Service) prices(ctx context.Context, lines []cart.Line, known map[uuid.UUID]cart.Money) (map[uuid.UUID]cart.Money, error) {
	out := make(map[uuid.UUID]cart.Money, len(lines))
	for id, m := range known {
		out[id] = m
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
		sem      = make(chan struct{}, fanOut)
	)
	// Which products to ask for is decided before any goroutine writes out.
	var todo []uuid.UUID
	for _, l := range lines {
		if _, ok := out[l.ProductID]; !ok {
			todo = append(todo, l.ProductID)
		}
	}
	for _, id := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func(id uuid.UUID) {
			defer wg.Done()
			defer func() { <-sem }()
			p, err := s.catalog.GetProduct(ctx, id)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				out[id] = cart.Money(p.Price)
			case fault.Is(err, fault.NotFound, ""):
			case firstErr == nil:
				firstErr = err
				cancel()
			}
		}(id)
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

// drop removes lines of products that left the catalog. Failing to do so is
// harmless (they are dropped again next time), so it is only logged.
func (s *Service) drop(ctx context.Context, user uuid.UUID, products []uuid.UUID) {
	if len(products) == 0 {
		return
	}
	if err := s.store.Remove(ctx, user, products...); err != nil {
		s.log.WarnContext(ctx, "could not remove unavailable products from a cart", "err", err.Error(), "lines", len(products))
	}
}
