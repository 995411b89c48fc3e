// Package tasks owns scheduled tasks (daemon/freeze/doc.go, CSM's Scheduled
// Tasks): their schedules and steps (parsing, and the pure computation of
// the next occurrence in the task's time zone across DST), the record
// family "task" of the manager's journal and the state it builds (DB),
// and the Runner that an acting period runs.
//
// A task is a name, a list of steps (session commands such as "suspend
// prod", and "wait prod prepared timeout 15m"), a schedule ("at
// 2026-12-24T02:00", "every 6h", "daily 02:00", "weekly sun 03:30"), the
// IANA zone its wall-clock times are read in, and enabled or disabled.
// The zone is stored in the task, so that both servers of an HA pair
// compute the same occurrences whatever their own zones.
//
// An occurrence is named by its scheduled instant. The runner journals
// it started (occurrence-started, with the acting epoch) before it issues
// anything and finished after; the state refuses a second start of an
// occurrence already dealt with, so a takeover never runs one twice. An
// occurrence journaled started and never finished (the server died) is
// reported interrupted by the next acting period and is not retried.
// Occurrences that came due while no server acted (a takeover, a
// restart) are reported missed, not run late: the former active may have
// run them without this server knowing (see Runner).
//
// Record format (JSON, version 1): {"version":1,"kind":K,"at":T,"task":N,...}
// with kind one of
//
//	task-created         steps, schedule, zone, on (enabled)
//	task-enabled         on
//	task-run-at          run_at (a one-off extra run; zero: none)
//	task-removed         (refused while an occurrence runs)
//	occurrence-started   scheduled, epoch, manual
//	occurrence-finished  scheduled, result (success|failed|interrupted), message
//	occurrence-missed    scheduled (the latest), count, message, manual (a
//	                     task-run-at that came due before any server acted)
package tasks
