package ami_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/elastidial/elastidial/agent/ami"
)

// fakeAMI serves one in-memory AMI session: banner, login, and Ping
// replies while answering is set; with answering unset it reads and says
// nothing (Asterisk frozen, TCP still open). frozen sessions send no
// banner at all.
type fakeAMI struct {
	answering atomic.Bool
	frozen    atomic.Bool
	dials     atomic.Int32
	pings     atomic.Int32
	wg        sync.WaitGroup
}

func (f *fakeAMI) dial(ctx context.Context, _ string) (net.Conn, error) {
	f.dials.Add(1)
	client, server := net.Pipe()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer server.Close()
		r := bufio.NewReader(server)
		if f.frozen.Load() {
			io.Copy(io.Discard, r)
			return
		}
		fmt.Fprint(server, "Asterisk Call Manager/9.0.0\r\n")
		for {
			m, err := ami.Read(r)
			if err != nil {
				return
			}
			if !f.answering.Load() {
				continue
			}
			if m.Get("Action") == "Ping" {
				f.pings.Add(1)
			}
			fmt.Fprintf(server, "Response: Success\r\nActionID: %s\r\n\r\n", m.Get("ActionID"))
		}
	}()
	return client, nil
}

// TestKeepAliveReconnectsFrozenAMI: while Asterisk answers Pings the
// session stays up; once it stops answering, the client reports itself
// disconnected within one ping interval and timeout, and dials again.
func TestKeepAliveReconnectsFrozenAMI(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeAMI{}
		f.answering.Store(true)
		c := &ami.Client{Addr: "asterisk", Username: "u", Secret: "p", Dial: f.dial,
			PingInterval: 10 * time.Second, PingTimeout: 5 * time.Second, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { c.Run(ctx); close(done) }()

		synctest.Wait()
		if !c.Connected() {
			t.Fatal("not connected after login")
		}
		time.Sleep(35 * time.Second)
		synctest.Wait()
		if !c.Connected() || f.pings.Load() != 3 || f.dials.Load() != 1 {
			t.Fatalf("answering: connected %v, %d pings, %d dials", c.Connected(), f.pings.Load(), f.dials.Load())
		}

		f.answering.Store(false)    // frozen: open, silent
		f.frozen.Store(true)        // and so is every new session
		time.Sleep(7 * time.Second) // t=42s: the ping of t=40s waits for its reply
		synctest.Wait()
		if !c.Connected() {
			t.Fatal("disconnected before the ping timed out")
		}
		time.Sleep(4 * time.Second) // t=46s: it timed out at t=45s
		synctest.Wait()
		if c.Connected() {
			t.Fatal("still connected to a frozen AMI")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if f.dials.Load() < 2 || c.Connected() {
			t.Fatalf("after the timeout: %d dials, connected %v", f.dials.Load(), c.Connected())
		}
		cancel()
		<-done
		f.wg.Wait()
	})
}
