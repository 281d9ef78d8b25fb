package testproxy

import (
	"net"
	"sync"
	"testing"
	"time"
)

// DialTimeout bounds how long the proxy waits to connect to its target.
const DialTimeout = 5 * time.Second

// Proxy forwards TCP connections from its loopback address to a target
// until told otherwise (see the package doc). Its methods are safe for
// concurrent use.
type Proxy struct {
	t      testing.TB
	target string
	addr   string
	wg     sync.WaitGroup

	mu     sync.Mutex
	ln     net.Listener  // nil while cut or closed
	gate   chan struct{} // closed while forwarding, open while partitioned
	pairs  map[*pair]struct{}
	closed bool
}

// pair is one client connection and, once connected, its upstream.
type pair struct {
	client   net.Conn
	upstream net.Conn // set under Proxy.mu
	done     chan struct{}
	once     sync.Once
}

// New starts a proxy on 127.0.0.1 (a free port) forwarding to target
// (host:port). It is closed when the test ends.
func New(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testproxy: listen: %v", err)
	}
	gate := make(chan struct{})
	close(gate)
	p := &Proxy{t: t, target: target, addr: ln.Addr().String(), gate: gate, pairs: map[*pair]struct{}{}}
	p.serve(ln)
	t.Cleanup(p.Close)
	return p
}

// Addr returns the proxy's address, host:port; it stays the same across
// Cut and Resume.
func (p *Proxy) Addr() string { return p.addr }

// Open returns how many client connections the proxy holds.
func (p *Proxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pairs)
}

// Cut closes the listener and every connection: new connections are
// refused until Resume.
func (p *Proxy) Cut() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	pairs := p.takePairs()
	p.mu.Unlock()
	for _, pr := range pairs {
		p.closePair(pr)
	}
}

// Partition stops forwarding in both directions without closing any
// connection; connections accepted meanwhile are held, not connected
// onwards, until Resume.
func (p *Proxy) Partition() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
		p.gate = make(chan struct{})
	default: // already partitioned
	}
}

// Resume ends a Cut (listening again on the same address) and a
// Partition (forwarding what was held).
func (p *Proxy) Resume() {
	p.t.Helper()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
	relisten := p.ln == nil
	p.mu.Unlock()
	if !relisten {
		return
	}
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		if ln, err = net.Listen("tcp", p.addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("testproxy: listen on %s again: %v", p.addr, err)
	}
	p.serve(ln)
}

// Close closes the listener and every connection and waits for the
// proxy's goroutines. New registers it with t.Cleanup.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.Cut()
	p.wg.Wait()
}

func (p *Proxy) takePairs() []*pair {
	pairs := make([]*pair, 0, len(p.pairs))
	for pr := range p.pairs {
		pairs = append(pairs, pr)
	}
	clear(p.pairs)
	return pairs
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		ln.Close()
		return
	}
	p.ln = ln
	p.wg.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			pr := &pair{client: c, done: make(chan struct{})}
			p.mu.Lock()
			if p.ln != ln { // cut meanwhile
				p.mu.Unlock()
				c.Close()
				return
			}
			p.pairs[pr] = struct{}{}
			p.wg.Add(1)
			p.mu.Unlock()
			go p.connect(pr)
		}
	}()
}

// connect waits out a partition, dials the target and forwards.
func (p *Proxy) connect(pr *pair) {
	defer p.wg.Done()
	if !p.wait(pr) {
		return
	}
	u, err := net.DialTimeout("tcp", p.target, DialTimeout)
	if err != nil {
		p.closePair(pr)
		return
	}
	p.mu.Lock()
	select {
	case <-pr.done:
		p.mu.Unlock()
		u.Close()
		return
	default:
	}
	pr.upstream = u
	p.wg.Add(2)
	p.mu.Unlock()
	go p.pipe(pr, u, pr.client)
	go p.pipe(pr, pr.client, u)
}

// pipe copies src to dst, pausing while partitioned, and closes the
// pair when either side ends.
func (p *Proxy) pipe(pr *pair, dst, src net.Conn) {
	defer p.wg.Done()
	defer p.closePair(pr)
	buf := make([]byte, 32<<10)
	for {
		if !p.wait(pr) {
			return
		}
		n, err := src.Read(buf)
		if n > 0 {
			if !p.wait(pr) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // io.EOF or a closed connection
			return
		}
	}
}

// wait blocks while partitioned; false means the pair was closed.
func (p *Proxy) wait(pr *pair) bool {
	p.mu.Lock()
	g := p.gate
	p.mu.Unlock()
	select {
	case <-g:
		select {
		case <-pr.done:
			return false
		default:
			return true
		}
	case <-pr.done:
		return false
	}
}

func (p *Proxy) closePair(pr *pair) {
	pr.once.Do(func() {
		p.mu.Lock()
		delete(p.pairs, pr)
		u := pr.upstream
		close(pr.done)
		p.mu.Unlock()
		pr.client.Close()
		if u != nil {
			u.Close()
		}
	})
}
