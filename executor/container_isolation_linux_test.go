package executor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/builder-project/builder/internal/testutil"
)

// holdersOf lists the pids of processes with a descriptor open on the
// namespace ns ("net:[N]"). Processes that exit meanwhile are skipped.
func holdersOf(t *testing.T, ns string) []int {
	t.Helper()
	procs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		for _, fd := range fds {
			if l, _ := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name())); l == ns {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// TestContainerIsolation: a detached container, and a process exec'd into
// it, are filtered by seccomp, limited, and have the default network,
// whose NAT stops when the container does.
func TestContainerIsolation(t *testing.T) {
	testutil.RequirePrivileges(t, "root", "overlay")
	if err := checkNetwork(); err != nil {
		t.Fatal(err)
	}
	c := newContainer(t)
	cfg := c.config(true, sh(`readlink /proc/self/ns/net; grep '^Seccomp:' /proc/self/status
cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max
ip route | grep -c default; echo done; sleep 1000`)...)
	cfg.Resources = Resources{PidsLimit: 32}
	c.start(t, cfg, IO{})
	var out strings.Builder
	testutil.WaitUntil(t, 10*time.Second, "the container's output", func() bool {
		out.Reset()
		_ = ContainerLogs(c.dir, &out)
		return strings.Contains(out.String(), "done")
	})
	lines := strings.Fields(out.String())
	if len(lines) < 5 || lines[0] == hostNetNS(t) || lines[2] != "2" || lines[3] != "32" || lines[4] != "1" {
		t.Fatalf("container output %q: want its own network with a default route, Seccomp: 2, pids.max 32", out.String())
	}
	// ExecContainer joins the namespaces /proc/PID/ns of the init shows:
	// those of its thread group leader, which must have joined them.
	r, err := c.record()
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", r.Pid)); got != lines[0] {
		t.Errorf("the container's init shows network namespace %s, its process %s", got, lines[0])
	}
	if code, got := c.exec(t, ProcessSpec{Args: sh("grep '^Seccomp:' /proc/self/status; readlink /proc/self/ns/net")}); code != 0 || !strings.Contains(got, "2\n"+lines[0]) {
		t.Errorf("exec: %d %q: want Seccomp: 2 in the container's network", code, got)
	}
	if len(holdersOf(t, lines[0])) == 0 {
		t.Error("nothing holds the container's network namespace but its processes: no NAT")
	}
	if err := StopContainer(context.Background(), c.dir, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	testutil.WaitUntil(t, 10*time.Second, "the NAT to stop", func() bool { return len(holdersOf(t, lines[0])) == 0 })
}
