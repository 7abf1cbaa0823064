package relay

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/shopfaas/shop/internal/postgres"
)

// An event no queue takes, not even shop.unrouted (deleted while the relay
// runs), is returned by the broker: its row stays pending and, once the relay
// has declared the unrouted queue again, lands there. Published without
// mandatory, the broker confirmed it, dropped it, and the row was marked
// published.
func TestAnEventNoQueueTakesStaysPendingUntilUnroutedIsBack(t *testing.T) {
	names, ch := declareExchange(t)
	pool, url := openOutbox(t)
	ctx := context.Background()
	startRelay(t, ctx, Config{Databases: []Database{{Name: "orders", URL: url}}, BrokerURL: rabbitURL, Names: names}, nil)
	commitEvent(t, ctx, pool, "first")
	allMarked(t, pool) // the relay's channel is open and its topology declared
	if _, err := ch.QueueDelete(names.Unrouted(), false, false, false); err != nil {
		t.Fatal(err)
	}
	var id string
	if err := postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		id = insertEvent(t, ctx, tx, "second")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	allMarked(t, pool)
	msg, ok, err := ch.Get(names.Unrouted(), true)
	if err != nil || !ok {
		t.Fatalf("the event was marked published, but %s does not hold it (%v): the broker dropped it", names.Unrouted(), err)
	}
	if msg.MessageId != id {
		t.Errorf("%s holds %s, want %s", names.Unrouted(), msg.MessageId, id)
	}
}
