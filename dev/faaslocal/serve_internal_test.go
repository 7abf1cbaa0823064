package faaslocal

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestSlowBodyIsCutOff: a client that trickles its body a byte at a time is
// disconnected once the read timeout passes (issue 12, finding 6: three such
// uploads stayed open past 36 s), and the handler's read fails.
func TestSlowBodyIsCutOff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	s := serveWith(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
	}), slog.New(slog.DiscardHandler), 200*time.Millisecond, 500*time.Millisecond)
	defer s.shutdown()

	conn, err := net.Dial("tcp", s.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if _, err := conn.Write([]byte("x")); err != nil {
			break // the server closed the connection
		}
		select {
		case err := <-readErr:
			if err == nil {
				t.Fatal("the handler read the whole trickled body")
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("cut off after %v, want about the 500ms read timeout", d)
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("a body trickled for %v was still being read", time.Since(start))
}
