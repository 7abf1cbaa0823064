package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestRunJSONAgainstLoopback(t *testing.T) {
	var sawHeader, sawBody bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := new(bytes.Buffer)
		_, _ = buf.ReadFrom(r.Body)
		sawHeader = sawHeader || r.Header.Get("X-Test") == "yes"
		sawBody = sawBody || (r.Method == http.MethodPost && buf.String() == `{"a":1}`)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	var out bytes.Buffer
	err := run(context.Background(), []string{"-c", "1", "-n", "20", "-d", "0", "-X", "POST", "-H", "X-Test: yes",
		"-body", `{"a":1}`, "-json", srv.URL}, &out)
	if err != nil {
		t.Fatal(err)
	}
	var s summary
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if s.Requests != 20 || s.Status["202"] != 20 || s.Errors != 0 || !sawHeader || !sawBody {
		t.Errorf("summary %+v, header seen %v, body seen %v", s, sawHeader, sawBody)
	}
}

func TestRunRefusesNonLoopbackAndEndlessRuns(t *testing.T) {
	for _, args := range [][]string{
		{"-n", "1", "http://192.0.2.1/"},
		{"-n", "1", "http://example.com/"},
		{"-n", "1", "ftp://127.0.0.1/"},
		{"-d", "0", "http://127.0.0.1:1/"},
		{"-c", "0", "-n", "1", "http://127.0.0.1:1/"},
		// No per-request timeout: a request that never gets an answer
		// holds the run, and Ctrl-C (caught) does not end it.
		{"-timeout", "0", "-n", "1", "http://127.0.0.1:1/"},
		{"-timeout", "-1s", "-n", "1", "http://127.0.0.1:1/"},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), args, &out); err == nil {
			t.Errorf("%s: accepted", strings.Join(args, " "))
		}
	}
}

// A redirect is followed only to a loopback address: checkLoopback held for
// the URL given, and the client then followed a 3xx anywhere.
func TestRunFollowsNoRedirectOffThisMachine(t *testing.T) {
	var followed atomic.Int32
	dest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		followed.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer dest.Close()
	for _, tc := range []struct {
		location string
		want     string // in the output
		followed int32
	}{
		// Another loopback address is followed.
		{dest.URL + "/there", `"204": 1`, 1},
		// 192.0.2.1 (TEST-NET-1) is not: the run counts an error naming it.
		{"http://192.0.2.1:9/there", "192.0.2.1 is not a loopback address", 0},
	} {
		followed.Store(0)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, tc.location, http.StatusTemporaryRedirect)
		}))
		var out, outJSON bytes.Buffer
		err := run(context.Background(), []string{"-c", "1", "-n", "1", "-d", "0", "-timeout", "2s", srv.URL}, &out)
		if err == nil {
			err = run(context.Background(), []string{"-c", "1", "-n", "1", "-d", "0", "-timeout", "2s", "-json", srv.URL}, &outJSON)
		}
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := out.String() + outJSON.String(); !strings.Contains(got, tc.want) {
			t.Errorf("redirect to %s: output does not hold %q:\n%s", tc.location, tc.want, got)
		}
		if n := followed.Load(); n != 2*tc.followed {
			t.Errorf("redirect to %s: %d request(s) reached the destination, want %d", tc.location, n, 2*tc.followed)
		}
	}
}
