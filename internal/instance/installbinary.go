package instance

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// InstallBinary copies the running pgward binary to dest, mode 0555, for a
// pod whose operand image has no pgward (build.withOperandImage): the init
// container runs this from pgward's image into an emptyDir the postgres
// container mounts read-only. The copy is written beside dest and renamed,
// so a killed copy never leaves a truncated binary under dest's name.
func InstallBinary(dest string) error {
	if os.Geteuid() == 0 {
		return errors.New("install-binary never runs as root")
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the pgward binary: %w", err)
	}
	return copyExecutable(self, dest)
}

func copyExecutable(src, dest string) error {
	in, err := os.Open(src) // #nosec G304 -- the running executable
	if err != nil {
		return fmt.Errorf("reading %s: %w", src, err)
	}
	defer func() { _ = in.Close() }()
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".pgward-*")
	if err != nil {
		return fmt.Errorf("copying pgward to %s: %w", dest, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := io.Copy(tmp, in); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("copying pgward to %s: %w", dest, err)
	}
	if err := tmp.Chmod(0o555); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("copying pgward to %s: %w", dest, err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("copying pgward to %s: %w", dest, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("copying pgward to %s: %w", dest, err)
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return fmt.Errorf("copying pgward to %s: %w", dest, err)
	}
	return nil
}
