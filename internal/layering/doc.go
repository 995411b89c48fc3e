// Package layering owns the test that holds lockstep's import rules
// (imports flow cmd -> daemon -> (daemon/*, ha) -> persist -> hal;
// drivers import only hal and their wire package): a table of named
// rules, each checked against the non-test dependencies that
// `go list -deps` reports, failing with the rule's name and the chain of
// imports that breaks it. It has no code of its own.
package layering
