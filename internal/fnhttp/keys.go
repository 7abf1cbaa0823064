package fnhttp

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/shopfaas/shop/internal/fault"
)

// The key rule: encoding/json matches an object's key to a struct field
// whatever its case ({"Quantity":3} sets quantity) and keeps the last of a
// repeated key ({"quantity":1,"quantity":8} is 8), so DisallowUnknownFields
// alone let through bodies the contract calls unknown fields, and a repeated
// key let a proxy or a log that reads the first see another body than the
// function, which reads the last. DecodeBytes therefore refuses, with the
// 400 invalid_json of an unknown field and a detail naming the key and where
// it is, any key of an object decoded into a struct that is not one of its
// fields' names exactly, and any key an object holds twice, at any depth. The
// keys of an object decoded into a map, an interface or a json.RawMessage are
// data, not names: any case, but each once.
//
// A type that decodes itself (a json.Unmarshaler) reads its JSON its own
// way, so its keys are data unless it names the type it decodes its JSON
// into with a JSONShape method (JSONShaper): orders.ItemList's lines,
// catalog.Optional's value.
//
// The check is one pass over the body after encoding/json accepted it (so
// the scan meets valid JSON only), allocation-free for a body of struct
// objects once the destination's type has been seen (its field names are
// kept per type, as encoding/json keeps its own).

// JSONShaper is a json.Unmarshaler that tells DecodeBytes the type it
// decodes its JSON into, whose field names the body's keys must then match
// exactly: JSONShape returns a value of that type (a nil pointer to it does).
// A nil answer leaves the type's keys data.
type JSONShaper interface {
	JSONShape() any
}

// shape is what a JSON value decodes into, as far as its keys go.
type shape struct {
	kind   shapeKind
	fields map[string]shapeField // object: its fields' exact names
	names  []string              // object: the same names, sorted (for details)
	elem   *shape                // dict: its values; list: its elements
}

type shapeField struct {
	index int // the bit of the field in an object's set of keys seen
	shape *shape
}

type shapeKind uint8

const (
	data   shapeKind = iota // keys are data, checked only for repeats
	object                  // a struct: keys are its fields' names
	dict                    // a map: keys are data, values are elem
	list                    // a slice or an array of elem
)

// opaque is the shape of a value whose keys are data all the way down.
var opaque = &shape{kind: data}

var (
	shapes  sync.Map // reflect.Type → *shape, complete shapes only
	shapeMu sync.Mutex

	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	shaperType          = reflect.TypeFor[JSONShaper]()
)

// shapeOf is the shape of t, built once per type.
func shapeOf(t reflect.Type) *shape {
	if t == nil {
		return opaque
	}
	if s, ok := shapes.Load(t); ok {
		return s.(*shape)
	}
	shapeMu.Lock()
	defer shapeMu.Unlock()
	building := map[reflect.Type]*shape{}
	s := buildShape(t, building)
	for t, s := range building {
		shapes.Store(t, s)
	}
	return s
}

// buildShape builds t's shape; building holds the shapes begun in this
// build, so that a recursive type refers to its own.
func buildShape(t reflect.Type, building map[reflect.Type]*shape) *shape {
	// Down to the type whose keys count: encoding/json looks for a
	// json.Unmarshaler at every pointer on the way, and a JSONShaper names
	// the type it decodes into (up to a few times: a loop is data).
	for range 8 {
		if t == nil {
			return opaque
		}
		if s, ok := shapes.Load(t); ok {
			return s.(*shape)
		}
		if s, ok := building[t]; ok {
			return s
		}
		switch {
		case t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType):
			if !reflect.PointerTo(t).Implements(shaperType) {
				return opaque
			}
			t = reflect.TypeOf(reflect.New(t).Interface().(JSONShaper).JSONShape())
			continue
		case t.Implements(textUnmarshalerType) || reflect.PointerTo(t).Implements(textUnmarshalerType):
			return opaque // read from a JSON string: no keys
		case t.Kind() == reflect.Pointer:
			t = t.Elem()
			continue
		}
		s := &shape{kind: data}
		building[t] = s
		switch t.Kind() {
		case reflect.Struct:
			s.kind, s.fields = object, map[string]shapeField{}
			for i, f := range jsonFields(t) {
				s.fields[f.name] = shapeField{index: i, shape: buildShape(f.typ, building)}
				s.names = append(s.names, f.name)
			}
			slices.Sort(s.names)
		case reflect.Map:
			s.kind, s.elem = dict, buildShape(t.Elem(), building)
		case reflect.Slice, reflect.Array:
			s.kind, s.elem = list, buildShape(t.Elem(), building)
		}
		return s
	}
	return opaque
}

// jsonField is a field as encoding/json names it.
type jsonField struct {
	name   string
	depth  int // how deep in embedded structs
	tagged bool
	typ    reflect.Type
}

// jsonFields lists the fields encoding/json decodes an object's keys into,
// by its rules (encoding/json's typeFields): exported fields and those
// promoted from embedded structs, each named by its json tag or else its Go
// name, "-" left out; of fields with one name the shallowest wins, a tagged
// one over an untagged one at the same depth, and two alike drop both.
func jsonFields(t reflect.Type) []jsonField {
	type embedded struct {
		typ   reflect.Type
		depth int
	}
	var found []jsonField
	next := []embedded{{t, 0}}
	var count, nextCount map[reflect.Type]int // embeddings of a type at this depth, the next
	visited := map[reflect.Type]bool{}
	for len(next) > 0 {
		current := next
		next, count, nextCount = nil, nextCount, map[reflect.Type]int{}
		for _, e := range current {
			if visited[e.typ] {
				continue
			}
			visited[e.typ] = true
			for i := range e.typ.NumField() {
				sf := e.typ.Field(i)
				if sf.Anonymous {
					ft := sf.Type
					if ft.Kind() == reflect.Pointer {
						ft = ft.Elem()
					}
					if !sf.IsExported() && ft.Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, _, _ := strings.Cut(tag, ",")
				if !validTagName(name) {
					name = ""
				}
				ft := sf.Type
				if ft.Name() == "" && ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if name != "" || !sf.Anonymous || ft.Kind() != reflect.Struct {
					f := jsonField{name: name, depth: e.depth, tagged: name != "", typ: sf.Type}
					if f.name == "" {
						f.name = sf.Name
					}
					found = append(found, f)
					if count[e.typ] > 1 {
						found = append(found, f) // one struct embedded twice at a depth: ambiguous
					}
					continue
				}
				if nextCount[ft]++; nextCount[ft] == 1 {
					next = append(next, embedded{ft, e.depth + 1})
				}
			}
		}
	}
	slices.SortStableFunc(found, func(a, b jsonField) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		if a.depth != b.depth {
			return a.depth - b.depth
		}
		switch {
		case a.tagged == b.tagged:
			return 0
		case a.tagged:
			return -1
		}
		return 1
	})
	var out []jsonField
	for i := 0; i < len(found); {
		j := i + 1
		for j < len(found) && found[j].name == found[i].name {
			j++
		}
		if j-i == 1 || found[i].depth != found[i+1].depth || found[i].tagged != found[i+1].tagged {
			out = append(out, found[i])
		}
		i = j
	}
	return out
}

// validTagName is encoding/json's test of a tag's name.
func validTagName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			return false
		}
	}
	return true
}

// checkKeys applies the key rule to body, a JSON value encoding/json has
// decoded into dst (valid JSON, nothing after it but white space).
func checkKeys(body []byte, dst any) error {
	s := keyScan{b: body}
	if e := s.value(shapeOf(reflect.TypeOf(dst))); e != nil {
		return e.fault()
	}
	return nil
}

// keyScan walks a valid JSON text.
type keyScan struct {
	b []byte
	i int
}

// keyError is a key that breaks the rule; where is the path to its object,
// innermost first, gathered as the scan unwinds.
type keyError struct {
	key    string
	repeat bool
	names  []string // unknown: the object's field names
	where  []string
}

func (e *keyError) in(segment string) *keyError {
	e.where = append(e.where, segment)
	return e
}

func (e *keyError) fault() error {
	var path strings.Builder
	for i := len(e.where) - 1; i >= 0; i-- {
		if path.Len() > 0 && !strings.HasPrefix(e.where[i], "[") {
			path.WriteByte('.')
		}
		path.WriteString(e.where[i])
	}
	in := ""
	if path.Len() > 0 {
		in = " in " + path.String()
	}
	if e.repeat {
		return fault.E(fault.Malformed, fault.CodeInvalidJSON, fmt.Sprintf("key %q repeated%s: each key may appear once in an object", e.key, in))
	}
	msg := fmt.Sprintf("unknown field %q%s", e.key, in)
	for _, n := range e.names {
		if strings.EqualFold(n, e.key) {
			msg += fmt.Sprintf(" (field names match exactly, case included: %q)", n)
			break
		}
	}
	return fault.E(fault.Malformed, fault.CodeInvalidJSON, msg)
}

func (s *keyScan) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *keyScan) value(sh *shape) *keyError {
	s.space()
	switch s.b[s.i] {
	case '{':
		return s.object(sh)
	case '[':
		return s.array(sh)
	case '"':
		s.str()
	default: // a number, true, false or null
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', ']', '}', ' ', '\t', '\n', '\r':
				return nil
			}
			s.i++
		}
	}
	return nil
}

// str skips a string, s.b[start:s.i] with its quotes; escaped reports
// whether it holds an escape.
func (s *keyScan) str() (start int, escaped bool) {
	start = s.i
	s.i++ // the opening quote
	end := s.i + bytes.IndexByte(s.b[s.i:], '"')
	if bytes.IndexByte(s.b[s.i:end], '\\') < 0 {
		s.i = end + 1
		return start, false
	}
	for {
		switch s.b[s.i] {
		case '\\':
			s.i += 2
		case '"':
			s.i++
			return start, true
		default:
			s.i++
		}
	}
}

func (s *keyScan) array(sh *shape) *keyError {
	s.i++ // [
	elem := opaque
	if sh.kind == list {
		elem = sh.elem
	}
	for n := 0; ; n++ {
		s.space()
		if s.b[s.i] == ']' {
			s.i++
			return nil
		}
		if e := s.value(elem); e != nil {
			return e.in("[" + strconv.Itoa(n) + "]")
		}
		s.space()
		if s.b[s.i] == ',' {
			s.i++
		}
	}
}

func (s *keyScan) object(sh *shape) *keyError {
	s.i++ // {
	var (
		fields uint64 // an object's: the fields seen, by index
		keys   keySet // the other keys seen
	)
	for {
		s.space()
		if s.b[s.i] == '}' {
			s.i++
			return nil
		}
		start, escaped := s.str()
		key := s.b[start+1 : s.i-1]
		if escaped { // as encoding/json reads it
			var k string
			_ = json.Unmarshal(s.b[start:s.i], &k)
			key = []byte(k)
		}
		child := opaque
		switch sh.kind {
		case object:
			f, ok := sh.fields[string(key)]
			if !ok {
				return &keyError{key: string(key), names: sh.names}
			}
			if f.index < 64 {
				if fields&(1<<f.index) != 0 {
					return &keyError{key: string(key), repeat: true}
				}
				fields |= 1 << f.index
			} else if !keys.add(key) {
				return &keyError{key: string(key), repeat: true}
			}
			child = f.shape
		case dict:
			child = sh.elem
			fallthrough
		default:
			if !keys.add(key) {
				return &keyError{key: string(key), repeat: true}
			}
		}
		s.space()
		s.i++ // :
		if e := s.value(child); e != nil {
			return e.in(string(key))
		}
		s.space()
		if s.b[s.i] == ',' {
			s.i++
		}
	}
}

// keySet is the keys of one object: a few in place, more in a map.
type keySet struct {
	few  [8][]byte
	n    int
	many map[string]struct{}
}

// add adds key and reports whether it was not there yet.
func (k *keySet) add(key []byte) bool {
	if k.many != nil {
		if _, ok := k.many[string(key)]; ok {
			return false
		}
		k.many[string(key)] = struct{}{}
		return true
	}
	for _, seen := range k.few[:k.n] {
		if bytes.Equal(seen, key) {
			return false
		}
	}
	if k.n < len(k.few) {
		k.few[k.n] = key
		k.n++
		return true
	}
	k.many = make(map[string]struct{}, 2*len(k.few))
	for _, seen := range k.few {
		k.many[string(seen)] = struct{}{}
	}
	k.many[string(key)] = struct{}{}
	return true
}
