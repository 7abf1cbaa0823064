package fnhttp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

type textBody struct {
	Name    string            `json:"name"`
	Note    string            `json:"note" text:"multiline"`
	Tags    []string          `json:"tags"`
	Labels  map[string]string `json:"labels"`
	Address *struct {
		Line1 string `json:"line1"`
	} `json:"address"`
	Patch catalog.Patch `json:"patch"`
}

func TestDecodeAppliesTheTextRule(t *testing.T) {
	tests := []struct {
		name, body string
		ok         bool
		field      string // named in the problem's detail
	}{
		{name: "plain text", body: `{"name":"Café ☕ 東京","note":"a\nb\r\n\tc"}`, ok: true},
		{name: "newline in a multiline field", body: `{"patch":{"description":"line 1\nline 2"}}`, ok: true},
		{name: "NUL escape", body: `{"name":"a\u0000b"}`, field: `"name"`},
		{name: "invalid UTF-8", body: "{\"name\":\"\xff\"}", field: "body"},
		{name: "overlong encoding", body: "{\"name\":\"\xc0\xaf\"}", field: "body"},
		{name: "surrogate encoded as UTF-8", body: "{\"name\":\"\xed\xa0\x80\"}", field: "body"},
		{name: "escape character", body: `{"name":"a\u001bb"}`, field: `"name"`},
		{name: "DEL", body: `{"name":"a` + "\x7f" + `"}`, field: `"name"`},
		{name: "C1 control", body: `{"name":"a\u0085"}`, field: `"name"`},
		{name: "newline in a single-line field", body: `{"name":"a\nb"}`, field: `"name"`},
		{name: "tab in a single-line field", body: `{"name":"a\tb"}`, field: `"name"`},
		{name: "NUL in a multiline field", body: `{"note":"a\u0000"}`, field: `"note"`},
		{name: "NUL in a slice", body: `{"tags":["ok","\u0000"]}`, field: `"tags[1]"`},
		{name: "NUL in a map value", body: `{"labels":{"k":"\u0000"}}`, field: `"labels.k"`},
		{name: "NUL in a map key", body: `{"labels":{"\u0000":"v"}}`, field: `"labels" key`},
		{name: "NUL in a nested struct", body: `{"address":{"line1":"\u0000"}}`, field: `"address.line1"`},
		{name: "NUL in a merge-patch field", body: `{"patch":{"name":"\u0000"}}`, field: `"patch.name"`},
		{name: "NUL in a multiline merge-patch field", body: `{"patch":{"description":"\u0000"}}`, field: `"patch.description"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got textBody
			err := fnhttp.DecodeBytes([]byte(tt.body), &got)
			if tt.ok {
				if err != nil {
					t.Fatalf("DecodeBytes: %v", err)
				}
				return
			}
			if !fault.Is(err, fault.Invalid, fault.CodeInvalidText) || fnhttp.Status(err) != http.StatusUnprocessableEntity {
				t.Fatalf("err = %v (status %d), want 422 invalid_text", err, fnhttp.Status(err))
			}
			if d := fnhttp.ProblemFor(err).Detail; !strings.Contains(d, tt.field) {
				t.Errorf("detail %q does not name %s", d, tt.field)
			}
		})
	}
}

// A field tagged text:"opaque" (a login's password) is neither checked nor
// named, whatever it holds below it; the fields beside it are checked as
// usual.
func TestAnOpaqueFieldIsNeitherCheckedNorNamed(t *testing.T) {
	var got struct {
		Name   string   `json:"name"`
		Secret string   `json:"secret" text:"opaque"`
		Parts  []string `json:"parts" text:"opaque"`
	}
	body := `{"name":"x","secret":"a\tb\u0000c\u007f\u0085","parts":["\u001b"]}`
	if err := fnhttp.DecodeBytes([]byte(body), &got); err != nil {
		t.Fatalf("control characters in opaque fields: %v", err)
	}
	if got.Secret != "a\tb\x00c\x7f\u0085" || len(got.Parts) != 1 || got.Parts[0] != "\x1b" {
		t.Fatalf("decoded %q %q, want the strings as sent", got.Secret, got.Parts)
	}
	err := fnhttp.DecodeBytes([]byte(`{"name":"a\tb","secret":"\u0000"}`), &got)
	if !fault.Is(err, fault.Invalid, fault.CodeInvalidText) {
		t.Fatalf("err = %v, want invalid_text for the name beside an opaque field", err)
	}
	if d := fnhttp.ProblemFor(err).Detail; !strings.Contains(d, `"name"`) || strings.Contains(d, "secret") {
		t.Errorf("detail %q, want the name named and the opaque field not", d)
	}
}

func TestRawControlBytesAreMalformedJSON(t *testing.T) {
	var got textBody
	err := fnhttp.DecodeBytes([]byte("{\"name\":\"a\x00b\"}"), &got)
	if !fault.Is(err, fault.Malformed, fault.CodeInvalidJSON) {
		t.Fatalf("err = %v, want 400 invalid_json (JSON forbids raw control characters in strings)", err)
	}
}

func TestCatalogDescriptionsMayHoldNewlines(t *testing.T) {
	var d catalog.Draft
	if err := fnhttp.DecodeBytes([]byte(`{"name":"x","description":"one\ntwo"}`), &d); err != nil {
		t.Fatalf("description with a newline: %v", err)
	}
	if err := fnhttp.DecodeBytes([]byte(`{"name":"x\ny"}`), &d); !fault.Is(err, fault.Invalid, fault.CodeInvalidText) {
		t.Fatalf("name with a newline: %v, want invalid_text", err)
	}
}

func TestCheckRequestText(t *testing.T) {
	tests := []struct {
		target string
		status int // 0: accepted
	}{
		{"/api/v1/search?q=caf%C3%A9&category=home-audio", 0},
		{"/api/v1/search?q=%00", 422},
		{"/api/v1/search?q=%FF", 422},
		{"/api/v1/search?q=%C0%AF", 422},
		{"/api/v1/search?q=%ED%A0%80", 422},
		{"/api/v1/search?q=a%0Ab", 422},
		{"/api/v1/search?%00=x", 422},
		{"/api/v1/products/%00", 404},
		{"/api/v1/products/%FF", 404},
		{"/api/v1/orders/%01/payment", 404},
		{"/api/v1/search?q=%zz", 400},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, tt.target, nil)
		err := fnhttp.CheckRequestText(r)
		switch {
		case tt.status == 0 && err != nil:
			t.Errorf("%s: %v", tt.target, err)
		case tt.status != 0 && fnhttp.Status(err) != tt.status:
			t.Errorf("%s: err %v (status %d), want %d", tt.target, err, fnhttp.Status(err), tt.status)
		}
	}
}

// TestARepeatedQueryParameterIsRefused: a parameter sent empty is one left
// out (the contract's intro), so the handler reads the one value sent; sent
// with a value twice, the request is refused, never read as its first value.
func TestARepeatedQueryParameterIsRefused(t *testing.T) {
	for target, want := range map[string]string{
		"/api/v1/orders?limit=&limit=5":            "limit=5",
		"/api/v1/orders?limit=5&limit=":            "limit=5",
		"/api/v1/orders?limit=&cursor=c":           "cursor=c",
		"/api/v1/search?q=&q=&sort=price_asc&q=ab": "q=ab&sort=price_asc",
		"/api/v1/search?q=caf%C3%A9":               "q=caf%C3%A9",
	} {
		r := httptest.NewRequest(http.MethodGet, target, nil)
		if err := fnhttp.CheckRequestText(r); err != nil {
			t.Errorf("%s: %v", target, err)
			continue
		}
		if r.URL.RawQuery != want {
			t.Errorf("%s: the handler reads %q, want %q", target, r.URL.RawQuery, want)
		}
	}
	for _, target := range []string{
		"/api/v1/orders?cursor=a&cursor=b",
		"/api/v1/orders?limit=5&limit=5",
		"/api/v1/search?q=a&sort=price_asc&q=&q=b",
	} {
		r := httptest.NewRequest(http.MethodGet, target, nil)
		err := fnhttp.CheckRequestText(r)
		if !fault.Is(err, fault.Invalid, fault.CodeInvalidRequest) || !strings.Contains(err.Error(), "more than once") {
			t.Errorf("%s: %v, want 422 invalid_request (sent more than once)", target, err)
		}
	}
}

func TestQueryHelpersApplyTheTextRule(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/?cursor=%00&limit=%FF", nil)
	if _, err := fnhttp.Query(r, "cursor"); !fault.Is(err, fault.Invalid, fault.CodeInvalidText) {
		t.Errorf("Query: %v, want invalid_text", err)
	}
	if _, err := fnhttp.QueryInt(r, "limit", 1, 1, 10); fnhttp.Status(err) != http.StatusUnprocessableEntity {
		t.Errorf("QueryInt: %v, want 422", err)
	}
}

// TestBadTextFromPostgreSQLIs422 is the second net: text PostgreSQL refuses
// (here a NUL byte, SQLSTATE 22021) that a store wrapped as unavailable is
// answered 422 and logged below ERROR.
func TestBadTextFromPostgreSQLIs422(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.ServerURL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var s string
	dbErr := conn.QueryRow(ctx, `SELECT $1::text`, "a\x00b").Scan(&s)
	if !fnhttp.IsBadText(dbErr) {
		t.Fatalf("PostgreSQL answered %v, want a bad-text SQLSTATE", dbErr)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := fnhttp.Adapt(log, func(http.ResponseWriter, *http.Request) error {
		return fault.Wrap(dbErr, fault.Unavailable, fault.CodeUnavailable, "the users database is unavailable")
	})
	rec := httptest.NewRecorder()
	h(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), `"invalid_text"`) {
		t.Errorf("answer %d %s, want 422 invalid_text", rec.Code, rec.Body)
	}
	if strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("logged %q, want one WARN line", logs.String())
	}
}

// TestTheTextRuleCostsAValidBodyNothing: a valid order, decoded and checked
// (DecodeBytes), allocates no more than its JSON decoding alone; the text
// rule names a field only once one breaks it (22 allocations per order
// before: every field's path and name were built as the walk went).
func TestTheTextRuleCostsAValidBodyNothing(t *testing.T) {
	body := []byte(`{"items":[{"product_id":"0190a1b2-0000-7000-8000-000000000001","quantity":1},` +
		`{"product_id":"0190a1b2-0000-7000-8000-000000000002","quantity":2}],` +
		`"shipping_address":{"name":"Ada","line1":"1 Loop Rd","city":"Springfield","postal_code":"12345","country":"US"},` +
		`"payment":{"token":"tok_visa"}}`)
	var o orders.PlaceRequest
	decodeOnly := testing.AllocsPerRun(100, func() {
		o = orders.PlaceRequest{}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&o); err != nil {
			t.Fatal(err)
		}
		var extra json.RawMessage
		if err := dec.Decode(&extra); err != io.EOF {
			t.Fatal(err)
		}
	})
	checked := testing.AllocsPerRun(100, func() {
		o = orders.PlaceRequest{}
		if err := fnhttp.DecodeBytes(body, &o); err != nil {
			t.Fatal(err)
		}
	})
	if checked > decodeOnly {
		t.Errorf("DecodeBytes allocates %.0f times for a valid order, its JSON decoding alone %.0f", checked, decodeOnly)
	}
}
