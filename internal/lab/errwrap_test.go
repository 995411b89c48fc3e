package lab

import (
	"errors"
	"io/fs"
	"path/filepath"
	"testing"
)

// TestConfigErrorsKeepTheirCause: a lab file that cannot be read or
// decoded is ErrConfig and keeps its cause (issue 14 §4: "%w: %v" cut the
// inner chain).
func TestConfigErrorsKeepTheirCause(t *testing.T) {
	t.Parallel()
	_, err := LoadConfig(filepath.Join(t.TempDir(), "missing.toml"))
	if !errors.Is(err, ErrConfig) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadConfig(missing): %v; want an error matching ErrConfig and fs.ErrNotExist", err)
	}
}
