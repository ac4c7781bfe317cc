// Package testutil holds test helpers shared by builder's packages: gating of
// privileged tests (skip locally, fail under CI=true) and small fixtures such
// as a busybox root filesystem and in-memory tar archives.
package testutil
