package agent

import "time"

// Clock is the agent's time: its timestamps, waits and timeouts all go
// through it, so a test can run them on a fake clock instead of sleeping
// (tailscale's tstime.Clock is the model). The zero Config uses the real
// clock.
type Clock interface {
	Now() time.Time
	// After sends the time on the channel once d has passed.
	After(d time.Duration) <-chan time.Time
	// AfterFunc runs f in its own goroutine once d has passed.
	AfterFunc(d time.Duration, f func())
}

// realClock is the system's clock.
type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
func (realClock) AfterFunc(d time.Duration, f func())    { time.AfterFunc(d, f) }
