// Package tcpproxy puts a TCP proxy between a test and a real server, so the
// test can make the network fail where it wants: one connection deaf or cut,
// every open connection silent (half-open), or the whole link down for a
// while. Only tests import it.
package tcpproxy

import (
	"net"
	"sync"
	"testing"
	"time"
)

// A Proxy forwards every TCP connection it accepts to its target, on a
// connection of its own, until the test ends; then it closes them all and
// stops listening. Connections are kept in the order they were accepted, so
// a test that knows its client's order (which connection consumes, which
// publishes) can break exactly one.
type Proxy struct {
	addr  string
	mu    sync.Mutex
	conns []*Conn // every connection forwarded, in the order accepted
	down  bool    // between Cut and Restore
	cuts  int
	wg    sync.WaitGroup
}

// A Conn is one forwarded connection: its client's, accepted by the proxy,
// and the proxy's own to the target.
type Conn struct {
	client, server net.Conn
	mu             sync.Mutex
	deaf           bool              // drop what the client sends
	deafAfter      func([]byte) bool // what from the server makes it deaf (DeafAfter)
	silent         bool              // drop everything and close nothing
	stalled        bool              // read nothing more from the client (Stall)
	unstall        *sync.Cond        // on mu: broadcast when stalled may have changed, or closed
	closed         bool
	swallowed      int // bytes from the client dropped
}

// New returns a proxy to target listening on a free loopback port.
func New(tb testing.TB, target string) *Proxy {
	tb.Helper()
	return Listen(tb, "127.0.0.1:0", target)
}

// Listen returns a proxy to target listening on addr: a test that first
// points its client at an address nothing listens on (a server down) makes
// it reachable with Listen.
func Listen(tb testing.TB, addr, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		tb.Fatalf("proxy listen %s: %v", addr, err)
	}
	p := &Proxy{addr: ln.Addr().String()}
	tb.Cleanup(func() {
		_ = ln.Close()
		// Cut leaves the proxy down: a connection accepted while the test
		// ends is closed too, so no copy outlives the test.
		p.Cut()
		p.wg.Wait()
	})
	p.wg.Go(func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			if p.isDown() { // the target never sees a refused connection
				_ = client.Close()
				continue
			}
			// Dialled here, not on a goroutine of its own, so that the
			// connections' order is the order the proxy accepted them in.
			server, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				_ = client.Close()
				continue
			}
			c := &Conn{client: client, server: server}
			c.unstall = sync.NewCond(&c.mu)
			p.mu.Lock()
			if p.down { // cut while dialling
				p.mu.Unlock()
				c.cut()
				continue
			}
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			p.wg.Go(func() { c.pipe(server, client, true) })
			p.wg.Go(func() { c.pipe(client, server, false) })
		}
	})
	return p
}

// Addr is the address the proxy listens on, for the test's client.
func (p *Proxy) Addr() string { return p.addr }

// Accepted is how many connections the proxy has forwarded: the ones it
// refused while cut, or whose target refused them, are not counted.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Conn returns the i-th connection forwarded (from 0), waiting up to 10 s for
// the client to open it.
func (p *Proxy) Conn(tb testing.TB, i int) *Conn {
	tb.Helper()
	var c *Conn
	n := 0
	if !waitFor(func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		if n = len(p.conns); i < n {
			c = p.conns[i]
		}
		return c != nil
	}) {
		tb.Fatalf("connection %d never opened within 10 s (%d were)", i, n)
	}
	return c
}

// Silence makes every connection open now a half-open one: it forwards
// nothing more in either direction and closes nothing, even when one end
// closes, so each end waits on a peer that says nothing. Connections opened
// later are forwarded (a cancel request sent on a new connection gets
// through). The test's end closes them.
func (p *Proxy) Silence() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.mu.Lock()
		c.silent = true
		c.mu.Unlock()
	}
}

// Cut closes every open connection, silenced ones included, as a network
// failure seen by both ends, and refuses new ones until Restore: as a server
// that went away. A test that gives up on a silenced connection cuts it, or
// whatever waits on it (a pool's Close) waits for ever.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		if c.cut() {
			p.cuts++
		}
	}
}

// Restore forwards new connections again after Cut.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// isDown says whether the proxy refuses new connections.
func (p *Proxy) isDown() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.down
}

// Cuts is how many open connections Cut has closed: none means the outage
// the test made broke nothing.
func (p *Proxy) Cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

// Deaf drops what the client sends from now on, while what the server sends
// still reaches it: to the server the connection says nothing more, as one
// the server no longer reads (RabbitMQ's blocked connection).
func (c *Conn) Deaf() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deaf = true
}

// DeafAfter makes the connection deaf (Deaf) once the server sends bytes for
// which reply is true, before they reach the client: the client's answer to
// them and all it sends later are dropped, as by a server that stopped
// reading the connection right after it sent them. reply sees each read of
// the server's, which may hold part of a message or several.
func (c *Conn) DeafAfter(reply func([]byte) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deafAfter = reply
}

// Stall stops reading what the client sends, while what the server sends
// still reaches it: the client's writes back up once the sockets' buffers
// are full and then wait, as on a connection RabbitMQ blocks during a
// resource alarm (it stops reading the socket). Nothing the client sends
// from then on reaches the server: the proxy holds what its read under way
// takes (up to 32 KiB) and reads no more. Unlike Deaf, nothing is dropped:
// Unstall forwards it all.
func (c *Conn) Stall() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stalled = true
}

// Unstall reads and forwards what the client sends again after Stall.
func (c *Conn) Unstall() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stalled = false
	c.unstall.Broadcast()
}

// Send writes b to the client as if the server had sent it (a message the
// server would send unasked, such as RabbitMQ's connection.blocked). It is
// written whole, between two of the server's writes; a test sends it while
// the server is between messages.
func (c *Conn) Send(b []byte) error {
	_, err := c.client.Write(b)
	return err
}

// WaitSwallowed waits up to 10 s until the connection has dropped at least n
// bytes its client sent: the client has tried to say something it was not
// heard saying.
func (c *Conn) WaitSwallowed(tb testing.TB, n int) {
	tb.Helper()
	got := 0
	if !waitFor(func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		got = c.swallowed
		return got >= n
	}) {
		tb.Fatalf("the connection dropped %d bytes of its client's within 10 s, want %d", got, n)
	}
}

// Cut closes both ends of the connection, as a network failure seen by both.
func (c *Conn) Cut() { c.cut() }

// cut closes both ends and says whether they were open.
func (c *Conn) cut() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.closed = true
	c.unstall.Broadcast()
	_ = c.client.Close()
	_ = c.server.Close()
	return true
}

// pipe copies what src sends to dst, dropping what the connection's state
// says to drop, until either end fails; then it cuts the connection, as the
// network would, unless silenced. up says src is the client.
func (c *Conn) pipe(dst, src net.Conn, up bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if up && n > 0 && !c.waitUnstalled() {
			break
		}
		if n > 0 && c.forwards(buf[:n], up) {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	c.mu.Lock()
	silent := c.silent
	c.mu.Unlock()
	if !silent {
		c.cut()
	}
}

// waitUnstalled waits while the connection is stalled and says whether it
// is still open.
func (c *Conn) waitUnstalled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.stalled && !c.closed {
		c.unstall.Wait()
	}
	return !c.closed
}

// forwards says whether b, read from one end, goes on to the other, and
// counts the client's bytes that are dropped.
func (c *Conn) forwards(b []byte, up bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !up && c.deafAfter != nil && c.deafAfter(b) {
		c.deaf, c.deafAfter = true, nil
	}
	drop := c.silent || up && c.deaf
	if drop && up {
		c.swallowed += len(b)
	}
	return !drop
}

// waitFor polls ok for up to 10 s and says whether it held.
func waitFor(ok func() bool) bool {
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}
