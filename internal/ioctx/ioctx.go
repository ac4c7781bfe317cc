package ioctx

import (
	"context"
	"io"
)

// Reader returns an io.Reader that reads from r while ctx is not done. Once
// ctx is done every Read returns 0 and ctx.Err() without calling r; a Read
// already blocked in r is not interrupted.
func Reader(ctx context.Context, r io.Reader) io.Reader {
	return &reader{ctx: ctx, r: r}
}

// Writer returns an io.Writer that writes to w while ctx is not done. Once
// ctx is done every Write returns 0 and ctx.Err() without calling w; a Write
// already blocked in w is not interrupted.
func Writer(ctx context.Context, w io.Writer) io.Writer {
	return &writer{ctx: ctx, w: w}
}

type reader struct {
	ctx context.Context
	r   io.Reader
}

func (r *reader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

type writer struct {
	ctx context.Context
	w   io.Writer
}

func (w *writer) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	return w.w.Write(p)
}
