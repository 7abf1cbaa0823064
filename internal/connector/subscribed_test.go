package connector

import (
	"context"
	"testing"
	"time"

	"github.com/shopfaas/shop/internal/broker"
)

// An event published the moment broker.WaitSubscribed returns reaches every
// subscriber of its topic: the connector binds a function's topics before it
// consumes its queue. Published as soon as the connector starts instead,
// the first events reach only the functions bound so far (a chaos run once
// lost order.placed for update-product-stats that way).
func TestAnEventPublishedOnceSubscribedReachesEveryFunction(t *testing.T) {
	t.Parallel()
	fns := []string{"a", "b", "c", "d", "e", "f"}
	e := setup(t, fns...)
	topic := e.names.Prefix + "order.placed.v1"
	for _, fn := range fns {
		e.gw.set(fn, topic, nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	err := broker.WaitSubscribed(ctx, rabbitURL, e.names, fns)
	cancel()
	if err == nil {
		t.Fatal("WaitSubscribed returned before any connector ran")
	}
	e.start(t)
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := broker.WaitSubscribed(ctx, rabbitURL, e.names, fns); err != nil {
		t.Fatal(err)
	}
	id := e.publish(t, topic)
	for _, fn := range fns {
		got := e.gw.waitCalls(t, fn, 1, 10*time.Second)
		if got[0].id != id {
			t.Errorf("%s got %s, want %s", fn, got[0].id, id)
		}
	}
}
