package agi

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"testing/synctest"
	"time"
)

// TestReplyDeadline: a peer that takes a command and never answers frees
// the session after the command's deadline, short for a quick command and
// long for one that plays or waits; an answer in time is taken.
func TestReplyDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		local, peer := net.Pipe()
		defer local.Close()
		defer peer.Close()
		s := &Session{conn: local, r: bufio.NewReader(local), ReplyTimeout: 10 * time.Second, LongReplyTimeout: time.Minute}
		lines := make(chan string, 10)
		go func() { // a peer that reads every command and answers only NOOP
			r := bufio.NewReader(peer)
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				lines <- l
				if l == "NOOP\n" {
					peer.Write([]byte("200 result=0\n"))
				}
			}
		}()
		ctx := context.Background()
		if _, err := s.Do(ctx, "NOOP"); err != nil {
			t.Fatalf("answered command: %v", err)
		}
		start := time.Now()
		_, err := s.Do(ctx, "ANSWER")
		if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) != 10*time.Second {
			t.Fatalf("quick command with no reply: %v after %s", err, time.Since(start))
		}
		start = time.Now()
		_, err = s.Do(ctx, `STREAM FILE "x/long" ""`)
		if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) != time.Minute {
			t.Fatalf("long command with no reply: %v after %s", err, time.Since(start))
		}
	})
}

// TestReplyDeadlineDefaults: a session from the server gets deadlines even
// when nobody set them.
func TestReplyDeadlineDefaults(t *testing.T) {
	s := &Session{}
	if q, l := s.deadline("ANSWER"), s.deadline("EXEC Dial x"); q != DefaultReplyTimeout || l != DefaultLongReplyTimeout {
		t.Fatalf("defaults %s %s", q, l)
	}
}
