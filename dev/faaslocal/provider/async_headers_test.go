package provider

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The 202 of an async call carries the X-Start-Time the call was journaled
// with and X-Served-By, as the CE gateway's call-id middleware, which wraps
// its queued proxy, sets them on the answer. Until 2026-12-07 it carried
// X-Call-Id alone.
func TestTheAsync202CarriesXStartTimeAndXServedBy(t *testing.T) {
	q := &capturedQueue{}
	h := New(Deps{Functions: deployedFn{}, Queue: q})
	req := httptest.NewRequestWithContext(context.Background(), http.MethodPost, "/async-function/fn", strings.NewReader("hi"))
	res := httptest.NewRecorder()
	h.Router().ServeHTTP(res, req)
	if res.Code != http.StatusAccepted || len(q.calls) != 1 {
		t.Fatalf("status %d %q, %d calls queued", res.Code, res.Body, len(q.calls))
	}
	journaled := q.calls[0].Header.Get("X-Start-Time")
	if got := res.Header().Get("X-Start-Time"); got == "" || got != journaled {
		t.Errorf("the 202's X-Start-Time %q, want the journaled call's %q", got, journaled)
	}
	if got := res.Header().Get("X-Served-By"); got != servedBy {
		t.Errorf("the 202's X-Served-By %q, want %q", got, servedBy)
	}
}
