package main

import (
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// errVersion: a version that deb or rpm would misread.
var errVersion = errors.New("packaging: invalid version")

// versionRe is what both dpkg and rpm order the same way: digits first,
// then letters, digits, '.', '+' and '~' ('~' sorts before anything, so
// 0.0.0~git… < 0.0.0). No '-' (the release separator of both) and no
// '_' or ':' (rpm's and dpkg's epoch).
var versionRe = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)

// tagRe is a release tag.
var tagRe = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$`)

// commit is what the version and the file times come from.
type commit struct {
	Hash string    // abbreviated
	Time time.Time // committer time
	Tags []string  // tags reachable from the commit
}

// packageVersion is the package version: explicit if given (a leading
// "v" dropped), else the highest vX.Y.Z tag reachable from the commit,
// else 0.0.0~git<commit date YYYYMMDD>.<short hash>, which sorts below
// every release.
func packageVersion(explicit string, c commit) (string, error) {
	if explicit != "" {
		v := strings.TrimPrefix(explicit, "v")
		if !versionRe.MatchString(v) {
			return "", fmt.Errorf("%w: %q: want digits first, then only letters, digits, '.', '+' or '~'", errVersion, explicit)
		}
		return v, nil
	}
	var best []int
	for _, t := range c.Tags {
		m := tagRe.FindStringSubmatch(t)
		if m == nil {
			continue
		}
		var n []int
		for _, s := range m[1:] {
			i, err := strconv.Atoi(s)
			if err != nil {
				return "", fmt.Errorf("%w: tag %q: %w", errVersion, t, err)
			}
			n = append(n, i)
		}
		if best == nil || slices.Compare(n, best) > 0 {
			best = n
		}
	}
	if best != nil {
		return fmt.Sprintf("%d.%d.%d", best[0], best[1], best[2]), nil
	}
	if c.Hash == "" || c.Time.IsZero() {
		return "", fmt.Errorf("%w: no tag and no commit to name a snapshot after", errVersion)
	}
	return fmt.Sprintf("0.0.0~git%s.%s", c.Time.UTC().Format("20060102"), c.Hash), nil
}

// headCommit reads the commit checked out in dir.
func headCommit(dir string) (commit, error) {
	out, err := git(dir, "log", "-1", "--format=%h%n%ct")
	if err != nil {
		return commit{}, err
	}
	hash, ts, _ := strings.Cut(strings.TrimSpace(out), "\n")
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return commit{}, fmt.Errorf("packaging: commit time %q: %w", ts, err)
	}
	tags, err := git(dir, "tag", "--merged", "HEAD", "--list", "v*")
	if err != nil {
		return commit{}, err
	}
	return commit{Hash: hash, Time: time.Unix(secs, 0).UTC(), Tags: strings.Fields(tags)}, nil
}

func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("packaging: git %s: %w: %s", strings.Join(args, " "), err, ee.Stderr)
		}
		return "", fmt.Errorf("packaging: git %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}
