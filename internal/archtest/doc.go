// Package archtest holds no code: its test guards the package map of
// docs/architecture.md, checking every package's imports against the
// direction the map allows.
package archtest
