package executor

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/builder-project/builder/internal/testutil"
)

// runnerEnv makes TestRuncRunner run a step; its value is the marker.
const runnerEnv = "BUILDER_TEST_RUNC_RUNNER"

// TestRuncRunner is not a test: run by TestProbeRuncKilledBuilder in a
// process of its own (a stand-in for the builder), it runs a long step
// with runc, printing "running" when it started.
func TestRuncRunner(t *testing.T) {
	marker := os.Getenv(runnerEnv)
	if marker == "" {
		t.Skip("only run by TestProbeRuncKilledBuilder")
	}
	ex, err := New(Runc)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	s := f.spec("sleep", "1234")
	s.Env = []string{testutil.MarkerEnv + "=" + marker}
	go func() {
		for len(testutil.MarkedProcesses(t, "sleep 1234", marker)) == 0 {
			time.Sleep(20 * time.Millisecond)
		}
		os.Stdout.WriteString("running\n")
	}()
	t.Fatal(ex.Run(context.Background(), s, IO{}))
}

// TestProbeRuncKilledBuilder: when the process running a runc step is
// killed with SIGKILL, neither runc nor the container's processes survive
// it, and CleanupRuncState and SweepTemp remove what runc left.
func TestProbeRuncKilledBuilder(t *testing.T) {
	testutil.RequirePrivileges(t, "root", "overlay")
	testutil.SkipIfShort(t, "runs runc")
	testutil.RequireTool(t, "runc")
	tmp := privateTMPDIR(t)
	marker := testutil.NewMarker(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestRuncRunner$", "-test.v")
	// The runner's own processes, runc included, carry the marker too.
	cmd.Env = append(os.Environ(), runnerEnv+"="+marker, testutil.MarkerEnv+"="+marker)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "running" {
				started <- true
				return
			}
		}
		started <- false
	}()
	select {
	case ok := <-started:
		if !ok {
			_ = cmd.Wait()
			t.Fatal("the runner ended before its step ran")
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the runner's step did not start")
	}
	if len(testutil.MarkedProcesses(t, "runc", marker)) == 0 {
		t.Fatal("no runc process found while the step runs")
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	for _, cmd := range []string{"runc", "sleep 1234"} {
		if left := waitMarkedGone(t, cmd, marker, 10*time.Second); len(left) != 0 {
			t.Errorf("%s survived the killed builder: %v", cmd, left)
		}
	}
	runs, err := filepath.Glob(filepath.Join(tmp, runDirPrefix+"*"))
	if err != nil || len(runs) != 1 {
		t.Fatalf("run directories left = %q, %v: want the killed run's", runs, err)
	}
	state := filepath.Join(runs[0], runcStateDir)
	if ents, _ := os.ReadDir(state); len(ents) == 0 {
		t.Errorf("no runc state left in %s to clean up", state)
	}
	if err := cleanupRuncState(state); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(state); len(ents) != 0 {
		t.Errorf("runc state left after CleanupRuncState: %v", ents)
	}
	if err := sweepTemp(); err != nil {
		t.Fatal(err)
	}
	// What is left is the runner's own test directory (its fixture).
	left, _ := filepath.Glob(filepath.Join(tmp, "builder-*"))
	if len(left) != 0 {
		t.Errorf("left after SweepTemp: %q", left)
	}
	testutil.NoMountsBelow(t, tmp)
}

// TestSweepTemp: SweepTemp removes the directories of dead owners and
// leaves those in use alone.
func TestSweepTemp(t *testing.T) {
	testutil.RequirePrivileges(t, "linux")
	tmp := privateTMPDIR(t)
	dead := filepath.Join(tmp, runDirPrefix+"dead")
	if err := os.MkdirAll(filepath.Join(dead, "rootfs"), 0o700); err != nil {
		t.Fatal(err)
	}
	live, lock, err := makeTempDir(rootfsDirPrefix)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := sweepTemp(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead); err == nil {
		t.Error("a dead run's directory was not removed")
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("a directory in use was removed: %v", err)
	}
	old := filepath.Join(tmp, "other-dir")
	if err := os.Mkdir(old, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := sweepTemp(); err != nil || !strings.HasPrefix(filepath.Base(live), rootfsDirPrefix) {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); err != nil {
		t.Error("a directory that is not the executor's was removed")
	}
}
