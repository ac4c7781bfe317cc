package ioctx

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// countingReader counts the calls that reach it.
type countingReader struct {
	r     io.Reader
	calls int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.calls++
	return c.r.Read(p)
}

func TestReader(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	src := &countingReader{r: strings.NewReader("hello, world")}
	r := Reader(ctx, src)
	buf := make([]byte, 5)
	if n, err := r.Read(buf); n != 5 || err != nil || string(buf) != "hello" {
		t.Fatalf("Read = %d, %v, %q before cancel", n, err, buf[:n])
	}
	cancel()
	n, err := r.Read(buf)
	if n != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("Read after cancel = %d, %v; want 0, context.Canceled", n, err)
	}
	if src.calls != 1 {
		t.Errorf("underlying reader called %d times, want 1", src.calls)
	}
}

func TestReaderCopiesToEOF(t *testing.T) {
	want := strings.Repeat("x", 100<<10)
	got, err := io.ReadAll(Reader(context.Background(), strings.NewReader(want)))
	if err != nil || string(got) != want {
		t.Fatalf("ReadAll = %d bytes, %v; want %d bytes", len(got), err, len(want))
	}
}

func TestWriter(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var dst bytes.Buffer
	w := Writer(ctx, &dst)
	if n, err := w.Write([]byte("abc")); n != 3 || err != nil {
		t.Fatalf("Write = %d, %v before cancel", n, err)
	}
	cancel()
	if n, err := w.Write([]byte("def")); n != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("Write after cancel = %d, %v; want 0, context.Canceled", n, err)
	}
	if dst.String() != "abc" {
		t.Errorf("destination holds %q, want abc", dst.String())
	}
}

func TestDeadline(t *testing.T) {
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if _, err := io.Copy(Writer(ctx, io.Discard), strings.NewReader("x")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Copy to Writer = %v, want DeadlineExceeded", err)
	}
	if _, err := io.Copy(io.Discard, Reader(ctx, strings.NewReader("x"))); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Copy from Reader = %v, want DeadlineExceeded", err)
	}
}
