// Package ioctx owns cancellation of streaming copies: it wraps an io.Reader
// or io.Writer so that it fails with the context's error once the context is
// done, which stops a long copy even when the code driving it never looks at
// the context.
package ioctx
