// Package version holds the build's version string, set by the Makefile
// with -ldflags -X.
package version

// Version is the release this binary was built from.
var Version = "dev"
