package chaos

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestDefinite(t *testing.T) {
	for _, c := range []struct {
		code int
		body string
		want bool
	}{
		{200, "", true}, {201, "", true}, {402, `{"code":"payment_declined"}`, true},
		{409, `{"code":"out_of_stock"}`, true}, {409, `{"code":"request_in_progress"}`, false},
		{429, `{"code":"rate_limited"}`, false}, {500, "", false}, {503, `{"code":"unavailable"}`, false},
	} {
		if got := definite(c.code, []byte(c.body)); got != c.want {
			t.Errorf("definite(%d, %s) = %v, want %v", c.code, c.body, got, c.want)
		}
	}
}

// The summary names what the customers were refused with, the most
// frequent kind first, ids folded into {id}, with the first answer's detail.
func TestAnswerTallyListsKindsByCount(t *testing.T) {
	var a answerTally
	order := "/api/v1/orders/0193a7e4-2f43-7c4e-9a5e-3c1f2b7d9e10/cancel"
	for i := range 3 {
		a.add("POST", "/api/v1/orders", 503, fmt.Appendf(nil, `{"title":"Service Unavailable","code":"unavailable","detail":"stock down %d"}`, i), nil)
	}
	a.add("POST", order, 502, []byte("Bad Gateway\n"), nil)
	a.add("POST", order, 502, []byte("Bad Gateway\n"), nil)
	a.add("GET", "/api/v1/products", 0, nil, errors.New("connection refused"))
	want := []string{
		"3 × POST /api/v1/orders 503 unavailable: stock down 0",
		"2 × POST /api/v1/orders/{id}/cancel 502: Bad Gateway",
		"1 × GET /api/v1/products transport error: connection refused",
	}
	if got := a.lines(10); !slices.Equal(got, want) {
		t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := a.lines(1); len(got) != 2 || got[0] != want[0] || got[1] != "… and 2 more kinds" {
		t.Errorf("lines(1) = %q", got)
	}
}

// Only lines at error level are kept: the first max of them and the newest
// max, with a count of those dropped between; a line written in pieces whole.
func TestErrorTailKeepsTheFirstAndLastErrorLines(t *testing.T) {
	e := &errorTail{max: 1}
	for _, w := range []string{
		`create-order | {"level":"ERROR","msg":"request failed","n":1}` + "\n",
		`create-order | {"level":"INFO","msg":"ready"}` + "\n",
		`rabbitmq | time=x level=ERROR msg="publish failed" n=2` + "\n" + `get-product | {"level":"ERR`,
		`OR","msg":"cache","n":3}` + "\n" + `get-product | {"level":"WARN"}` + "\n" + `x | level=ERROR n=4` + "\n",
	} {
		if n, err := e.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	want := []string{
		`create-order | {"level":"ERROR","msg":"request failed","n":1}`,
		"… 2 lines at error level not kept …",
		`x | level=ERROR n=4`,
	}
	if got := e.kept(); !slices.Equal(got, want) {
		t.Errorf("kept = %q, want %q", got, want)
	}
	e = &errorTail{max: 2}
	_, _ = e.Write([]byte("a level=ERROR\nb level=ERROR\nc level=ERROR\n"))
	if got, want := e.kept(), []string{"a level=ERROR", "b level=ERROR", "c level=ERROR"}; !slices.Equal(got, want) {
		t.Errorf("kept = %q, want %q", got, want)
	}
}

func TestKillsByTarget(t *testing.T) {
	got := killsByTarget(map[string]int{"get-product": 1, "rabbitmq": 2, "create-order": 2})
	if want := "create-order 2, rabbitmq 2, get-product 1"; got != want {
		t.Errorf("killsByTarget = %q, want %q", got, want)
	}
	if got := killsByTarget(nil); got != "" {
		t.Errorf("killsByTarget(nil) = %q, want empty", got)
	}
}
