package wire

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/lockstep-io/lockstep/hal"
)

// TestSendAgain: a command whose connection dies under it is sent again
// on the next live one; one that cannot be sent again says it may have
// run; a malformed answer closes its connection and is not sent again.
func TestSendAgain(t *testing.T) {
	t.Parallel()
	srv := startServer(t, acceptFake(newFake(sampleHello.Serial), heartbeatCaps), ServerOptions{})
	log := slog.New(slog.DiscardHandler)
	sentAndDied := func(c *Client) error {
		c.Close()
		return fmt.Errorf("the request was sent and may have run: %w", hal.ErrTimeout)
	}

	t.Run("again on the next connection", func(t *testing.T) {
		conns := []*Client{srv.mustConnect(t, ClientOptions{}), srv.mustConnect(t, ClientOptions{})}
		var used []*Client
		live := func(context.Context) (*Client, error) { return conns[len(used)], nil }
		err := SendAgain(callCtx(t), log, live, func(_ context.Context, c *Client) error {
			used = append(used, c)
			if len(used) == 1 {
				return sentAndDied(c)
			}
			return nil
		})
		if err != nil || len(used) != 2 || used[1] != conns[1] {
			t.Fatalf("err %v after %d sends, want the second connection to carry it", err, len(used))
		}
	})

	t.Run("not sent again says it may have run", func(t *testing.T) {
		c := srv.mustConnect(t, ClientOptions{})
		first := true
		live := func(context.Context) (*Client, error) {
			if first {
				first = false
				return c, nil
			}
			return nil, fmt.Errorf("%w: no connection", hal.ErrUnreachable)
		}
		err := SendAgain(callCtx(t), log, live, func(_ context.Context, c *Client) error { return sentAndDied(c) })
		if !errors.Is(err, hal.ErrTimeout) || !errors.Is(err, hal.ErrUnreachable) {
			t.Fatalf("err %v, want it to say it may have run (timeout) and why it was not sent again", err)
		}
	})

	t.Run("malformed answer", func(t *testing.T) {
		c := srv.mustConnect(t, ClientOptions{})
		sends := 0
		live := func(context.Context) (*Client, error) { return c, nil }
		err := SendAgain(callCtx(t), log, live, func(context.Context, *Client) error {
			sends++
			return fmt.Errorf("%w: a result that does not decode", ErrMalformed)
		})
		if !errors.Is(err, ErrMalformed) || sends != 1 || !c.Dead() {
			t.Fatalf("err %v after %d sends, dead %v: want the error, once, and the connection closed", err, sends, c.Dead())
		}
	})
}
