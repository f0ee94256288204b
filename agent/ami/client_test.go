package ami_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elastidial/elastidial/agent/ami"
	"github.com/elastidial/elastidial/agent/asterisksim"
)

func TestClientAgainstSimulator(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	callees := map[string]asterisksim.Callee{}
	sim := &asterisksim.Sim{Username: "u", Secret: "p", Log: log, AGI: "agi://127.0.0.1:1/ivr",
		Model: asterisksim.Model{Callees: callees, RingMin: 50 * time.Millisecond, RingMax: 50 * time.Millisecond, Busy: 1}}
	addr, err := sim.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Add(1)
	go func() { defer wg.Done(); sim.Run(ctx) }()

	// A consumer far slower than the event stream: the reader must neither
	// block (Asterisk would drop us) nor lose events.
	var got atomic.Int64
	c := &ami.Client{Addr: addr, Username: "u", Secret: "p", Log: log, OnEvent: func(m ami.Message) {
		if m.Get("Event") == "OriginateResponse" {
			time.Sleep(2 * time.Millisecond)
			got.Add(1)
		}
	}}
	wg.Add(1)
	go func() { defer wg.Done(); c.Run(ctx) }()
	for end := time.Now().Add(5 * time.Second); !c.Connected(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("no login")
		}
	}
	r, err := c.Action(ctx, ami.M("Action", "Ping"))
	if err != nil || r.Get("Ping") != "Pong" {
		t.Fatalf("ping: %v %v", r, err)
	}
	const n = 200
	for i := range n {
		r, err := c.Action(ctx, ami.M("Action", "Originate", "Channel", "PJSIP/+1@t", "Exten", "s", "Async", "true",
			"ChannelId", "id-"+string(rune('A'+i%26))+time.Now().Format("150405.000000000")))
		if err != nil || r.Get("Response") != "Success" {
			t.Fatalf("originate %d: %v %v", i, r, err)
		}
	}
	// Channels are listed while ringing.
	_, list, err := c.List(ctx, ami.M("Action", "CoreShowChannels"))
	if err != nil || len(list) == 0 || list[len(list)-1].Get("EventList") != "Complete" {
		t.Fatalf("list: %d %v", len(list), err)
	}
	for end := time.Now().Add(10 * time.Second); got.Load() < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("got %d of %d OriginateResponse events", got.Load(), n)
		}
	}
	if !c.Connected() {
		t.Error("session dropped under a slow consumer")
	}

	// Wrong secret: Run keeps retrying and never reports connected.
	bad := &ami.Client{Addr: addr, Username: "u", Secret: "wrong", Log: log}
	bctx, bcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer bcancel()
	bad.Run(bctx)
	if bad.Connected() {
		t.Error("connected with a wrong secret")
	}
	if _, err := bad.Action(ctx, ami.M("Action", "Ping")); err == nil {
		t.Error("action on a closed client succeeded")
	}
}
