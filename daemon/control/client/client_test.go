package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/lockstep-io/lockstep/daemon/control/api"
)

func TestConnectRejectsUnknownBus(t *testing.T) {
	t.Parallel()
	if _, err := Connect("systemd"); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("Connect(\"systemd\") = %v, want api.ErrInvalid", err)
	}
}

// TestFromDBusError: every error name a reply can carry comes back as a
// *RemoteError matching exactly one of the API's sentinels. (The server's
// side of the mapping, and the round trip over a real bus, are tested in
// package control.)
func TestFromDBusError(t *testing.T) {
	t.Parallel()
	sentinels := []error{api.ErrNotFound, api.ErrInvalid, api.ErrRefused, api.ErrNotAllowed, api.ErrUnavailable,
		api.ErrFailed, api.ErrAccessDenied}
	for _, tc := range []struct {
		name     string
		dbusName string
		msg      string
		want     error
		wantMsg  string // "" = the reply's own text
	}{
		{name: "not allowed", dbusName: api.ErrorNotAllowed, msg: "recover is not allowed in state Prepared", want: api.ErrNotAllowed},
		{name: "not found", dbusName: api.ErrorNotFound, msg: "control: not found: session s9", want: api.ErrNotFound},
		{name: "invalid", dbusName: api.ErrorInvalidArgs, msg: "control: invalid argument: serial", want: api.ErrInvalid},
		{name: "wrong D-Bus types", dbusName: "org.freedesktop.DBus.Error.InvalidArgs", msg: "Type mismatch", want: api.ErrInvalid},
		{name: "refused", dbusName: api.ErrorRefused, msg: "control: refused: disable the heartbeat first", want: api.ErrRefused},
		{name: "unavailable", dbusName: api.ErrorUnavailable, msg: "control: unavailable: shutting down", want: api.ErrUnavailable},
		{name: "the server's refusal", dbusName: api.ErrorAccessDenied, msg: "control: access denied: uid 1000 (bob) is not a member",
			want: api.ErrAccessDenied},
		{name: "the bus policy's refusal", dbusName: api.ErrorAccessDenied, msg: "Rejected send message, 2 matched rules",
			want: api.ErrAccessDenied, wantMsg: "control: access denied: changes need root or membership of group lockstep"},
		{name: "no lockstepd", dbusName: "org.freedesktop.DBus.Error.ServiceUnknown", msg: "The name is not activatable",
			want: api.ErrUnavailable, wantMsg: "control: lockstepd is not running (nobody owns org.lockstep.Manager1 on this bus)"},
		{name: "a name of a newer server", dbusName: "org.lockstep.Manager1.Error.Melted", msg: "control: melted", want: api.ErrFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := fromDBusError(fmt.Errorf("call: %w", dbus.Error{Name: tc.dbusName, Body: []any{tc.msg}}))
			var re *RemoteError
			if !errors.As(err, &re) || re.Name != tc.dbusName {
				t.Fatalf("got %T %v, want a *RemoteError named %s", err, err, tc.dbusName)
			}
			for _, s := range sentinels {
				if errors.Is(err, s) != (s == tc.want) {
					t.Errorf("errors.Is(err, %v) = %v", s, errors.Is(err, s))
				}
			}
			want := tc.wantMsg
			if want == "" {
				want = tc.msg
			}
			if re.Message != want {
				t.Errorf("message %q, want %q", re.Message, want)
			}
			if tc.wantMsg != "" && re.Detail != tc.msg {
				t.Errorf("detail %q, want the bus's text %q", re.Detail, tc.msg)
			}
		})
	}

	if err := fromDBusError(dbus.ErrClosed); !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "closed") {
		t.Errorf("closed connection: %v, want api.ErrUnavailable", err)
	}
	if err := fromDBusError(context.Canceled); err != context.Canceled {
		t.Errorf("a cancelled call: %v, want it as it is", err)
	}
}
