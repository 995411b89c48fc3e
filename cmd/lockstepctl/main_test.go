package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func ctl(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String() + errb.String()
}

func TestUsageAndUnreachableDaemon(t *testing.T) {
	t.Parallel()
	nobus := "unix:path=" + filepath.Join(t.TempDir(), "none")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, exitUsage, "usage: lockstepctl"},
		{[]string{"--nonsense"}, exitUsage, "usage"},
		{[]string{"--bus", nobus, "status"}, exitFail, "cannot reach the"},
	} {
		code, out := ctl(t, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("%q: exit %d, output %q; want %d and %q", tc.args, code, out, tc.code, tc.want)
		}
	}
}
