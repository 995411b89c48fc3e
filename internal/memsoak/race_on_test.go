//go:build race

package memsoak_test

const raceEnabled = true
