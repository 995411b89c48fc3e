package main

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestPackageVersion(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 21, 23, 52, 43, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		explicit string
		c        commit
		want     string
		err      error
	}{
		{name: "explicit", explicit: "0.1.0", c: commit{Hash: "abc1234", Time: at}, want: "0.1.0"},
		{name: "explicit with v", explicit: "v1.2.3", want: "1.2.3"},
		{name: "explicit wins over a tag", explicit: "2.0.0~rc1", c: commit{Tags: []string{"v1.0.0"}}, want: "2.0.0~rc1"},
		{name: "explicit with a dash", explicit: "0.1.0-1", err: errVersion},
		{name: "explicit with a colon", explicit: "1:0.1.0", err: errVersion},
		{name: "explicit with a space", explicit: "0.1 0", err: errVersion},
		{name: "explicit starting with a letter", explicit: "dev", err: errVersion},
		{name: "latest tag", c: commit{Hash: "abc1234", Time: at, Tags: []string{"v0.9.0", "v0.10.0", "v0.2.11"}}, want: "0.10.0"},
		{name: "not release tags", c: commit{Hash: "abc1234", Time: at, Tags: []string{"v1.0", "v1.0.0-rc1", "v01.0.0", "x1.0.0"}},
			want: "0.0.0~git20261121.abc1234"},
		{name: "snapshot", c: commit{Hash: "89a223f", Time: at}, want: "0.0.0~git20261121.89a223f"},
		{name: "snapshot date in UTC", c: commit{Hash: "89a223f", Time: time.Date(2026, 11, 22, 1, 0, 0, 0, time.FixedZone("CET", 3600))},
			want: "0.0.0~git20261122.89a223f"},
		{name: "nothing at all", err: errVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := packageVersion(tc.explicit, tc.c)
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Errorf("packageVersion(%q, %+v) = %q, %v; want %q, %v", tc.explicit, tc.c, got, err, tc.want, tc.err)
			}
			if err == nil && !versionRe.MatchString(got) {
				t.Errorf("%q does not match versionRe", got)
			}
		})
	}
}

// The versions sort as releases should, for dpkg and for rpm: a snapshot
// before the first release, releases by number, a tilde before the
// release it precedes.
func TestVersionsOrder(t *testing.T) {
	t.Parallel()
	ordered := []string{"0.0.0~git20261121.89a223f", "0.0.0~git20261122.0000000", "0.0.0", "0.1.0~rc1", "0.1.0", "0.1.1", "0.2.0", "0.10.0", "1.0.0"}
	dpkg, err := exec.LookPath("dpkg")
	if err != nil {
		t.Skip("dpkg is not installed")
	}
	rpm, _ := exec.LookPath("rpm")
	for i := 1; i < len(ordered); i++ {
		a, b := ordered[i-1], ordered[i]
		if err := exec.Command(dpkg, "--compare-versions", a, "lt", b).Run(); err != nil {
			t.Errorf("dpkg: %s is not below %s", a, b)
		}
		if rpm == "" {
			continue
		}
		out, err := exec.Command(rpm, "--eval", `%{lua: print(rpm.vercmp("`+a+`", "`+b+`"))}`).Output()
		if err != nil || strings.TrimSpace(string(out)) != "-1" {
			t.Errorf("rpm: vercmp(%s, %s) = %q, %v; want -1", a, b, out, err)
		}
	}
}
