//go:build !linux

package userns

// modeEnv is Info.Entered, for the child's own reports.
const modeEnv = "_BUILDER_USERNS"

// Enter does nothing outside Linux: there are no user namespaces to enter.
func Enter() {}
