package executor

import (
	"debug/elf"
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// probeEnv makes the test binary, started inside a container (bound at
// /probe), run one probe instead of the tests: it prints the outcome and
// exits 0 when the operation succeeded, 1 when it failed.
const probeEnv = "BUILDER_TEST_PROBE"

// runProbe runs the probe probeEnv names, if any, and reports whether it
// did (it exits then).
func runProbe() bool {
	mode, ok := os.LookupEnv(probeEnv)
	if !ok {
		return false
	}
	name, arg, _ := strings.Cut(mode, ":")
	var err error
	switch name {
	case "keyctl":
		_, err = unix.KeyctlInt(unix.KEYCTL_GET_KEYRING_ID, unix.KEY_SPEC_SESSION_KEYRING, 1, 0, 0)
	case "keysearch":
		_, err = unix.KeyctlSearch(unix.KEY_SPEC_SESSION_KEYRING, "user", arg, 0)
	case "io_uring":
		var params [120]byte
		fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params[0])), 0)
		if errno != 0 {
			err = errno
		} else {
			unix.Close(int(fd))
		}
	case "abstract":
		err = connectAbstract(arg)
	default:
		err = fmt.Errorf("unknown probe %q", name)
	}
	if err != nil {
		fmt.Printf("%s: %v\n", name, err)
		os.Exit(1)
	}
	fmt.Printf("%s: ok\n", name)
	os.Exit(0)
	return true
}

func connectAbstract(name string) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Connect(fd, &unix.SockaddrUnix{Name: "@" + name})
}

// probeMount binds the test binary at /probe, for probes of s that set
// probeEnv. The binary must be static to run in the busybox root.
func probeMount(t *testing.T) Mount {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Section(".interp") != nil {
		t.Fatalf("the test binary is dynamically linked and cannot run as a probe in the busybox root (does a test import net with cgo?)")
	}
	return Mount{Type: "bind", Source: exe, Destination: "/probe", Options: []string{"ro"}}
}

// withProbe returns s running probe mode in the container.
func withProbe(t *testing.T, s Spec, mode string) Spec {
	s.Args = []string{"/probe"}
	s.Env = append(s.Env, probeEnv+"="+mode)
	s.Mounts = append(s.Mounts, probeMount(t))
	return s
}
