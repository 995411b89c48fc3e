// Package systemd holds lockstepd's systemd integration files and the
// tests that check them; it has no Go code of its own.
//
//	lockstepd.service   the unit: Type=notify, reload by SIGHUP, watchdog,
//	                    hardening (installed in /usr/lib/systemd/system)
//	lockstep.sysusers   user and group lockstep (/usr/lib/sysusers.d/lockstep.conf)
//	lockstep.tmpfiles   the state directory (/usr/lib/tmpfiles.d/lockstep.conf)
//
// The tests run the real tools where they are installed:
//
//   - systemd-analyze verify on the unit, failing on any message it
//     prints. verify checks that ExecStart's binary exists, so the test
//     verifies a copy of the unit whose ExecStart points at a freshly
//     built cmd/lockstepd when that command exists, else at /bin/true;
//     nothing else is changed. systemd need not be PID 1 for this.
//   - systemd-analyze security --offline, with an exposure threshold, so
//     that hardening is not lost by accident.
//   - systemd-analyze syscall-filter: the system calls lockstepd was
//     recorded making under strace (testdata/lockstepd-syscalls.txt, whose
//     header says how) are all allowed by the unit's SystemCallFilter=
//     (@system-service without @privileged and @resources).
//   - systemd-sysusers and systemd-tmpfiles --create on an empty
//     --root directory: the user is created there, then the state
//     directory with its owner and mode (the latter only as root).
//
// A missing tool skips its test, or fails it when CI=true. The files are
// also parsed by the tests themselves, which check that they agree with
// each other and with daemon/config (state directory, user, config path).
package systemd
