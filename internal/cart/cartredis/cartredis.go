// Package cartredis stores carts in Redis: one hash per user (field = product
// id, value = quantity) under a configurable key prefix, expiring after a TTL
// that every write refreshes. Only quantities are stored, never prices.
package cartredis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/shopfaas/shop/internal/cart"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/redisconn"
)

// Config configures a Store.
type Config struct {
	// Redis is where Redis is and its password (redisconn.ConfigFrom:
	// REDIS_ADDR and the optional redis-password secret). Addr is required.
	Redis redisconn.Config
	// KeyPrefix is put before the user id to name a cart's key
	// (CART_KEY_PREFIX, default "cart:"). Tests use a random prefix.
	KeyPrefix string
	// TTL is how long an untouched cart lives (CART_TTL, default 30 days,
	// 1 minute or more); every write restarts it.
	TTL time.Duration
}

// ConfigFrom reads the cart store's settings from c; c collects the problems.
func ConfigFrom(c *config.Reader) Config {
	cfg := Config{
		Redis:     redisconn.ConfigFrom(c),
		KeyPrefix: c.String("CART_KEY_PREFIX", "cart:"),
		TTL:       c.Duration("CART_TTL", 30*24*time.Hour),
	}
	if cfg.TTL < time.Minute {
		// A cart that expires within seconds of its last write would be
		// lost while the shopper fills it: a typo (30s for 30d) is refused,
		// not silently raised.
		c.Fail("CART_TTL", errors.New("must be 1m or more"))
	}
	return cfg
}

// NewClient returns a small Redis client for cfg, logged in with its
// password when it has one; a function replica needs few connections. The
// carts' store uses it (the rate limits have clients of their own:
// ratelimit.Open).
// A Redis that refuses the login, or whose certificate fails verification,
// is an error (redisconn.Open); one that cannot be reached is not.
func NewClient(ctx context.Context, cfg redisconn.Config) (*redis.Client, error) {
	opts := redisconn.Options(cfg)
	opts.PoolSize, opts.MinIdleConns = 4, 0
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 2*time.Second, 2*time.Second, 2*time.Second
	return redisconn.Open(ctx, opts)
}

// Store reads and writes carts. It is safe for concurrent use.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
}

// New returns a store over rdb with cfg's prefix and TTL.
func New(rdb redis.UniversalClient, cfg Config) *Store {
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = "cart:"
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 30 * 24 * time.Hour
	}
	return &Store{rdb: rdb, prefix: cfg.KeyPrefix, ttl: cfg.TTL}
}

func (s *Store) key(user uuid.UUID) string { return s.prefix + user.String() }

// Lines returns the user's cart lines ordered by product id (an empty slice
// for no cart). Fields that are not a product id in canonical form (lower-case
// 8-4-4-4-12, as the store writes them) and a quantity of 1..MaxQuantity are
// ignored (setScript deletes them at the next write). Redis failures are
// fault.Unavailable.
func (s *Store) Lines(ctx context.Context, user uuid.UUID) ([]cart.Line, error) {
	m, err := s.rdb.HGetAll(ctx, s.key(user)).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	lines := make([]cart.Line, 0, len(m))
	for field, value := range m {
		id, err1 := uuid.Parse(field)
		q, err2 := strconv.Atoi(value)
		if err1 != nil || err2 != nil || id.String() != field || q < 1 || q > cart.MaxQuantity {
			continue
		}
		lines = append(lines, cart.Line{ProductID: id, Quantity: q})
	}
	slices.SortFunc(lines, func(a, b cart.Line) int { return slices.Compare(a.ProductID[:], b.ProductID[:]) })
	return lines, nil
}

// currencyField is the field of a cart's hash that holds the currency of its
// lines, written by SetLineIfUnchanged with each line it writes (not a
// product id, so never a line: Lines skips it, and the line limit does not
// count it). A cart without it (written before 2026-12-07, or last by
// SetLine) has lines of a currency no write vouched for; a cart holding only
// it is an empty cart.
const currencyField = "currency"

// dropIfNoLine is the Lua that deletes the cart KEYS[1] when no line is left
// in it (only its currency field, or nothing): setScript, removeScript and
// takeScript end their removals with it.
const dropIfNoLine = `if redis.call('HLEN', KEYS[1]) == redis.call('HEXISTS', KEYS[1], '` + currencyField + `') then
  redis.call('DEL', KEYS[1])
end`

// setScript sets or removes one line atomically, refusing a new line when the
// cart already has maxLines lines (its currency field not counted), and
// restarts the TTL. With check "1" it first refuses when the cart's currency
// field is not currency (ARGV[6]; absent counts as another) and the cart holds
// a line that is neither the one set nor one of the known lines (ARGV[7] on):
// a line added since the caller read the cart, whose currency the caller did
// not check. A line it writes then records currency as the cart's; a line
// SetLine writes removes the field (its currency is not known). Removing the
// last line deletes the cart. It returns 0 when the cart is full, 2 when it
// changed, 1 otherwise. First it deletes every field that is neither the
// currency field nor a line Lines would read (a canonical product id and a
// quantity of 1..MaxQuantity): no one reads such a field as a line, so it
// must neither refuse the write as a line added since nor count against the
// limit. That one read of the hash (HGETALL) also gives the lines the check
// looks at.
var setScript = redis.NewScript(`
local key, field, qty, maxLines, ttl, check, currency = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
local cur = '` + currencyField + `'
local h = '[0-9a-f]'
local id = '^' .. h:rep(8) .. '%-' .. h:rep(4) .. '%-' .. h:rep(4) .. '%-' .. h:rep(4) .. '%-' .. h:rep(12) .. '$'
local all, lines = redis.call('HGETALL', key), {}
for i = 1, #all, 2 do
  local f, v = all[i], all[i + 1]
  if f ~= cur then
    local q = string.match(v, '^[+-]?%d+$') and tonumber(v)
    if not string.match(f, id) or not q or q < 1 or q > ` + strconv.Itoa(cart.MaxQuantity) + ` then
      redis.call('HDEL', key, f)
    else
      lines[#lines + 1] = f
    end
  end
end
if check == '1' and redis.call('HGET', key, cur) ~= currency then
  local known = {}
  for i = 7, #ARGV do known[ARGV[i]] = true end
  for _, f in ipairs(lines) do
    if f ~= field and not known[f] then
      return 2
    end
  end
end
if qty == 0 then
  redis.call('HDEL', key, field)
` + dropIfNoLine + `
else
  if redis.call('HEXISTS', key, field) == 0 and redis.call('HLEN', key) - redis.call('HEXISTS', key, cur) >= maxLines then
    return 0
  end
  redis.call('HSET', key, field, qty)
  if check == '1' then
    redis.call('HSET', key, cur, currency)
  else
    redis.call('HDEL', key, cur)
  end
end
if redis.call('EXISTS', key) == 1 then
  redis.call('PEXPIRE', key, ttl)
end
return 1
`)

// SetLine sets the quantity of one line (0 removes it) and restarts the
// cart's TTL, atomically: concurrent writers can never push a cart past
// maxLines, which is answered cart.ErrFull. A line it sets leaves the cart's
// currency unrecorded (the next SetLineIfUnchanged checks every line then).
// Redis failures are fault.Unavailable.
func (s *Store) SetLine(ctx context.Context, user, product uuid.UUID, quantity, maxLines int) error {
	return s.setLine(ctx, user, product, quantity, maxLines, false, "", nil)
}

// SetLineIfUnchanged is SetLine for a line decided on a cart read earlier,
// whose lines were known and all in currency (the line's own included):
// when the cart has gained another line since and its recorded currency is
// not currency, it writes nothing and answers cart.ErrChanged, so two racing
// adds cannot both pass a check (one currency per cart) that each made
// without the other. Racing adds of one currency all pass: each records
// currency with its line, atomically.
func (s *Store) SetLineIfUnchanged(ctx context.Context, user, product uuid.UUID, quantity, maxLines int, currency string, known []uuid.UUID) error {
	return s.setLine(ctx, user, product, quantity, maxLines, true, currency, known)
}

// setLine runs setScript; with check, it refuses a cart whose recorded
// currency is not currency and that holds a line other than product and known.
func (s *Store) setLine(ctx context.Context, user, product uuid.UUID, quantity, maxLines int, check bool, currency string, known []uuid.UUID) error {
	if quantity < 0 || quantity > cart.MaxQuantity {
		return fault.E(fault.Invalid, fault.CodeInvalidQuantity, fmt.Sprintf("quantity must be from 0 to %d", cart.MaxQuantity))
	}
	flag := "0"
	if check {
		flag = "1"
	}
	args := []any{product.String(), quantity, maxLines, s.ttl.Milliseconds(), flag, currency}
	for _, k := range known {
		args = append(args, k.String())
	}
	ok, err := setScript.Run(ctx, s.rdb, []string{s.key(user)}, args...).Int()
	if err != nil {
		return unavailable(err)
	}
	switch ok {
	case 0:
		return cart.ErrFull
	case 2:
		return cart.ErrChanged
	}
	return nil
}

// removeScript removes lines from a cart (KEYS: the cart; ARGV: the lines'
// fields) and deletes a cart left with no line (only its currency field), as
// setScript and takeScript do.
var removeScript = redis.NewScript(`
redis.call('HDEL', KEYS[1], unpack(ARGV))
` + dropIfNoLine + `
return 1
`)

// Remove deletes lines from the user's cart (lines that are absent are
// ignored), atomically; a cart left with no line is deleted, its recorded
// currency too. Redis failures are fault.Unavailable.
func (s *Store) Remove(ctx context.Context, user uuid.UUID, products ...uuid.UUID) error {
	if len(products) == 0 {
		return nil
	}
	fields := make([]any, len(products))
	for i, p := range products {
		fields[i] = p.String()
	}
	if err := removeScript.Run(ctx, s.rdb, []string{s.key(user)}, fields...).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// Clear deletes the user's cart; clearing an empty cart succeeds. Redis
// failures are fault.Unavailable.
func (s *Store) Clear(ctx context.Context, user uuid.UUID) error {
	if err := s.rdb.Del(ctx, s.key(user)).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// takeScript takes an order's lines out of a cart once (KEYS: the cart, the
// order's removal mark; ARGV: the mark's life in ms, then field, quantity
// pairs): it removes each line that still holds the ordered quantity — a
// line set since to another quantity, and every other line, stays — unless
// the mark says this order's removal was made already. A cart left with no
// line (only its currency field) is deleted.
var takeScript = redis.NewScript(`
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then
  return 0
end
for i = 2, #ARGV, 2 do
  local held = redis.call('HGET', KEYS[1], ARGV[i])
  if held and tonumber(held) == tonumber(ARGV[i + 1]) then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
` + dropIfNoLine + `
return 1
`)

// RemoveOrdered takes order's lines out of the user's cart, atomically: a
// line goes only while it holds the ordered quantity, so a line the customer
// added while the order was placed (after the cart was read to price it), or
// one now at another quantity, stays in the cart (one set back to the
// ordered quantity cannot be told apart, and goes). It does so once per
// order: the removal leaves a mark that lives for remember, and a removal of
// the same order while it lives takes nothing. A removal made again — its
// answer lost, or its settlement not recorded, so recovery makes it again a
// minute or hours later — would otherwise take out a line the customer has
// set back to the ordered quantity since; remember must outlive every
// retry (the saga passes its GiveUpAfter and an hour). Redis failures are
// fault.Unavailable.
func (s *Store) RemoveOrdered(ctx context.Context, user, order uuid.UUID, lines []cart.Line, remember time.Duration) error {
	if len(lines) == 0 {
		return nil
	}
	args := make([]any, 0, 1+2*len(lines))
	args = append(args, strconv.FormatInt(max(remember.Milliseconds(), 1), 10))
	for _, l := range lines {
		args = append(args, l.ProductID.String(), strconv.Itoa(l.Quantity))
	}
	if err := takeScript.Run(ctx, s.rdb, []string{s.key(user), s.takenKey(order)}, args...).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// ForgetRemoval deletes order's removal mark (RemoveOrdered) once the
// removal is recorded as settled: no removal of the order comes again, and
// a mark kept for its whole life by every cart order would hold Redis memory
// the carts, the rate limits and the product cache need (the marks of
// settlements never recorded stay, and expire). Redis failures are
// fault.Unavailable.
func (s *Store) ForgetRemoval(ctx context.Context, order uuid.UUID) error {
	if err := s.rdb.Del(ctx, s.takenKey(order)).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// takenKey is the key of order's removal mark (RemoveOrdered): under the
// carts' prefix, never a cart's key (those end in a user id). It is not in
// the cart's hash slot: the store needs one Redis server, not a cluster
// (RemoveOrdered's script touches both keys).
func (s *Store) takenKey(order uuid.UUID) string { return s.prefix + "taken:" + order.String() }

// TTL reports how long the user's cart still lives (negative when it does not exist).
func (s *Store) TTL(ctx context.Context, user uuid.UUID) (time.Duration, error) {
	d, err := s.rdb.PTTL(ctx, s.key(user)).Result()
	if err != nil {
		return 0, unavailable(err)
	}
	return d, nil
}

func unavailable(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fault.Wrap(err, fault.Timeout, fault.CodeTimeout, "cart store did not answer in time")
	}
	return fault.Wrap(fmt.Errorf("redis: %w", err), fault.Unavailable, fault.CodeUnavailable, "cart temporarily unavailable")
}
