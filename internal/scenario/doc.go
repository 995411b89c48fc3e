// Package scenario runs the failure scenarios S1–S6 against the
// real freeze core: 4 primary and 4 secondary emulated storage systems,
// one consistency group spanning all of them, the dependent-write
// workload, a fault, and the oracle's verdict on the secondary image.
//
// Runs are in-process, on whatever clock they are given: tests run them
// inside a testing/synctest bubble (virtual time: minutes of storage
// timers in milliseconds, deterministic), lockstep-lab on a scaled clock.
// With Options.Via the same scenarios run over loopback TLS against a lab
// server (wire.go): the core reaches storage through the direct driver,
// or through drivers/hmc and a dual HMC fronting every system; the faults
// that cut the manager off a system then cut the private links of its
// HMCs. The HMC scenarios (H1-H4) fail the HMCs themselves (H4: one
// HMC's private link to a system goes silent while the HMC answers); S7
// and S8, over the direct driver only, silence the cluster one system's
// connection runs to while the other cluster answers (S8: the system
// whose paths fail, so that its suspend event is lost). S5 runs
// over the direct driver with a z/OS host that has every system online,
// each system's driver composed (hal/compose: direct, then z/OS): the
// heartbeat flows over direct only, and when a system's TCP/IP
// connections die its suspend is heard through the host's messages and
// the freeze goes out in-band (Options.NoZOS: the control case without
// the z/OS connection, where the system freezes itself only at H).
// Random schedules (Schedule) draw faults from a seed, so that any failing
// seed replays exactly.
package scenario
