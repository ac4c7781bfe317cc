//go:build !linux

package store

// detachMount does nothing where builder mounts nothing.
func detachMount(string) {}
