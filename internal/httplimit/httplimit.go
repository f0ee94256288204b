// Package httplimit bounds what one HTTP client can hold on a server: the
// number of open connections, and how long a request may take to deliver
// its body.
package httplimit

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// Listener returns ln accepting at most n connections at once; further
// clients wait in the kernel's backlog until one closes. n < 1 means no
// limit.
func Listener(ln net.Listener, n int) net.Listener {
	if n < 1 {
		return ln
	}
	return &limitListener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// BodyDeadline gives each request d from its start to deliver its body (and
// the handler to read it), in place of the server's ReadTimeout: a client
// that sends a body slowly, or holds its last byte, is cut off after d
// rather than holding the buffer it made the server fill. d <= 0 leaves h
// as is.
func BodyDeadline(h http.Handler, d time.Duration) http.Handler {
	if d <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
		h.ServeHTTP(w, r)
	})
}
