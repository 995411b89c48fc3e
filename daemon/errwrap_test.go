package daemon

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/lockstep-io/lockstep/daemon/config"
	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/ha"
)

// TestHAErrorsKeepTheirCause: an HA refusal is given the admin API's kind
// and keeps its own chain, so that errors.Is reaches both (issue 14 §4:
// "%w: %v" cut the inner chain).
func TestHAErrorsKeepTheirCause(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		cause error
		kind  error
	}{
		{"basic edition", ha.ErrBasicEdition, api.ErrUnavailable},
		{"no TLS for HA", fmt.Errorf("%w: no [ha] cert_file", config.ErrHAUnavailable), api.ErrUnavailable},
		{"bad address", fmt.Errorf("%w: tcp://x", ha.ErrBadAddress), api.ErrInvalid},
		{"no partner name", ha.ErrPartnerIdentity, api.ErrInvalid},
		{"synchronized", ha.ErrSynchronized, api.ErrRefused},
		{"cancelled", fmt.Errorf("ha: set standby: %w", context.Canceled), api.ErrRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := haErr(tc.cause)
			if !errors.Is(err, tc.kind) || !errors.Is(err, tc.cause) {
				t.Errorf("haErr(%v) = %v: errors.Is reaches the kind %v: %v, the cause: %v",
					tc.cause, err, tc.kind, errors.Is(err, tc.kind), errors.Is(err, tc.cause))
			}
		})
	}
}
