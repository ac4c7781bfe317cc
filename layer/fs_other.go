//go:build !linux

package layer

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Diff writes an OCI layer tar of an overlay upperdir to w. It is only
// implemented on Linux; here it returns ErrUnsupported.
func Diff(ctx context.Context, upper string, opts DiffOptions, w io.Writer) error {
	return fmt.Errorf("diffing %s: %w", upper, ErrUnsupported)
}

// DiffDirs writes the layer that turns lower into upper. It is only
// implemented on Linux; here it returns ErrUnsupported.
func DiffDirs(ctx context.Context, lower, upper string, opts DiffOptions, w io.Writer) error {
	return fmt.Errorf("diffing %s against %s: %w", upper, lower, ErrUnsupported)
}

// Apply unpacks a layer tar onto dir. It is only implemented on Linux; here
// it returns ErrUnsupported.
func Apply(ctx context.Context, dir string, r io.Reader, opts ApplyOptions) (int64, error) {
	return 0, fmt.Errorf("applying layer to %s: %w", dir, ErrUnsupported)
}

// ClampTimes clamps the modification times below dir to epoch. It is only
// implemented on Linux; here it returns ErrUnsupported.
func ClampTimes(ctx context.Context, dir string, epoch time.Time) error {
	return fmt.Errorf("clamping times below %s: %w", dir, ErrUnsupported)
}
