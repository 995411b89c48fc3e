// Package cli is lockstepctl's command tree: every verb and sub-verb with
// its flags, its help and what it prints. The binary (cmd/lockstepctl)
// runs it; the packaging program (packaging/) generates lockstepctl's man
// pages and its shell completion from the same tree, so the help, the
// manual and the completion cannot drift apart.
//
// Each command is thin: parse the arguments, call the admin API's client
// (daemon/control) over D-Bus, print the answer (a table, or JSON with
// --json). A command connects to the bus only when it runs: "--help",
// "help VERB" and a usage error never touch a bus.
//
// Exit codes (Run): 0 done; 1 refused or failed (the message says why);
// 2 usage: an unknown verb or flag, a wrong number of arguments, a
// malformed value, or the daemon's answer that an argument is invalid.
package cli
