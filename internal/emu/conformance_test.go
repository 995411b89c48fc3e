package emu_test

import (
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/hal/haltest"
	"github.com/lockstep-io/lockstep/internal/emu"
)

// StandardLab builds haltest's topology on a fabric.
func standardLab(t *testing.T) *haltest.Lab {
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	fab := emu.NewFabric(emu.Options{Clock: clk})
	lsss := []emu.LSSConfig{{LSS: haltest.FBLSS, Type: hal.FB, Volumes: haltest.Volumes},
		{LSS: haltest.CKDLSS, Type: hal.CKD, Volumes: haltest.Volumes}}
	p, err := fab.AddSystem(emu.SystemConfig{Serial: haltest.Primary, LSSs: lsss})
	if err != nil {
		t.Fatal(err)
	}
	s, err := fab.AddSystem(emu.SystemConfig{Serial: haltest.Secondary, LSSs: lsss})
	if err != nil {
		t.Fatal(err)
	}
	return &haltest.Lab{
		Primary:   p.Connect("conformance"),
		Secondary: s.Connect("conformance"),
		Write:     fab.Write,
		Read:      fab.Read,
		CutPaths:  func(up bool) { fab.SetSystemPaths(haltest.Primary, up) },
		CutManager: func(up bool) {
			mode := emu.LinkDown
			if up {
				mode = emu.LinkUp
			}
			p.SetManagerLink("conformance", mode)
		},
		Pass: clk.Advance,
	}
}

func TestConformance(t *testing.T) {
	haltest.Run(t, standardLab)
}
