package wire

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// maxSends bounds how often SendAgain sends one command: once, and again
// on a new connection for each that died under it.
const maxSends = 3

// SendAgain runs a command (fn) on the connection live gives, within ctx,
// and sends it again on the next live connection each time the one it
// went out on dies before the answer: every hal command is idempotent,
// and a freeze must not be lost to a failover. A command sent on a
// connection that then died and not sent again (no live connection
// within ctx) says it may have run: its error keeps the first one's
// hal.ErrTimeout. An answer that does not decode (ErrMalformed) closes
// its connection, whose endpoint is not to be trusted with the next
// command either (a new one is made), and is the command's error.
func SendAgain(ctx context.Context, log *slog.Logger, live func(context.Context) (*Client, error),
	fn func(context.Context, *Client) error) error {
	var err error
	for range maxSends {
		c, lerr := live(ctx)
		if lerr != nil {
			if err != nil {
				return fmt.Errorf("%w; not sent again: %w", err, lerr)
			}
			return lerr
		}
		err = fn(ctx, c)
		if errors.Is(err, ErrMalformed) && !c.Dead() {
			log.Warn("malformed answer; reconnecting", "err", err)
			c.Close()
			return err
		}
		if err == nil || ctx.Err() != nil || !c.Dead() {
			return err
		}
		log.Info("connection died under a command; sending it again", "err", err)
	}
	return err
}
