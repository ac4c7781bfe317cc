package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/builder-project/builder/builder"
)

// runCLI runs the CLI and returns its output and exit code.
func runCLI(t *testing.T, root string, args ...string) (string, string, int) {
	t.Helper()
	cmd := cli(root, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// TestContainerCommands drives the container verbs through the CLI and
// checks what each prints: from, copy, config, mount, diff, ps, run,
// commit, inspect, export, rmi's refusal and rm.
func TestContainerCommands(t *testing.T) {
	root := storeWithBusybox(t)
	host := filepath.Join(t.TempDir(), "f.txt")
	writeFile(t, host, []byte("copied\n"))

	if out := mustCLI(t, root, nil, "from", "--name", "work", "busybox"); out != "work\n" {
		t.Errorf("from printed %q", out)
	}
	mustCLI(t, root, nil, "copy", "work", host, "/srv/")
	mustCLI(t, root, nil, "config", "--cmd", `["cat", "/srv/f.txt", "/srv/edit"]`, "--label", "stage=test", "work")
	merged := strings.TrimSpace(mustCLI(t, root, nil, "mount", "work"))
	if !strings.HasPrefix(merged, root+"/containers/") {
		t.Fatalf("mount printed %q", merged)
	}
	t.Cleanup(func() { cli(root, "umount", "work").Run() })
	writeFile(t, filepath.Join(merged, "srv/edit"), []byte("edited\n"))
	if err := os.Remove(filepath.Join(merged, "etc/group")); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, root, nil, "umount", "work")
	if diff := mustCLI(t, root, nil, "diff", "work"); diff != "C /etc\nD /etc/group\nA /srv\nA /srv/edit\nA /srv/f.txt\n" {
		t.Errorf("diff printed:\n%s", diff)
	}

	if out, _, code := runCLI(t, root, "run", "--name", "r1", "busybox", "sh", "-c", "echo hi > /x; exit 3"); code != 3 || out != "" {
		t.Errorf("run: exit %d, output %q", code, out)
	}
	if _, stderr, code := runCLI(t, root, "run", "--rm", "busybox", "/nonexistent"); code != 127 || !strings.Contains(stderr, "nonexistent") {
		t.Errorf("run of a missing command: exit %d, %q", code, stderr)
	}
	ps := mustCLI(t, root, nil, "ps", "-a")
	lines := strings.Split(strings.TrimSpace(ps), "\n")
	if len(lines) != 3 || !regexp.MustCompile(`^CONTAINER ID +IMAGE +COMMAND +CREATED +STATUS +NAMES$`).MatchString(lines[0]) {
		t.Fatalf("ps -a:\n%s", ps)
	}
	if !regexp.MustCompile(`^[0-9a-f]{12} +busybox +"sh -c echo hi > /x;…" +.* ago +Exited \(3\) .* ago +r1$`).MatchString(lines[1]) ||
		!regexp.MustCompile(`^[0-9a-f]{12} +busybox +"cat /srv/f.txt /srv…" +.* ago +Created +work$`).MatchString(lines[2]) {
		t.Errorf("ps -a rows:\n%s", ps)
	}
	if out := mustCLI(t, root, nil, "ps"); strings.Count(out, "\n") != 1 {
		t.Errorf("ps lists stopped containers:\n%s", out)
	}
	if out := mustCLI(t, root, nil, "ps", "-a", "--filter", "status=exited", "--format", "{{.Names}} {{.State}}"); out != "r1 exited\n" {
		t.Errorf("ps --filter --format printed %q", out)
	}
	if ids := strings.Fields(mustCLI(t, root, nil, "ps", "-aq")); len(ids) != 2 || len(ids[0]) != 12 {
		t.Errorf("ps -aq printed %v", ids)
	}

	id := strings.TrimSpace(mustCLI(t, root, nil, "commit", "-a", "Docker Newbee", "-m", "Added a new file", "-c", `CMD ["cat", "/x"]`, "r1", "test:0.1"))
	if !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("commit printed %q", id)
	}
	if out := mustCLI(t, root, nil, "run", "--rm", "test:0.1"); out != "hi\n" {
		t.Errorf("the committed image printed %q", out)
	}
	mustCLI(t, root, nil, "commit", "work", "work:1")
	if out := mustCLI(t, root, nil, "run", "--rm", "work:1"); out != "copied\nedited\n" {
		t.Errorf("the committed working container printed %q", out)
	}

	var insp []map[string]any
	if err := json.Unmarshal([]byte(mustCLI(t, root, nil, "inspect", "r1", "test:0.1")), &insp); err != nil {
		t.Fatal(err)
	}
	gd := insp[0]["GraphDriver"].(map[string]any)
	data := gd["Data"].(map[string]any)
	for _, k := range []string{"LowerDir", "UpperDir", "WorkDir", "MergedDir"} {
		if s, _ := data[k].(string); !strings.HasPrefix(s, root) {
			t.Errorf("container GraphDriver.Data.%s = %v", k, data[k])
		}
	}
	if fi, err := os.Stat(filepath.Join(data["UpperDir"].(string), "x")); err != nil || gd["Name"] != "overlay" || insp[0]["Name"] != "/r1" {
		t.Errorf("container inspect: upper %v, %v; %v", fi, err, insp[0])
	}
	if insp[1]["Id"] != id || insp[1]["Author"] != "Docker Newbee" || insp[1]["Comment"] != "Added a new file" {
		t.Errorf("image inspect: %v", insp[1])
	}
	if _, ok := insp[1]["GraphDriver"].(map[string]any)["Data"].(map[string]any)["UpperDir"]; !ok {
		t.Errorf("image inspect lacks GraphDriver.Data.UpperDir: %v", insp[1]["GraphDriver"])
	}

	tarball := filepath.Join(t.TempDir(), "r1.tar")
	mustCLI(t, root, nil, "export", "-o", tarball, "r1")
	if out, err := exec.Command("tar", "-tf", tarball).Output(); err != nil || !strings.Contains(string(out), "x\n") {
		t.Errorf("export of a container: %v\n%s", err, out)
	}
	if _, stderr, code := runCLI(t, root, "rmi", "busybox"); code != 1 || !strings.Contains(stderr, `conflict: unable to remove repository reference "busybox" (must force) - container `) {
		t.Errorf("rmi of an image in use: exit %d, %q", code, stderr)
	}
	if out := mustCLI(t, root, nil, "rm", "r1", "work"); out != "r1\nwork\n" {
		t.Errorf("rm printed %q", out)
	}
	if out := mustCLI(t, root, nil, "ps", "-aq"); out != "" {
		t.Errorf("containers left after rm: %q", out)
	}
	if entries, _ := os.ReadDir(filepath.Join(root, "active")); len(entries) != 0 {
		t.Errorf("active snapshots left after rm: %d", len(entries))
	}
}

// TestCommitRootfs: a plain directory committed on a base image.
func TestCommitRootfs(t *testing.T) {
	root := storeWithBusybox(t)
	dir := t.TempDir()
	tarball := filepath.Join(t.TempDir(), "base.tar")
	mustCLI(t, root, nil, "export", "-o", tarball, "busybox")
	if out, err := exec.Command("tar", "-C", dir, "-xf", tarball).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	writeFile(t, filepath.Join(dir, "added"), []byte("a\n"))
	if err := os.Remove(filepath.Join(dir, "etc/hostname")); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, root, nil, "commit", "--rootfs", dir, "--base", "busybox", "-c", `CMD ["cat", "/added"]`, "fromdir:1")
	if out := mustCLI(t, root, nil, "run", "--rm", "fromdir:1"); out != "a\n" {
		t.Errorf("image from a directory printed %q", out)
	}
	if out := mustCLI(t, root, nil, "run", "--rm", "fromdir:1", "ls", "/etc"); strings.Contains(out, "hostname") {
		t.Errorf("a file deleted from the directory is still there: %q", out)
	}
	var hist []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(mustCLI(t, root, nil, "history", "-H=false", "--no-trunc", "--format", "json", "fromdir:1")), "\n") {
		var h map[string]any
		if err := json.Unmarshal([]byte(line), &h); err != nil {
			t.Fatal(err)
		}
		hist = append(hist, h)
	}
	if len(hist) != 2 || hist[0]["CreatedBy"] != "builder commit --rootfs "+dir || len(hist[0]["Size"].(string)) > 4 {
		t.Errorf("history of a rootfs commit: %v", hist)
	}
}

func TestContainerStatus(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		st   builder.ContainerState
		want string
	}{
		{builder.ContainerState{Status: "created"}, "Created"},
		{builder.ContainerState{Status: "running", StartedAt: now.Add(-3 * time.Minute)}, "Up 3 minutes"},
		{builder.ContainerState{Status: "paused", StartedAt: now.Add(-2 * time.Hour)}, "Up 2 hours (Paused)"},
		{builder.ContainerState{Status: "exited", ExitCode: 3, FinishedAt: now.Add(-5 * time.Second)}, "Exited (3) 5 seconds ago"},
	} {
		if got := containerStatus(tc.st, now); got != tc.want {
			t.Errorf("status of %+v = %q, want %q", tc.st, got, tc.want)
		}
	}
}

// TestRunKilled: a builder killed while its attached container runs takes
// the container's processes with it, and the container reads as exited.
func TestRunKilled(t *testing.T) {
	root := storeWithBusybox(t)
	cmd := cli(root, "run", "--name", "victim", "busybox", "sleep", "4321")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(mustCLI(t, root, nil, "ps"), "victim") {
		if time.Now().After(deadline) {
			t.Fatal("the container never ran")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	// The container's init sees its caller gone, kills the process and
	// records it.
	exited := regexp.MustCompile(`^victim Exited \(137\) .* ago\n$`)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out := mustCLI(t, root, nil, "ps", "-a", "--format", "{{.Names}} {{.Status}}")
		if exited.MatchString(out) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ps after the builder was killed: %q", out)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); sleepRunning(t, "4321"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the container's process outlived its builder")
		}
	}
	mustCLI(t, root, nil, "rm", "victim")
}

// sleepRunning reports whether a process "sleep arg" runs.
func sleepRunning(t *testing.T, arg string) bool {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && string(b) == "sleep\x00"+arg+"\x00" {
			return true
		}
	}
	return false
}
