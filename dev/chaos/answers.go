package chaos

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/google/uuid"
)

// definite reports whether an answer ends a request's retries: neither a
// 5xx, a 429 nor a 409 request_in_progress, which says "retry later" (the
// first attempt with this key may have died with its process).
func definite(code int, body []byte) bool {
	return code < 500 && code != http.StatusTooManyRequests &&
		(code != http.StatusConflict || !bytes.Contains(body, []byte("request_in_progress")))
}

// answerTally counts the answers that were not definite (and the transport
// errors) by what they were: the method, the path with its ids as {id}, the
// status and the problem's code. The summary lists them, so a run whose
// customers were refused says by what, with the first answer's detail; a
// count of 5xx alone said nothing of why (the landing CI of 2026-12-07 saw 124
// of 160 requests answered 5xx and could tell no more).
type answerTally struct {
	mu    sync.Mutex
	kinds map[string]*answerKind
}

type answerKind struct {
	n       int
	example string // the first one's problem detail (or title), or error
}

// add counts one answer that was not definite: code 0 with err for a
// transport error.
func (t *answerTally) add(method, path string, code int, body []byte, err error) {
	var key, example string
	if err != nil {
		key, example = fmt.Sprintf("%s %s transport error", method, pathPattern(path)), err.Error()
	} else {
		var p struct{ Code, Title, Detail string }
		_ = json.Unmarshal(body, &p)
		key = strings.TrimSpace(fmt.Sprintf("%s %s %d %s", method, pathPattern(path), code, p.Code))
		example = cmp.Or(p.Detail, p.Title, strings.TrimSpace(string(body[:min(len(body), 200)])))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.kinds == nil {
		t.kinds = map[string]*answerKind{}
	}
	k := t.kinds[key]
	if k == nil {
		k = &answerKind{example: example}
		t.kinds[key] = k
	}
	k.n++
}

// lines lists the kinds, the most frequent first (then by name), at most
// most of them, each "N × kind: example".
func (t *answerTally) lines(most int) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := make([]string, 0, len(t.kinds))
	for k := range t.kinds {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(t.kinds[b].n-t.kinds[a].n, strings.Compare(a, b))
	})
	var out []string
	for i, k := range keys {
		if i == most {
			out = append(out, fmt.Sprintf("… and %d more kinds", len(keys)-most))
			break
		}
		line := fmt.Sprintf("%d × %s", t.kinds[k].n, k)
		if e := t.kinds[k].example; e != "" {
			line += ": " + e
		}
		out = append(out, line)
	}
	return out
}

// pathPattern is path with each segment that is a UUID written {id}.
func pathPattern(path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if _, err := uuid.Parse(s); err == nil && len(s) == 36 {
			segs[i] = "{id}"
		}
	}
	return strings.Join(segs, "/")
}

// errorTail keeps the first and the last lines of the processes' output
// that were logged at error level (the functions' JSON lines, the
// connectors' text ones), for a failed run's summary: the first tell what
// went wrong while the customers ordered, the last what was still wrong as
// the shop settled. The runtime writes one whole line per Write; a partial
// one is joined with the next.
type errorTail struct {
	mu      sync.Mutex
	max     int // of the first, and of the last
	partial []byte
	first   []string
	lines   []string // the last, after first is full
	dropped int      // between first and lines
}

func (e *errorTail) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.partial = append(e.partial, p...)
	for {
		i := bytes.IndexByte(e.partial, '\n')
		if i < 0 {
			break
		}
		line := string(e.partial[:i])
		e.partial = e.partial[i+1:]
		if !strings.Contains(line, `"level":"ERROR"`) && !strings.Contains(line, "level=ERROR") {
			continue
		}
		if len(line) > 400 {
			line = line[:400] + " …"
		}
		if len(e.first) < e.max {
			e.first = append(e.first, line)
			continue
		}
		e.lines = append(e.lines, line)
		if len(e.lines) > e.max {
			e.dropped += len(e.lines) - e.max
			e.lines = slices.Delete(e.lines, 0, len(e.lines)-e.max)
		}
	}
	if len(e.partial) > 64<<10 { // no newline in sight: drop it
		e.partial = e.partial[:0]
	}
	return len(p), nil
}

// kept returns the first lines, a line counting those dropped between (if
// any), then the last, oldest first.
func (e *errorTail) kept() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := slices.Clone(e.first)
	if e.dropped > 0 {
		out = append(out, fmt.Sprintf("… %d lines at error level not kept …", e.dropped))
	}
	return append(out, e.lines...)
}

// killsByTarget lists the kills per function or connector, the most killed
// first (then by name): "create-order 2, rabbitmq 2, get-product 1".
func killsByTarget(killed map[string]int) string {
	names := make([]string, 0, len(killed))
	for n := range killed {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int { return cmp.Or(killed[b]-killed[a], strings.Compare(a, b)) })
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %d", n, killed[n])
	}
	return strings.Join(parts, ", ")
}
