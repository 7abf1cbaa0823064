package contract_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/api"
	"github.com/shopfaas/shop/dev/contract"
	createorder "github.com/shopfaas/shop/functions/create-order"
	getordertimeline "github.com/shopfaas/shop/functions/get-order-timeline"
	listnotifications "github.com/shopfaas/shop/functions/list-notifications"
	listorders "github.com/shopfaas/shop/functions/list-orders"
	loginuser "github.com/shopfaas/shop/functions/login-user"
	registeruser "github.com/shopfaas/shop/functions/register-user"
	searchproducts "github.com/shopfaas/shop/functions/search-products"
	setcartitem "github.com/shopfaas/shop/functions/set-cart-item"
	setstock "github.com/shopfaas/shop/functions/set-stock"
	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/cart"
	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalogclient"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/notifications"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/search"
	"github.com/shopfaas/shop/internal/users"
)

// reached is what every fake store answers once the code has decoded and
// validated a request and asks it to act: 503 unavailable, with the seam's
// flag set, so the request is known to have passed every rule of its shape.
var reached = fault.E(fault.Unavailable, fault.CodeUnavailable, "the store was reached")

// seam is how the code decides on one operation's request, in process: a
// handler that answers it as the function does up to its store, and a
// flag set when the request got there.
type seam struct {
	handler http.Handler
	reached *atomic.Bool
}

// codeSeam is, for one operation of api/openapi.yaml, the code that decodes
// and validates its request, the values only the code can mint, and the
// rules the document states only in words.
type codeSeam struct {
	// build makes the seam. Where the function's handler takes its stores
	// as small interfaces, the seam is the handler itself over fakes that
	// say yes to every question of state (the product exists, the
	// credentials are checked after) and flag the call; where it takes a
	// concrete store (the catalog's, over PostgreSQL), it is the handler's
	// decoding and domain validation called in the handler's order.
	build func(t *testing.T) seam
	// minted are values of parameters (query or header) the document
	// declares opaque (a cursor: "the next_cursor of the previous page"; an
	// If-Match: "the ETag get-stock answered"): the code refuses one it did
	// not write (invalid_cursor; a malformed If-Match, 412), which the
	// schema cannot say, so the requests carry one it wrote.
	minted map[string]string
	// prose are the rules of the operation's request the document states
	// in words only, because JSON Schema cannot say them (a comparison of
	// two values).
	prose []proseRule
	// refusesState says whether the seam may answer the request, which
	// the document accepts, with a status other than 400 and 422 before
	// it reaches its store: a refusal of state the fakes cannot say yes
	// to. Any other answer that is not the store's is a disagreement (a
	// 500, a 404, a 413): allow only the requests that earn the status
	// and say beside each why.
	refusesState func(req *http.Request, code int) bool
}

// proseRule is a rule of a request the document states in words, says
// (which the document must contain); refuses tells which requests it
// refuses. The code must refuse them with 422.
type proseRule struct {
	says    string
	refuses func(q url.Values, h http.Header, body any) bool
}

// theCode maps every operationId of the document whose request carries a
// JSON body or query or header parameters to the code that decides on it.
// TestTheCodeAcceptsWhatTheDocumentAccepts fails for an operation missing
// here, so a new one cannot be left unchecked.
func theCode(t *testing.T) map[string]codeSeam {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	tokens := fntest.Tokens(t, time.Hour)
	admin := fntest.Bearer(t, tokens, uuid.New(), auth.RoleAdmin)
	customer := fntest.Bearer(t, tokens, uuid.New(), auth.RoleCustomer)
	as := func(bearer string, h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Header.Set("Authorization", bearer)
			h.ServeHTTP(w, r)
		})
	}
	// domain serves a seam that calls the code's decoding and validation
	// (check) in an fnhttp.Adapt, as the handler does, and flags success.
	domain := func(check func(r *http.Request) error) seam {
		s := seam{reached: new(atomic.Bool)}
		s.handler = fnhttp.Adapt(log, func(_ http.ResponseWriter, r *http.Request) error {
			if err := check(r); err != nil {
				return err
			}
			s.reached.Store(true)
			return reached
		})
		return s
	}
	id := uuid.MustParse(contract.PathID)
	return map[string]codeSeam{
		"register-user": {build: func(t *testing.T) seam {
			f := &fake{reached: new(atomic.Bool)}
			return seam{registeruser.New(f, log), f.reached}
		}, prose: []proseRule{{
			// The pattern lets in every character beyond ASCII but the
			// spaces: no portable pattern names the letters of every script.
			says: "Every character of a label beyond ASCII must be a letter",
			refuses: func(_ url.Values, _ http.Header, body any) bool {
				email, _ := body.(map[string]any)["email"].(string)
				_, domain, _ := strings.Cut(strings.ToLower(strings.TrimSpace(email)), "@")
				return strings.ContainsFunc(domain, func(r rune) bool { return r > unicode.MaxASCII && !unicode.IsLetter(r) })
			},
		}}},
		"login-user": {build: func(t *testing.T) seam {
			f := &fake{reached: new(atomic.Bool)}
			return seam{loginuser.New(f, nil, f, log), f.reached}
		}},
		"list-notifications": {build: func(t *testing.T) seam {
			f := &fake{reached: new(atomic.Bool)}
			return seam{as(customer, listnotifications.New(f, tokens, log)), f.reached}
		}, minted: map[string]string{"cursor": id.String()}},
		// The catalog's handlers take a catalogdb.Store: its decoding and
		// validation, in the handlers' order.
		"list-products": {build: func(t *testing.T) seam {
			return domain(func(r *http.Request) error {
				if _, err := fnhttp.QueryInt(r, "limit", catalog.DefaultLimit, 1, catalog.MaxLimit); err != nil {
					return err
				}
				if err := catalog.ValidateCategory(r.URL.Query().Get("category")); err != nil {
					return err
				}
				_, err := catalog.DecodeCursor(r.URL.Query().Get("cursor"))
				return err
			})
		}, minted: map[string]string{"cursor": catalog.EncodeCursor(id)}},
		"create-product": {build: func(t *testing.T) seam {
			return domain(func(r *http.Request) error {
				var d catalog.Draft
				if err := fnhttp.Decode(r, &d, fnhttp.MaxBody); err != nil {
					return err
				}
				_, err := catalog.NewProduct(d, time.Now())
				return err
			})
		}},
		"update-product": {build: func(t *testing.T) seam {
			stored, err := catalog.NewProduct(catalog.Draft{SKU: "MUG-1", Name: "Mug", Category: "kitchen", Price: catalog.Money{Amount: 100}}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			return domain(func(r *http.Request) error {
				var p catalog.Patch
				if err := fnhttp.Decode(r, &p, fnhttp.MaxBody); err != nil {
					return err
				}
				_, err := catalog.Apply(stored, p, time.Now())
				return err
			})
		}},
		// get-product reads If-None-Match only to compare it with the
		// product's ETag (304): nothing of its request is refused.
		"get-product": {build: func(t *testing.T) seam {
			return domain(func(*http.Request) error { return nil })
		}},
		"search-products": {build: func(t *testing.T) seam {
			f := &fake{reached: new(atomic.Bool)}
			return seam{searchproducts.New(f, log), f.reached}
		}, prose: []proseRule{{
			says: "`min_price` must not exceed `max_price`",
			refuses: func(q url.Values, _ http.Header, _ any) bool {
				lo, errLo := strconv.ParseInt(q.Get("min_price"), 10, 64)
				hi, errHi := strconv.ParseInt(q.Get("max_price"), 10, 64)
				return errLo == nil && errHi == nil && lo > hi
			},
		}}},
		"set-stock": {build: func(t *testing.T) seam {
			f := &fake{reached: new(atomic.Bool)}
			return seam{as(admin, setstock.New(f, f, tokens, log)), f.reached}
		}, minted: map[string]string{"If-Match": inventory.Stock{ProductID: id, Version: 5}.ETag()},
			// 428: a request with neither If-Match nor If-None-Match, as
			// the document's minimal one is (both are optional in the
			// schema, as one of them must be left out), is refused for
			// want of a precondition: the operation's description says
			// "Without either: 428".
			// A request with either header is not refused so.
			refusesState: func(req *http.Request, code int) bool {
				_, match := req.Header["If-Match"]
				_, noneMatch := req.Header["If-None-Match"]
				return code == http.StatusPreconditionRequired && !match && !noneMatch
			}},
		"set-cart-item": {build: func(t *testing.T) seam {
			f := &fake{reached: new(atomic.Bool)}
			return seam{as(customer, setcartitem.New(f, tokens, log)), f.reached}
		}},
		"list-orders": {build: func(t *testing.T) seam {
			f := &fake{reached: new(atomic.Bool)}
			return seam{as(customer, listorders.New(orderList{f}, tokens, log)), f.reached}
		}, minted: map[string]string{"cursor": id.String()}},
		"create-order": {build: func(t *testing.T) seam {
			f := &fake{reached: new(atomic.Bool)}
			return seam{as(customer, createorder.New(f, tokens, log)), f.reached}
		}},
		"get-order-timeline": {build: func(t *testing.T) seam {
			f := &fake{reached: new(atomic.Bool)}
			return seam{as(customer, getordertimeline.New(f, tokens, log)), f.reached}
		}, minted: map[string]string{"cursor": orders.TimelineCursor(5)}},
	}
}

// fake is every store the seams' handlers take, answering every question
// of state yes and every action with reached.
type fake struct{ reached *atomic.Bool }

func (f *fake) hit() error { f.reached.Store(true); return reached }

// register-user, login-user
func (f *fake) Register(context.Context, users.Registration) (users.User, error) {
	return users.User{}, f.hit()
}
func (f *fake) Authenticate(context.Context, users.Login) (users.User, error) {
	return users.User{}, f.hit()
}
func (f *fake) Allow(context.Context, string) error         { return nil }
func (f *fake) Count(context.Context, string) (bool, error) { return true, nil }
func (f *fake) Refund(context.Context, string)              {}

// list-notifications, list-orders
func (f *fake) List(context.Context, uuid.UUID, uuid.UUID, int) ([]notifications.Notification, bool, error) {
	return nil, false, f.hit()
}

// orderList is fake as list-orders' store.
type orderList struct{ *fake }

func (f orderList) List(context.Context, uuid.UUID, uuid.UUID, int) ([]orders.Order, uuid.UUID, error) {
	return nil, uuid.Nil, f.hit()
}

// search-products
func (f *fake) Upsert(context.Context, ...search.Document) error { return f.hit() }
func (f *fake) Delete(context.Context, uuid.UUID) error          { return f.hit() }
func (f *fake) Search(context.Context, search.Query) (search.Result, error) {
	return search.Result{}, f.hit()
}
func (f *fake) EnsureSettings(context.Context) error { return nil }

// set-stock
func (f *fake) GetProduct(context.Context, uuid.UUID) (catalogclient.Product, error) {
	return catalogclient.Product{}, nil
}
func (f *fake) SetOnHand(context.Context, uuid.UUID, int, inventory.Precondition) (inventory.Stock, error) {
	return inventory.Stock{}, f.hit()
}

// set-cart-item
func (f *fake) SetItem(context.Context, uuid.UUID, uuid.UUID, int) (cart.View, error) {
	return cart.View{}, f.hit()
}

// create-order: the checkout's own checks of the request's shape, as
// saga.admit makes them before anything else (everything after them is a
// question of state: stock, prices, the payment).
func (f *fake) Place(_ context.Context, _ auth.Identity, req orders.PlaceRequest, key string) (orders.Checkout, error) {
	if err := req.Validate(); err != nil {
		return orders.Checkout{}, err
	}
	if key != "" {
		if err := orders.ValidKey(key); err != nil {
			return orders.Checkout{}, err
		}
	}
	return orders.Checkout{}, f.hit()
}

// get-order-timeline
func (f *fake) GetVisible(context.Context, uuid.UUID, auth.Identity) (orders.Order, error) {
	return orders.Order{}, f.hit()
}
func (f *fake) Timeline(context.Context, uuid.UUID, int64, int) ([]orders.Step, int64, error) {
	return nil, 0, f.hit()
}

// TestTheCodeAcceptsWhatTheDocumentAccepts: every request the document
// accepts, of those derived from its schemas (contract.Boundaries: the
// minimal and maximal request of each operation with a body or parameters,
// and each with one value at a boundary of its schema), is accepted by the
// code: its decoding and validation, called in process (theCode), let it
// through to the store. A client that follows the document to the letter
// is never refused for the shape of its request, nor failed by it: a 400
// or 422 is a rule the document does not state, and any other answer
// before the store (a 500, a 404, a 413) is a disagreement too, but for
// the refusals of state the seam allows (refusesState).
//
// Refusals of state are out of reach by construction: the seams' stores
// say yes to every question of state (the product exists and is for sale,
// the account's password is checked after) and answer an action with 503
// once the request got to them. What the code may still refuse is what the
// document says in words and cannot say in a schema (theCode's prose
// rules): those requests must be refused with 422. The test also fails
// when the walk cannot build an operation's minimal or maximal request, or
// when no request of an operation got past the code's checks.
func TestTheCodeAcceptsWhatTheDocumentAccepts(t *testing.T) {
	for _, miss := range disagreements(t, load(t), theCode(t)) {
		t.Error(miss)
	}
}

// disagreements runs every request Boundaries derives from c through
// seams and lists what breaks the rule of
// TestTheCodeAcceptsWhatTheDocumentAccepts.
func disagreements(t *testing.T, c *contract.Contract, seams map[string]codeSeam) []string {
	t.Helper()
	bounds, err := c.Boundaries()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	byOp := map[string][]contract.Boundary{}
	for _, b := range bounds {
		byOp[b.Operation.ID] = append(byOp[b.Operation.ID], b)
	}
	ops := c.Operations()
	slices.SortFunc(ops, func(a, b contract.Operation) int { return strings.Compare(a.Path+" "+a.Method, b.Path+" "+b.Method) })
	for _, op := range ops {
		if len(byOp[op.ID]) == 0 {
			if _, ok := seams[op.ID]; ok {
				out = append(out, fmt.Sprintf("%s: theCode has a seam for it, but the document gives it no body or parameters", op.ID))
			}
			continue
		}
		s, ok := seams[op.ID]
		if !ok {
			out = append(out, fmt.Sprintf("%s %s (%s) takes a body or parameters, but theCode has no seam for it: add the code that decodes and validates its request", op.Method, op.Path, op.ID))
			continue
		}
		for _, r := range s.prose {
			if !c.Says(r.says) {
				out = append(out, fmt.Sprintf("%s: the document does not say %q, a rule theCode says it states", op.ID, r.says))
			}
		}
		checked, got := 0, 0
		refused := map[string][]string{} // by the value moved, the code's refusals
		var moved []string
		baseRefused := map[string]bool{} // a variant of a refused base would repeat its refusal
		for _, b := range byOp[op.ID] {
			if !b.Base && baseRefused[b.On] {
				continue
			}
			for name, v := range s.minted {
				if b.Query.Has(name) {
					b.Query.Set(name, v)
				}
				if _, ok := b.Header[http.CanonicalHeaderKey(name)]; ok {
					b.Header.Set(name, v)
				}
			}
			req := b.Request()
			req.Header.Set("Authorization", "Bearer x") // the token's validity is the edge's business
			if err := accepts(c, req, b.Body); err != nil {
				if b.Base {
					out = append(out, fmt.Sprintf("%s: the document refuses its %s request, built from its own schemas: %v\n\t%s", op.ID, b.Why, err, b.Body))
				}
				continue
			}
			checked++
			sm := s.build(t)
			req = b.Request()
			if b.Body != nil {
				req.Body = io.NopCloser(bytes.NewReader(b.Body))
			}
			rec := httptest.NewRecorder()
			sm.handler.ServeHTTP(rec, req)
			var problem struct{ Code, Detail string }
			_ = json.Unmarshal(rec.Body.Bytes(), &problem)
			prose := slices.IndexFunc(s.prose, func(r proseRule) bool { return r.refuses(b.Query, b.Header, b.Value) })
			switch {
			case prose >= 0:
				if rec.Code != http.StatusUnprocessableEntity {
					out = append(out, fmt.Sprintf("%s (%s): the document says %q, yet the code answered %d %s", op.ID, b.Why, s.prose[prose].says, rec.Code, problem.Code))
				}
			case sm.reached.Load():
				got++
			case rec.Code == http.StatusBadRequest || rec.Code == http.StatusUnprocessableEntity:
				baseRefused[b.Why] = b.Base
				what, _, _ := strings.Cut(b.Why, ":")
				if refused[what] == nil {
					moved = append(moved, what)
				}
				refused[what] = append(refused[what], fmt.Sprintf("%s: the code refuses it %d %s %q\n\t\t%s %s", b.Why,
					rec.Code, problem.Code, problem.Detail, req.URL.RequestURI(), shorten(b.Body)))
			case s.refusesState != nil && s.refusesState(req, rec.Code):
			default:
				out = append(out, fmt.Sprintf("%s: a request the document accepts, answered %d %s (%s): %q\n\t%s %s", op.ID,
					rec.Code, problem.Code, b.Why, problem.Detail, req.URL.RequestURI(), shorten(b.Body)))
			}
		}
		for _, what := range moved {
			list := refused[what]
			more := ""
			if len(list) > 1 {
				more = fmt.Sprintf("\n\t(and %d more requests with %s moved)", len(list)-1, what)
			}
			out = append(out, fmt.Sprintf("%s: a request the document accepts, refused by the code: %s%s", op.ID, list[0], more))
		}
		if got == 0 {
			out = append(out, fmt.Sprintf("%s: none of its %d requests the document accepts got past the code's checks (is its seam right?)", op.ID, checked))
		}
	}
	return out
}

// verdicts are the document's answers to the requests disagreements asks
// it about (Accepts), by document and request: the reverse check asks one
// document about the same requests once for each set of seams it holds to
// it (TestTheCodeAcceptsWhatTheDocumentAccepts, and two cases of
// TestADisagreementPlantedOnEitherSideFails), and the answer of a document
// to a request does not change.
var verdicts sync.Map // verdict → error (nil: accepted)

// verdict is a key of verdicts: the document, and the request as written
// (method, target, headers, body).
type verdict struct {
	c   *contract.Contract
	req string
}

// accepts is c.Accepts(req, body), asked once per document and request.
func accepts(c *contract.Contract, req *http.Request, body []byte) error {
	var key strings.Builder
	key.WriteString(req.Method + " " + req.URL.RequestURI() + "\n")
	_ = req.Header.Write(&key) // in the order of the names, each line once
	key.Write(body)
	k := verdict{c, key.String()}
	if err, ok := verdicts.Load(k); ok {
		err, _ := err.(error)
		return err
	}
	err := c.Accepts(req, body)
	verdicts.Store(k, err)
	return err
}

// shorten is body, cut to a line's length.
func shorten(body []byte) string {
	if r := []rune(string(body)); len(r) > 160 {
		return string(r[:160]) + "…"
	}
	return string(body)
}

// TestADisagreementPlantedOnEitherSideFails plants each kind of mistake
// the check above is for and wants it named: a document that accepts more
// than the code (a maxLength raised in a copy of api/openapi.yaml), code
// that refuses what the document accepts (register-user's validation with
// a name limit lowered to 99), code that fails a request the document
// accepts (set-cart-item answering 500 to a body holding 99), an operation
// without a seam, and a copy of
// the document without the sentence of a prose rule the code holds.
func TestADisagreementPlantedOnEitherSideFails(t *testing.T) {
	spec := strings.Replace(string(api.OpenAPI()),
		"name: {type: string, minLength: 1, maxLength: 100,", "name: {type: string, minLength: 1, maxLength: 101,", 1)
	if spec == string(api.OpenAPI()) {
		t.Fatal("Registration.name is not where the test plants its mistake")
	}
	looser, err := contract.Parse([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	stricter := theCode(t)
	stricter["register-user"] = codeSeam{build: func(t *testing.T) seam {
		f := &fake{reached: new(atomic.Bool)}
		h := registeruser.New(f, log)
		return seam{http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var body struct{ Name string }
			raw, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(raw))
			if json.Unmarshal(raw, &body) == nil && utf8.RuneCountInString(strings.TrimSpace(body.Name)) > 99 {
				fnhttp.ProblemFor(fault.E(fault.Invalid, fault.CodeInvalidRequest, "name must be at most 99 characters")).Write(w)
				return
			}
			h.ServeHTTP(w, r)
		}), f.reached}
	}}
	failing := theCode(t)
	cartItem := failing["set-cart-item"].build
	failing["set-cart-item"] = codeSeam{build: func(t *testing.T) seam {
		s := cartItem(t)
		return seam{http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			raw, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(raw))
			if bytes.Contains(raw, []byte("99")) {
				fnhttp.ProblemFor(fault.Internalf("the code broke on 99")).Write(w)
				return
			}
			s.handler.ServeHTTP(w, r)
		}), s.reached}
	}}
	unseamed := theCode(t)
	delete(unseamed, "set-cart-item")
	silent, err := contract.Parse([]byte(strings.ReplaceAll(string(api.OpenAPI()),
		"`min_price` must not exceed `max_price`", "`min_price` and `max_price` bound the price")))
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		doc   *contract.Contract
		seams map[string]codeSeam
		want  string
	}{
		{"the document's maxLength raised", looser, theCode(t), `register-user: a request the document accepts, refused by the code: body.name: 101 characters`},
		{"the code's limit lowered", load(t), stricter, `register-user: a request the document accepts, refused by the code: body.name: 100 characters`},
		{"the code failing a request", load(t), failing, `set-cart-item: a request the document accepts, answered 500 internal`},
		{"an operation without a seam", load(t), unseamed, `PUT /api/v1/cart/items/{product_id} (set-cart-item) takes a body or parameters, but theCode has no seam for it`},
		{"a prose rule the document no longer says", silent, theCode(t), "search-products: the document does not say \"`min_price` must not exceed `max_price`\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := disagreements(t, tc.doc, tc.seams)
			if !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, tc.want) }) {
				t.Errorf("want a failure starting %q, got %q", tc.want, got)
			}
		})
	}
}

// TestBoundariesReadTheSiblingsOfARef: a keyword beside a $ref counts
// (OpenAPI 3.1: a schema's $ref and its other keywords all apply), so the
// walk checks it as it checks the target's: an unknown one fails the walk,
// a maxLength beside a $ref bounds the strings written. A path parameter's
// schema is checked too.
func TestBoundariesReadTheSiblingsOfARef(t *testing.T) {
	plant := func(t *testing.T, old, new string) *contract.Contract {
		t.Helper()
		spec := strings.Replace(string(api.OpenAPI()), old, new, 1)
		if spec == string(api.OpenAPI()) {
			t.Fatalf("%q is not where the test plants its change", old)
		}
		c, err := contract.Parse([]byte(spec))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	const draftSKU = "      required: [sku, name, category, price]\n      properties:\n        sku: {$ref: '#/components/schemas/SKU'}"
	for _, tc := range []struct{ name, old, new string }{
		{"an unknown keyword beside a $ref", draftSKU, strings.Replace(draftSKU, "SKU'}", "SKU', frobnicate: 1}", 1)},
		{"an unknown keyword in a path parameter's schema", "      schema: {type: string}\n    ProductID:", "      schema: {type: string, frobnicate: 1}\n    ProductID:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := plant(t, tc.old, tc.new)
			_, err := c.Boundaries()
			if err == nil || !strings.Contains(err.Error(), "not one Boundaries knows") {
				t.Errorf("Boundaries: %v, want the keyword %q named as not one Boundaries knows", err, "frobnicate")
			}
		})
	}
	t.Run("a maxLength beside a $ref", func(t *testing.T) {
		c := plant(t, draftSKU, strings.Replace(draftSKU, "SKU'}", "SKU', maxLength: 10}", 1))
		bounds, err := c.Boundaries("create-product")
		if err != nil {
			t.Fatal(err)
		}
		longest := 0
		for _, b := range bounds {
			sku, _ := b.Value.(map[string]any)["sku"].(string)
			longest = max(longest, utf8.RuneCountInString(sku))
		}
		if longest != 10 {
			t.Errorf("the longest sku written is %d characters, want 10 (maxLength beside the $ref)", longest)
		}
	})
}

// TestBoundariesIntersectAllOf: every part of an allOf applies, so the
// walk writes values all of them accept: the largest minimum, the smallest
// maximum, the enum values every part lists; parts of conflicting formats
// fail the walk. A maxLength of 50 in an allOf of a field of maxLength 100
// bounds its strings at 50, whichever part says it first.
func TestBoundariesIntersectAllOf(t *testing.T) {
	const name = "name: {type: string, minLength: 1, maxLength: 100,"
	for _, tc := range []struct{ name, new string }{
		{"the allOf's bound the smaller", name + " allOf: [{maxLength: 50}],"},
		{"the field's bound the smaller", "name: {type: string, minLength: 1, maxLength: 50, allOf: [{maxLength: 100}],"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := strings.Replace(string(api.OpenAPI()), name, tc.new, 1)
			if spec == string(api.OpenAPI()) {
				t.Fatal("Registration.name is not where the test plants its allOf")
			}
			c, err := contract.Parse([]byte(spec))
			if err != nil {
				t.Fatal(err)
			}
			bounds, err := c.Boundaries("register-user")
			if err != nil {
				t.Fatal(err)
			}
			longest := 0
			for _, b := range bounds {
				n, _ := b.Value.(map[string]any)["name"].(string)
				longest = max(longest, utf8.RuneCountInString(n))
			}
			if longest != 50 {
				t.Errorf("the longest name written is %d characters, want 50", longest)
			}
		})
	}
	t.Run("conflicting formats", func(t *testing.T) {
		spec := strings.Replace(string(api.OpenAPI()), name, name+" allOf: [{format: uuid}, {format: date-time}],", 1)
		c, err := contract.Parse([]byte(spec))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Boundaries("register-user"); err == nil || !strings.Contains(err.Error(), "format") {
			t.Errorf("Boundaries: %v, want the conflicting formats named", err)
		}
	})
}
