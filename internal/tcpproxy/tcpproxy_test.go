package tcpproxy_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shopfaas/shop/internal/tcpproxy"
)

// The proxy forwards both ways, on a connection to the target for each
// client's, and counts the connections it forwarded in the order accepted.
func TestForwardsEachConnection(t *testing.T) {
	p := newLink(t)
	a, aServer := p.pair(t)
	send(t, a, aServer, "ping")
	send(t, aServer, a, "pong")
	b, bServer := p.pair(t)
	send(t, b, bServer, "second")
	if n := p.Accepted(); n != 2 {
		t.Errorf("%d connections accepted, want 2", n)
	}
	// The first connection is still the one Conn(0) cuts.
	p.Conn(t, 0).Cut()
	closedByPeer(t, a, "the first client")
	send(t, b, bServer, "still")
}

// A deaf connection drops what its client sends and counts it, and still
// forwards what the server sends; the other connections are not deaf.
func TestADeafConnectionStillHearsTheServer(t *testing.T) {
	p := newLink(t)
	client, server := p.pair(t)
	other, otherServer := p.pair(t)
	c := p.Conn(t, 0)
	c.Deaf()
	write(t, client, "lost")
	c.WaitSwallowed(t, 4)
	hearsNothing(t, server, "the deaf connection's server")
	send(t, server, client, "heard")
	send(t, other, otherServer, "not deaf")
}

// DeafAfter leaves the connection as it is until the server sends what it
// waits for, which still reaches the client; from then on what the client
// sends is dropped.
func TestDeafAfterTheServersReply(t *testing.T) {
	p := newLink(t)
	client, server := p.pair(t)
	c := p.Conn(t, 0)
	c.DeafAfter(func(b []byte) bool { return strings.Contains(string(b), "returned") })
	send(t, server, client, "other")
	send(t, client, server, "heard")
	send(t, server, client, "returned")
	write(t, client, "declare")
	c.WaitSwallowed(t, len("declare"))
	hearsNothing(t, server, "the server after its reply")
	send(t, server, client, "still heard")
}

// A stalled connection reads nothing more from its client, whose write
// then waits once the sockets' buffers are full, as on a connection RabbitMQ
// blocks, while what the server sends, and what Send adds, still reaches the
// client; Unstall forwards everything that waited, nothing dropped. The
// other connections are not stalled.
func TestAStalledConnectionBacksItsClientUp(t *testing.T) {
	p := newLink(t)
	client, server := p.pair(t)
	other, otherServer := p.pair(t)
	c := p.Conn(t, 0)
	c.Stall()
	// Far more than the client's send buffer and the proxy's receive
	// buffer hold (4 MiB and 128 KiB by default on Linux).
	big := make([]byte, 16<<20)
	for i := range big {
		big[i] = byte(i)
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := client.Write(big)
		wrote <- err
	}()
	select {
	case err := <-wrote:
		t.Fatalf("the client wrote 16 MiB to a stalled connection (%v), want its write waiting", err)
	case <-time.After(500 * time.Millisecond):
	}
	hearsNothing(t, server, "the stalled connection's server")
	send(t, server, client, "heard")
	if err := c.Send([]byte("sent")); err != nil {
		t.Fatal(err)
	}
	read(t, client, "sent")
	send(t, other, otherServer, "not stalled")

	c.Unstall()
	_ = server.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(big))
	if n, err := io.ReadFull(server, got); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("the server read %d bytes (%v), not the %d the client wrote while stalled", n, err, len(big))
	}
	if err := <-wrote; err != nil {
		t.Errorf("the client's write after Unstall: %v", err)
	}
}

// A single connection's Cut closes both of its ends and no other connection.
func TestCuttingAConnectionClosesBothEnds(t *testing.T) {
	p := newLink(t)
	client, server := p.pair(t)
	other, otherServer := p.pair(t)
	p.Conn(t, 0).Cut()
	closedByPeer(t, client, "the cut connection's client")
	closedByPeer(t, server, "the cut connection's server")
	send(t, other, otherServer, "uncut")
	send(t, otherServer, other, "uncut")
}

// Silence leaves the connections open then half-open: nothing goes through
// either way, and a close by one end does not reach the other. A connection
// opened later is forwarded.
func TestSilenceLeavesOpenConnectionsHalfOpen(t *testing.T) {
	p := newLink(t)
	client, server := p.pair(t)
	p.Silence()
	write(t, client, "unheard")
	hearsNothing(t, server, "the silenced connection's server")
	write(t, server, "unheard")
	hearsNothing(t, client, "the silenced connection's client")
	_ = server.Close()
	hearsNothing(t, client, "the client of a silenced connection its server closed")
	later, laterServer := p.pair(t)
	send(t, later, laterServer, "after the silence")
	send(t, laterServer, later, "after the silence")
}

// Cut closes every open connection and refuses new ones, which never reach
// the target, until Restore; Cuts counts only the connections that were
// open.
func TestCutRefusesConnectionsUntilRestored(t *testing.T) {
	p := newLink(t)
	a, _ := p.pair(t)
	b, _ := p.pair(t)
	p.Cut()
	closedByPeer(t, a, "the first client")
	closedByPeer(t, b, "the second client")
	if n := p.Cuts(); n != 2 {
		t.Errorf("%d connections cut, want 2", n)
	}
	refused, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = refused.Close() })
	closedByPeer(t, refused, "a client of the cut proxy")
	select {
	case <-p.accepted:
		t.Error("the target got a connection while the proxy was cut")
	case <-time.After(300 * time.Millisecond):
	}
	if n := p.Accepted(); n != 2 {
		t.Errorf("%d connections accepted, want 2 (a refused one is not)", n)
	}

	p.Restore()
	c, cServer := p.pair(t)
	send(t, c, cServer, "restored")
	if n := p.Accepted(); n != 3 {
		t.Errorf("%d connections accepted after Restore, want 3", n)
	}
	p.Cut()
	closedByPeer(t, c, "the client after Restore")
	if n := p.Cuts(); n != 3 {
		t.Errorf("%d connections cut after a second Cut, want 3 (the 2 of the first and the 1 open)", n)
	}
}

// Listen serves at the address given, one a client may have been pointed at
// before anything listened there.
func TestListenAtAGivenAddress(t *testing.T) {
	addr, accepted := target(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fixed := ln.Addr().String()
	_ = ln.Close()
	p := &link{tcpproxy.Listen(t, fixed, addr), accepted}
	if p.Addr() != fixed {
		t.Errorf("listens on %s, want %s", p.Addr(), fixed)
	}
	client, server := p.pair(t)
	send(t, client, server, "fixed")
}

// The test's end closes every connection, a silenced one too, and the
// listener.
func TestTheTestsEndClosesEverything(t *testing.T) {
	addr, accepted := target(t)
	var proxyAddr string
	var client, server net.Conn
	t.Run("with a proxy", func(t *testing.T) {
		p := tcpproxy.New(t, addr)
		proxyAddr = p.Addr()
		var err error
		if client, err = net.Dial("tcp", proxyAddr); err != nil {
			t.Fatal(err)
		}
		server = next(t, accepted)
		p.Conn(t, 0) // counted, so silenced
		p.Silence()
	})
	if client == nil || server == nil {
		t.FailNow()
	}
	t.Cleanup(func() { _ = client.Close(); _ = server.Close() })
	closedByPeer(t, client, "the client once the test ended")
	closedByPeer(t, server, "the server once the test ended")
	if c, err := net.Dial("tcp", proxyAddr); err == nil {
		_ = c.Close()
		t.Error("the proxy still listens once the test ended")
	}
}

// target listens for the proxy's connections, as the real server would, and
// hands each to the test.
func target(t *testing.T) (string, <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 16)
	t.Cleanup(func() {
		_ = ln.Close()
		for {
			select {
			case c := <-accepted:
				_ = c.Close()
			default:
				return
			}
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	return ln.Addr().String(), accepted
}

// next is the target's next connection from the proxy.
func next(t *testing.T, accepted <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-accepted:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("the target got no connection within 5 s")
		return nil
	}
}

// A link is a proxy to a target of the test's.
type link struct {
	*tcpproxy.Proxy
	accepted <-chan net.Conn // the target's connections
}

func newLink(t *testing.T) *link {
	t.Helper()
	addr, accepted := target(t)
	return &link{tcpproxy.New(t, addr), accepted}
}

// pair opens a client's connection through the proxy and returns both its
// ends, closed when the test ends. It returns once a message went through:
// the target may accept before the proxy has counted the connection, which
// forwards nothing before it is counted.
func (l *link) pair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	client, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	server = next(t, l.accepted)
	t.Cleanup(func() { _ = server.Close() })
	send(t, client, server, "open")
	return client, server
}

// send writes msg on from and fails unless to reads it.
func send(t *testing.T, from, to net.Conn, msg string) {
	t.Helper()
	write(t, from, msg)
	read(t, to, msg)
}

// read fails unless c reads msg within 5 s.
func read(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("read %q, %v; want %q", got, err, msg)
	}
}

// write sends msg on c, or fails the test.
func write(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write %q: %v", msg, err)
	}
}

// hearsNothing fails unless c reads nothing, not even its end, for 300 ms.
func hearsNothing(t *testing.T, c net.Conn, who string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 64)
	if n, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("%s read %q, %v; want nothing", who, buf[:n], err)
	}
}

// closedByPeer fails unless c's peer closes it within 5 s, sending nothing.
func closedByPeer(t *testing.T, c net.Conn, who string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	if n, err := c.Read(buf); n > 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("%s read %q, %v; want its connection closed", who, buf[:n], err)
	}
}
