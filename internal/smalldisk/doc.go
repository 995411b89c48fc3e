// Package smalldisk gives tests a small file system of their own to fill
// up: a tmpfs mounted on a temporary directory (mount(8), so root), for
// the tests of what lockstep does on a full disk (docs/architecture.md, Trust). Without
// root the test is skipped with a message saying so, unless CI=true,
// where it fails: CI runs as root and must run these tests.
package smalldisk
