package compression

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// xzReader decodes r with the xz program: no xz decoder is among our
// dependencies and xz streams are rare (legacy Docker layers, some ADD
// sources).
func xzReader(r io.Reader) (io.ReadCloser, error) {
	path, err := exec.LookPath("xz")
	if err != nil {
		return nil, fmt.Errorf("decoding xz stream: %w: the xz program is not installed", ErrUnsupported)
	}
	cmd := exec.Command(path, "--decompress", "--stdout")
	cmd.Stdin = r
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("starting xz: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting xz: %w", err)
	}
	return &xzReadCloser{cmd: cmd, out: out, stderr: &stderr}, nil
}

type xzReadCloser struct {
	cmd    *exec.Cmd
	out    io.ReadCloser
	stderr *bytes.Buffer
	done   bool
	err    error
}

func (x *xzReadCloser) Read(p []byte) (int, error) {
	n, err := x.out.Read(p)
	if errors.Is(err, io.EOF) {
		// Report a failed decode instead of a silent, truncated stream.
		if werr := x.wait(); werr != nil {
			return n, werr
		}
	}
	return n, err
}

func (x *xzReadCloser) wait() error {
	if !x.done {
		x.done = true
		if err := x.cmd.Wait(); err != nil {
			x.err = fmt.Errorf("decoding xz stream: %w: %s", err, strings.TrimSpace(x.stderr.String()))
		}
	}
	return x.err
}

// Close stops xz if it is still running and reports its failure, if any.
func (x *xzReadCloser) Close() error {
	if !x.done {
		_ = x.out.Close()
		if x.cmd.Process != nil {
			_ = x.cmd.Process.Kill()
		}
		_ = x.wait()
		return nil
	}
	return x.err
}
