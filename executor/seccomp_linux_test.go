package executor

import (
	"encoding/binary"
	"runtime"

	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"golang.org/x/net/bpf"
)

func TestSeccompProfiles(t *testing.T) {
	def, err := Spec{Args: []string{"x"}}.OCI()
	if err != nil {
		t.Fatal(err)
	}
	if def.Linux.Seccomp == nil || def.Linux.Seccomp.DefaultAction != "SCMP_ACT_ERRNO" {
		t.Fatalf("default profile = %+v", def.Linux.Seccomp)
	}
	prog, err := compileSeccomp(def.Linux.Seccomp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bpf.Assemble(prog); err != nil || len(prog) > 4096 {
		t.Errorf("default profile: %d instructions, %v", len(prog), err)
	}
	unconfined, err := Spec{Args: []string{"x"}, Seccomp: SeccompUnconfined}.OCI()
	if err != nil || unconfined.Linux.Seccomp != nil {
		t.Errorf("unconfined: %+v, %v", unconfined.Linux.Seccomp, err)
	}
	file := filepath.Join(t.TempDir(), "profile.json")
	profile := `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}`
	if err := os.WriteFile(file, []byte(profile), 0o644); err != nil {
		t.Fatal(err)
	}
	custom, err := Spec{Args: []string{"x"}, Seccomp: file}.OCI()
	if err != nil || custom.Linux.Seccomp == nil || len(custom.Linux.Seccomp.Syscalls) != 1 {
		t.Fatalf("custom: %+v, %v", custom.Linux.Seccomp, err)
	}
	if _, err := compileSeccomp(custom.Linux.Seccomp); err != nil {
		t.Error(err)
	}
	if _, err := (Spec{Args: []string{"x"}, Seccomp: filepath.Join(t.TempDir(), "missing.json")}).OCI(); err == nil {
		t.Error("missing profile: no error")
	}
}

// TestSeccompFilterDecisions runs the compiled default profile in a BPF
// interpreter on hand-made system calls.
func TestSeccompFilterDecisions(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("system call numbers below are amd64's")
	}
	sp, err := Spec{Args: []string{"x"}}.OCI()
	if err != nil {
		t.Fatal(err)
	}
	prog, err := compileSeccomp(sp.Linux.Seccomp)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	const (
		allow = unix.SECCOMP_RET_ALLOW
		eperm = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	)
	call := func(arch uint32, nr uint32, args ...uint64) uint32 {
		// The interpreter loads 32-bit words big-endian, the kernel in
		// native order: store each word so that it reads back as the
		// kernel would read it on a little-endian machine.
		buf := make([]byte, 64)
		put := binary.BigEndian.PutUint32
		put(buf[0:], nr)
		put(buf[4:], arch)
		for i, a := range args {
			put(buf[16+8*i:], uint32(a))
			put(buf[16+8*i+4:], uint32(a>>32))
		}
		ret, err := vm.Run(buf)
		if err != nil {
			t.Fatal(err)
		}
		return uint32(ret)
	}
	const x86_64 = 0xc000003e
	for _, c := range []struct {
		name string
		nr   uint32
		args []uint64
		want uint32
	}{
		{"read", unix.SYS_READ, nil, allow},
		{"socket(AF_INET)", unix.SYS_SOCKET, []uint64{unix.AF_INET}, allow},
		{"socket(AF_NETLINK)", unix.SYS_SOCKET, []uint64{unix.AF_NETLINK}, allow},
		{"socket(AF_VSOCK)", unix.SYS_SOCKET, []uint64{unix.AF_VSOCK}, eperm},
		{"socket(AF_ALG)", unix.SYS_SOCKET, []uint64{unix.AF_ALG}, eperm},
		{"socket(AF_INET) high bits", unix.SYS_SOCKET, []uint64{1<<32 | unix.AF_INET}, eperm},
		{"clone(SIGCHLD)", unix.SYS_CLONE, []uint64{uint64(unix.SIGCHLD)}, allow},
		{"clone(CLONE_NEWUSER)", unix.SYS_CLONE, []uint64{unix.CLONE_NEWUSER | uint64(unix.SIGCHLD)}, eperm},
		{"clone3", unix.SYS_CLONE3, nil, unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		{"personality(0)", unix.SYS_PERSONALITY, []uint64{0}, allow},
		{"personality(0xffffffff)", unix.SYS_PERSONALITY, []uint64{0xffffffff}, allow},
		{"personality(1)", unix.SYS_PERSONALITY, []uint64{1}, eperm},
		{"unshare", unix.SYS_UNSHARE, []uint64{unix.CLONE_NEWUSER}, eperm},
		{"keyctl", unix.SYS_KEYCTL, nil, eperm},
		{"io_uring_setup", unix.SYS_IO_URING_SETUP, nil, eperm},
		{"mount", unix.SYS_MOUNT, nil, eperm},
		{"x32 read", unix.SYS_READ | 0x40000000, nil, eperm},
	} {
		if got := call(x86_64, c.nr, c.args...); got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, got, c.want)
		}
	}
	if got := call(0x40000003 /* i386 */, 3, 0); got != eperm {
		t.Errorf("i386 read = %#x, want the default action", got)
	}
}
