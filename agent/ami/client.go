package ami

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Sentinel errors.
var (
	ErrNotConnected = errors.New("ami: not connected")
	ErrLogin        = errors.New("ami: login refused")
	ErrClosed       = errors.New("ami: connection closed")
)

// Client keeps one logged-in AMI session up, reconnecting with backoff.
//
//	Run ─► dial ─► banner ─► Login ─► connected (read loop) ─┐
//	 ▲                                                       │ error/EOF
//	 └──────────── backoff (0.2s doubling to 10s) ◄──────────┘
//
// Events go to OnEvent from a dispatcher goroutine fed by an unbounded
// queue, so the socket reader never waits for the consumer.
type Client struct {
	Addr     string
	Username string
	Secret   string
	Events   string // Login Events; default "call,system" (never "off": it hides OriginateResponse)
	Log      *slog.Logger
	// OnEvent receives every event in wire order. It may block; the reader
	// does not wait for it.
	OnEvent func(Message)
	// OnConnect runs after each successful login (e.g. to reconcile calls).
	OnConnect func(ctx context.Context)
	// DialTimeout bounds connect+login; default 5s.
	DialTimeout time.Duration
	// PingInterval is how often a logged-in session sends Action: Ping;
	// default 10s. An Asterisk that stops answering (frozen, TCP still
	// open) would otherwise keep the session "up" forever.
	PingInterval time.Duration
	// PingTimeout is how long a Ping may wait for its reply before the
	// session is dropped (Connected turns false) and dialled again;
	// default 5s.
	PingTimeout time.Duration
	// Dial opens the connection; default a net.Dialer with DialTimeout.
	Dial func(ctx context.Context, addr string) (net.Conn, error)

	seq       atomic.Uint64
	connected atomic.Bool

	mu      sync.Mutex
	conn    net.Conn
	wmu     sync.Mutex // serialises writes
	pending map[string]*pendingAction

	qmu    sync.Mutex
	queue  []Message
	signal chan struct{}
}

type pendingAction struct {
	list   bool // collect events with this ActionID until EventList: Complete
	reply  Message
	events []Message
	done   chan struct{}
	err    error
}

// Connected reports whether a logged-in session is up.
func (c *Client) Connected() bool { return c.connected.Load() }

// Run keeps the session up until ctx ends.
func (c *Client) Run(ctx context.Context) error {
	if c.Log == nil {
		c.Log = slog.Default()
	}
	c.qmu.Lock()
	if c.signal == nil {
		c.signal = make(chan struct{}, 1)
	}
	c.qmu.Unlock()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); c.dispatch(ctx) }()
	defer wg.Wait()

	backoff := 200 * time.Millisecond
	for {
		start := time.Now()
		err := c.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		c.Log.Warn("ami session ended", "addr", c.Addr, "err", err)
		if time.Since(start) > 30*time.Second {
			backoff = 200 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

func (c *Client) session(ctx context.Context) error {
	timeout := c.DialTimeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	dial := c.Dial
	if dial == nil {
		d := net.Dialer{Timeout: timeout}
		dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	conn, err := dial(ctx, c.Addr)
	if err != nil {
		return fmt.Errorf("dial %s: %w", c.Addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	r := bufio.NewReaderSize(conn, 64<<10)
	conn.SetReadDeadline(time.Now().Add(timeout))
	banner, err := r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("read banner: %w", err)
	}
	if !strings.HasPrefix(banner, "Asterisk Call Manager/") {
		return fmt.Errorf("%w: unexpected banner %q", ErrBadMessage, truncate(strings.TrimSpace(banner)))
	}
	conn.SetReadDeadline(time.Time{})

	c.mu.Lock()
	c.conn = conn
	c.pending = map[string]*pendingAction{}
	c.mu.Unlock()
	defer c.teardown(conn)

	readErr := make(chan error, 1)
	go func() { readErr <- c.readLoop(r) }()

	events := c.Events
	if events == "" {
		events = "call,system"
	}
	lctx, cancel := context.WithTimeout(ctx, timeout)
	reply, err := c.send(lctx, Message{{"Action", "Login"}, {"Username", c.Username}, {"Secret", c.Secret}, {"Events", events}}, false)
	cancel()
	if err == nil && !strings.EqualFold(reply.Get("Response"), "Success") {
		err = fmt.Errorf("%w: %s", ErrLogin, reply.Get("Message"))
	}
	if err != nil {
		conn.Close()
		<-readErr
		return fmt.Errorf("login: %w", err)
	}
	c.connected.Store(true)
	c.Log.Info("ami connected", "addr", c.Addr)
	if c.OnConnect != nil {
		go c.OnConnect(ctx)
	}
	kctx, stopPings := context.WithCancel(ctx)
	var pings sync.WaitGroup
	pings.Go(func() { c.keepAlive(kctx, conn) })
	err = <-readErr
	stopPings()
	pings.Wait()
	return err
}

// keepAlive pings the session every PingInterval; a Ping with no reply
// within PingTimeout closes the connection, which ends the session.
func (c *Client) keepAlive(ctx context.Context, conn net.Conn) {
	every := cmp.Or(c.PingInterval, 10*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, cmp.Or(c.PingTimeout, 5*time.Second))
		_, err := c.send(pctx, Message{{"Action", "Ping"}}, false)
		cancel()
		if err != nil && ctx.Err() == nil {
			c.Log.Warn("ami keep-alive failed; reconnecting", "addr", c.Addr, "err", err)
			c.connected.Store(false)
			conn.Close()
			return
		}
	}
}

// teardown fails every pending action and marks the session down.
func (c *Client) teardown(conn net.Conn) {
	c.connected.Store(false)
	c.mu.Lock()
	if c.conn == conn {
		c.conn = nil
	}
	for id, p := range c.pending {
		p.err = ErrClosed
		close(p.done)
		delete(c.pending, id)
	}
	c.mu.Unlock()
}

// readLoop reads messages and routes them. It never blocks on a consumer:
// replies go to their waiting action (buffered by construction), events are
// appended to an unbounded queue.
func (c *Client) readLoop(r *bufio.Reader) error {
	for {
		m, err := Read(r)
		if err != nil {
			return err
		}
		id := m.Get("ActionID")
		// OriginateResponse carries a Response key too: Event decides.
		if m.Has("Response") && !m.Has("Event") {
			c.mu.Lock()
			p := c.pending[id]
			if p != nil {
				p.reply = m
				if !p.list || !strings.EqualFold(m.Get("Response"), "Success") {
					delete(c.pending, id)
					close(p.done)
				}
			}
			c.mu.Unlock()
			if p == nil {
				c.Log.Debug("ami reply without a waiter", "actionid", id)
			}
			continue
		}
		if id != "" {
			c.mu.Lock()
			p := c.pending[id]
			if p != nil && p.list {
				p.events = append(p.events, m)
				if strings.EqualFold(m.Get("EventList"), "Complete") {
					delete(c.pending, id)
					close(p.done)
				}
				c.mu.Unlock()
				continue
			}
			c.mu.Unlock()
		}
		c.qmu.Lock()
		c.queue = append(c.queue, m)
		c.qmu.Unlock()
		select {
		case c.signal <- struct{}{}:
		default:
		}
	}
}

func (c *Client) dispatch(ctx context.Context) {
	for {
		c.qmu.Lock()
		batch := c.queue
		c.queue = nil
		c.qmu.Unlock()
		for _, m := range batch {
			if c.OnEvent != nil {
				c.OnEvent(m)
			}
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-c.signal:
		}
	}
}

// Action sends one action and waits for its reply. An ActionID is added
// unless the message has one.
func (c *Client) Action(ctx context.Context, m Message) (Message, error) {
	return c.send(ctx, m, false)
}

// List sends an action whose answer is an event list (e.g. CoreShowChannels)
// and returns the reply and the listed events, the final
// "...Complete" event included.
func (c *Client) List(ctx context.Context, m Message) (Message, []Message, error) {
	id := m.Get("ActionID")
	if id == "" {
		id = c.nextID()
		m = m.Add("ActionID", id)
	}
	p, err := c.register(id, true)
	if err != nil {
		return nil, nil, err
	}
	if err := c.write(m); err != nil {
		c.forget(id)
		return nil, nil, err
	}
	if err := c.wait(ctx, id, p); err != nil {
		return nil, nil, err
	}
	return p.reply, p.events, nil
}

// NewActionID returns a session-unique ActionID.
func (c *Client) NewActionID() string { return c.nextID() }

func (c *Client) nextID() string {
	return "ed-" + strconv.FormatUint(c.seq.Add(1), 10)
}

func (c *Client) send(ctx context.Context, m Message, list bool) (Message, error) {
	id := m.Get("ActionID")
	if id == "" {
		id = c.nextID()
		m = m.Add("ActionID", id)
	}
	p, err := c.register(id, list)
	if err != nil {
		return nil, err
	}
	if err := c.write(m); err != nil {
		c.forget(id)
		return nil, err
	}
	if err := c.wait(ctx, id, p); err != nil {
		return nil, err
	}
	return p.reply, nil
}

func (c *Client) register(id string, list bool) (*pendingAction, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil, ErrNotConnected
	}
	if _, dup := c.pending[id]; dup {
		return nil, fmt.Errorf("ami: duplicate ActionID %q", id)
	}
	p := &pendingAction{list: list, done: make(chan struct{})}
	c.pending[id] = p
	return p, nil
}

func (c *Client) forget(id string) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

func (c *Client) wait(ctx context.Context, id string, p *pendingAction) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		c.forget(id)
		return ctx.Err()
	}
}

func (c *Client) write(m Message) error {
	b, err := Encode(m)
	if err != nil {
		return err
	}
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn == nil {
		return ErrNotConnected
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(b); err != nil {
		conn.Close()
		return fmt.Errorf("ami write: %w", err)
	}
	return nil
}
