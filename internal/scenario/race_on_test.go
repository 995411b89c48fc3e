//go:build race

package scenario

// raceEnabled: the race detector's stack depot cannot hold hundreds of
// full scenarios in one process (it crashes in StackDepotBase::Put), so
// under -race a few seeds run and `make test` runs the full count in a
// separate pass without it.
const raceEnabled = true
