package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
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
	} {
		var out bytes.Buffer
		if err := run(context.Background(), args, &out); err == nil {
			t.Errorf("%s: accepted", strings.Join(args, " "))
		}
	}
}
