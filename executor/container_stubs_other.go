//go:build !linux

package executor

// ContainerStubs needs Linux: no container runs elsewhere.
func ContainerStubs(stateDir string) ([]string, error) { return nil, errUnsupported }
