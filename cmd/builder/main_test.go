package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMain lets tests run this binary as the builder CLI: with
// BUILDER_TEST_CLI=1 the process is `builder` itself.
func TestMain(m *testing.M) {
	if os.Getenv("BUILDER_TEST_CLI") == "1" {
		main()
		os.Exit(0)
	}
	if reexec() {
		return
	}
	os.Exit(m.Run())
}

// cli returns a command running the CLI with args on the store root
// (given before the verb, as a global flag).
func cli(root string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], append([]string{"--root", root}, args...)...)
	cmd.Env = append(os.Environ(), "BUILDER_TEST_CLI=1")
	return cmd
}

// mustCLI runs the CLI and returns its standard output.
func mustCLI(t *testing.T, root string, stdin []byte, args ...string) string {
	t.Helper()
	cmd := cli(root, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("builder %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}
