package fnhttp

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/shopfaas/shop/internal/fault"
)

// The one input rule for text: every string a client sends — each string of a
// decoded JSON body (values and object keys, at any depth), each query
// parameter (names and values) and the request path — is valid UTF-8 and holds
// no NUL or other control character (C0, DEL, C1). A struct field tagged
// `text:"multiline"` (a product description) may also hold tab, line feed and
// carriage return; the tag applies to everything below the field. A field
// tagged `text:"opaque"` is left out of the rule, everything below it too:
// neither checked nor named in an answer. It is for a secret the handler only
// compares and never stores as text (a login's password: an account
// registered before the rule may hold a tab in its password, and a 422
// naming the character would tell something about it); the body is valid
// UTF-8 all the same (Decode checks it whole). Text that breaks the rule is
// refused with 422 invalid_text before it reaches a database, a cache or a
// search backend; SQLSTATEs of bad text are the second net (BadText).

// TextTag is the struct tag key that relaxes the rule for one field:
// `text:"multiline"` or `text:"opaque"`.
const TextTag = "text"

// CheckText reports whether s satisfies the text rule; multiline allows tab,
// LF and CR. The error is fault.Invalid with code invalid_text and names
// field.
func CheckText(field, s string, multiline bool) error {
	if !utf8.ValidString(s) {
		return textErr(field, "is not valid UTF-8")
	}
	for _, r := range s {
		if !isControl(r) {
			continue
		}
		if multiline && (r == '\t' || r == '\n' || r == '\r') {
			continue
		}
		if r == 0 {
			return textErr(field, "contains a NUL character")
		}
		return textErr(field, fmt.Sprintf("contains the control character %U", r))
	}
	return nil
}

// isControl is C0, DEL and C1 (Unicode category Cc).
func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r <= 0x9f) }

func textErr(field, what string) error {
	if field == "" {
		field = "text"
	}
	return fault.E(fault.Invalid, fault.CodeInvalidText, fmt.Sprintf("%s %s", field, what))
}

// CheckValues applies the text rule to every name and value of a query or
// form; what names the source in the message ("query parameter").
func CheckValues(what string, v url.Values) error {
	for name, vals := range v {
		if err := CheckText(what+" name", name, false); err != nil {
			return err
		}
		for _, s := range vals {
			if err := CheckText(fmt.Sprintf("%s %q", what, name), s, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// CheckRequestText applies the text rule to r's path and query. fnserve runs
// it before every function, so no handler sees a query parameter that breaks
// the rule; a query that does not parse is refused too (400). A path that
// breaks the rule names nothing (every path parameter of the contract is an
// id, and "anything else is answered 404"): fault.NotFound.
//
// It also gives every handler one value per parameter, as the contract
// says: a value sent empty is one left out, so it drops those from r's query
// (?limit=&limit=5 is limit 5 to the handler, as to the contract), and a
// parameter sent with a value more than once is refused (422
// invalid_request) rather than read as its first value.
func CheckRequestText(r *http.Request) error {
	if err := CheckText("the path", r.URL.Path, false); err != nil {
		return fault.Wrap(err, fault.NotFound, fault.CodeNotFound, "no such resource")
	}
	if r.URL.RawQuery == "" {
		return nil
	}
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return fault.Wrap(err, fault.Malformed, fault.CodeInvalidRequest, "the query string is malformed")
	}
	if err := CheckValues("query parameter", v); err != nil {
		return err
	}
	return oneValueEach(r, v)
}

// oneValueEach drops the empty values of v (r's query) and refuses a
// parameter still sent more than once, naming the alphabetically first such
// name; r's query is rewritten only when a value was dropped.
func oneValueEach(r *http.Request, v url.Values) error {
	empty := DropEmptyValues(v)
	var twice []string
	for name, vals := range v {
		if len(vals) > 1 {
			twice = append(twice, name)
		}
	}
	if len(twice) > 0 {
		return fault.E(fault.Invalid, fault.CodeInvalidRequest,
			fmt.Sprintf("query parameter %q is sent more than once: send it once", slices.Min(twice)))
	}
	if empty {
		r.URL.RawQuery = v.Encode()
	}
	return nil
}

// DropEmptyValues removes from v every value sent empty, and the parameters
// left with none (a parameter sent empty is one left out, as the contract
// says), and reports whether it removed any. The contract's recorder reads a
// request's query the same way.
func DropEmptyValues(v url.Values) bool {
	dropped := false
	for name, vals := range v {
		kept := slices.DeleteFunc(vals, func(s string) bool { return s == "" })
		switch {
		case len(kept) == len(vals):
		case len(kept) == 0:
			delete(v, name)
			dropped = true
		default:
			v[name] = kept
			dropped = true
		}
	}
	return dropped
}

// Query returns the query parameter name (empty when absent) once it
// satisfies the text rule.
func Query(r *http.Request, name string) (string, error) {
	s := r.URL.Query().Get(name)
	if err := CheckText(fmt.Sprintf("query parameter %q", name), s, false); err != nil {
		return "", err
	}
	return s, nil
}

// textClean reports whether every string reachable from v (what a decoder
// filled in) satisfies the text rule: checkDecoded's walk, over the same
// fields in the same order, without naming anything. A valid body, the
// usual one, costs no allocation (checkDecoded built every field's JSON path
// and name as it went: 22 of the 42 allocations of decoding an order);
// checkDecoded runs only to name what breaks the rule.
func textClean(v reflect.Value, multiline bool) bool {
	switch v.Kind() {
	case reflect.String:
		return CheckText("", v.String(), multiline) == nil
	case reflect.Pointer, reflect.Interface:
		return v.IsNil() || textClean(v.Elem(), multiline)
	case reflect.Struct:
		for _, f := range textFieldsOf(v.Type()) {
			if !textClean(v.Field(f.index), multiline || f.multiline) {
				return false
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return true // []byte and json.RawMessage: not text
		}
		for i := range v.Len() {
			if !textClean(v.Index(i), multiline) {
				return false
			}
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			if k := it.Key(); k.Kind() == reflect.String && CheckText("", k.String(), false) != nil {
				return false
			}
			if !textClean(it.Value(), multiline) {
				return false
			}
		}
	}
	return true
}

// textField is a struct field checkDecoded and textClean walk: exported,
// not tagged json:"-" nor text:"opaque".
type textField struct {
	index     int
	multiline bool // tagged text:"multiline"
}

// textFields holds each struct type's textFieldsOf.
var textFields sync.Map // reflect.Type → []textField

// textFieldsOf lists t's fields that the text rule applies to, in order.
func textFieldsOf(t reflect.Type) []textField {
	if fs, ok := textFields.Load(t); ok {
		return fs.([]textField)
	}
	var fs []textField
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); !f.IsExported() || name == "-" || f.Tag.Get(TextTag) == "opaque" {
			continue
		}
		fs = append(fs, textField{index: i, multiline: f.Tag.Get(TextTag) == "multiline"})
	}
	textFields.Store(t, fs)
	return fs
}

// checkDecoded applies the text rule to every string reachable from v (what a
// decoder filled in), naming the field by its JSON path.
func checkDecoded(v reflect.Value, path string, multiline bool) error {
	switch v.Kind() {
	case reflect.String:
		return CheckText(fieldName(path), v.String(), multiline)
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return checkDecoded(v.Elem(), path, multiline)
	case reflect.Struct:
		t := v.Type()
		// A type that decodes itself (catalog.Optional) has no JSON names
		// of its own: its strings are the field's.
		_, self := reflect.PointerTo(t).MethodByName("UnmarshalJSON")
		for _, tf := range textFieldsOf(t) {
			f := t.Field(tf.index)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" && !f.Anonymous {
				name = f.Name
			}
			sub := path
			if !self {
				sub = join(path, name)
			}
			if err := checkDecoded(v.Field(tf.index), sub, multiline || tf.multiline); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return nil // []byte and json.RawMessage: not text
		}
		for i := range v.Len() {
			if err := checkDecoded(v.Index(i), fmt.Sprintf("%s[%d]", path, i), multiline); err != nil {
				return err
			}
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			k := it.Key()
			if k.Kind() == reflect.String {
				if err := CheckText(fieldName(path)+" key", k.String(), false); err != nil {
					return err
				}
			}
			if err := checkDecoded(it.Value(), join(path, fmt.Sprint(k.Interface())), multiline); err != nil {
				return err
			}
		}
	}
	return nil
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	if name == "" {
		return path
	}
	return path + "." + name
}

func fieldName(path string) string {
	if path == "" {
		return "the body"
	}
	return fmt.Sprintf("field %q", path)
}

// badTextStates are the SQLSTATEs PostgreSQL answers for text it cannot
// store or index: character_not_in_repertoire (a NUL byte, invalid UTF-8),
// untranslatable_character, and program_limit_exceeded (a value too large
// for an index row).
var badTextStates = map[string]bool{"22021": true, "22P05": true, "54000": true}

// BadText turns err into a 422 invalid_text fault when a database refused the
// request's text (the second net behind the text rule: a store that lets
// such text through reports it as unavailable or internal). It returns err
// unchanged otherwise. It finds the SQLSTATE through the SQLState method
// pgx's error has, so this package does not depend on a driver.
func BadText(err error) error {
	if IsBadText(err) {
		return fault.Wrap(err, fault.Invalid, fault.CodeInvalidText, "a text value contains characters or a size that cannot be stored")
	}
	return err
}

// IsBadText reports whether a database refused err's text (BadText).
func IsBadText(err error) bool {
	var st interface{ SQLState() string }
	return errors.As(err, &st) && badTextStates[st.SQLState()]
}
