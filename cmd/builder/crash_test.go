package main

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/builder-project/builder/internal/testutil"
)

// randomTar returns a tar of n files of size bytes of random data.
func randomTar(t *testing.T, n, size int) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	data := make([]byte, size)
	for i := 0; i < n; i++ {
		rand.Read(data)
		name := "f" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeFile writes data to p, failing t on error.
func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// randDuration returns a random duration in [0, max); 0 when max <= 0.
func randDuration(t *testing.T, max time.Duration) time.Duration {
	t.Helper()
	if max <= 0 {
		return 0
	}
	n, err := rand.Int(rand.Reader, big.NewInt(int64(max)))
	if err != nil {
		t.Fatal(err)
	}
	return time.Duration(n.Int64())
}

// killedBySIGKILL reports whether a waited-for process was terminated by
// SIGKILL. Signal(SIGKILL) returning nil proves nothing: it also succeeds
// for a child that already exited and has not been reaped yet.
func killedBySIGKILL(ps *os.ProcessState) bool {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// imageSummary is what the crash test compares of `images --format json`
// (docker's rows: one per tag).
type imageSummary struct {
	ID         string `json:"ID"`
	Repository string `json:"Repository"`
	Tag        string `json:"Tag"`
}

func parseImages(t *testing.T, out string) []imageSummary {
	t.Helper()
	var list []imageSummary
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var s imageSummary
		if err := dec.Decode(&s); err != nil {
			t.Fatalf("decoding images output: %v\n%s", err, out)
		}
		list = append(list, s)
	}
	return list
}

// Crash-test parameters: crashAttempts writers are started; at least
// crashMinKills of them must really die of SIGKILL while running, as told
// by their wait status. Each kill lands at a random instant between 20% and
// 70% of the op's expected duration, which shrinks whenever the op exits
// before its kill, so nearly all attempts hit a running process (25 to 30
// of 30 in trial runs). Two thirds leaves room for a machine whose timing
// wobbles, while a test whose children mostly exit before the kill cannot
// pass.
const (
	crashAttempts = 30
	crashMinKills = 20
)

// TestCrashSafety kills writing processes (import, load, tag, rmi, prune) at
// random instants while they run and checks that the store still opens,
// lists the same images, verifies every blob they use, and holds no
// leftovers once reopened.
func TestCrashSafety(t *testing.T) {
	testutil.SkipIfShort(t, "starts and kills dozens of CLI processes")
	root := t.TempDir()
	tarball := filepath.Join(t.TempDir(), "layer.tar")
	writeFile(t, tarball, randomTar(t, 40, 512<<10))
	mustCLI(t, root, nil, "import", tarball, "keep:1")
	mustCLI(t, root, nil, "tag", "keep:1", "keep:2")
	archive := filepath.Join(t.TempDir(), "keep.tar")
	mustCLI(t, root, nil, "save", "-o", archive, "keep:1")
	want := parseImages(t, mustCLI(t, root, nil, "images", "--no-trunc", "--format", "json"))
	if len(want) == 0 {
		t.Fatal("images lists nothing before the crashes")
	}

	ops := []struct {
		name string
		args []string
	}{
		{"import", []string{"import", tarball, "victim:1"}},
		{"load", []string{"load", "-i", archive}},
		{"tag", []string{"tag", "keep:1", "victim:tag"}},
		{"rmi", []string{"rmi", "victim:1"}},
		{"prune", []string{"prune", "-f"}},
	}
	// Each op's normal duration, from start to exit, measured once on an
	// uninterrupted run.
	expect := make([]time.Duration, len(ops))
	for i, op := range ops {
		cmd := cli(root, op.args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			t.Fatalf("builder %s: %v\n%s", strings.Join(op.args, " "), err, stderr.String())
		}
		expect[i] = time.Since(start)
	}

	killed := make([]int, len(ops))
	tried := make([]int, len(ops))
	for i := range crashAttempts {
		k := i % len(ops)
		cmd := cli(root, ops[k].args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		delay := expect[k]/5 + randDuration(t, expect[k]/2)
		var err error
		select {
		case err = <-exited:
		case <-time.After(delay):
			_ = cmd.Process.Signal(syscall.SIGKILL) // judged by the wait status below
			err = <-exited
		}
		took := time.Since(start)
		tried[k]++
		if killedBySIGKILL(cmd.ProcessState) {
			killed[k]++
			continue
		}
		// It was done before the kill: this op runs faster than measured,
		// so aim within its latest duration from now on.
		t.Logf("attempt %d: %s exited after %v, before the kill at %v (%v)", i, ops[k].name, took, delay, err)
		expect[k] = min(expect[k], took)
	}
	var total int
	var summary []string
	for k, op := range ops {
		total += killed[k]
		summary = append(summary, fmt.Sprintf("%s %d/%d (aimed within %v)", op.name, killed[k], tried[k], expect[k]))
	}
	t.Logf("%d of %d writers killed mid-flight: %s", total, crashAttempts, strings.Join(summary, ", "))
	if total < crashMinKills {
		t.Fatalf("only %d of %d writers were killed while running (want at least %d): the crash checks below would prove little", total, crashAttempts, crashMinKills)
	}

	// Reopening cleans up; the images that were there are still there.
	got := parseImages(t, mustCLI(t, root, nil, "images", "--no-trunc", "--format", "json"))
	tags := map[string]string{}
	for _, img := range got {
		if img.Tag != "<none>" {
			tags[img.Repository+":"+img.Tag] = img.ID
		}
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g imageSummary) bool { return g.ID == w.ID }) {
			t.Fatalf("image %s lost after crashes:\n%+v", w.ID, got)
		}
		if tag := w.Repository + ":" + w.Tag; w.Tag != "<none>" && tags[tag] != w.ID {
			t.Errorf("tag %s points at %q after crashes, want %s", tag, tags[tag], w.ID)
		}
	}
	if len(tags) == 0 {
		t.Fatalf("no tags after crashes: %+v", got)
	}
	for _, sub := range []string{"ingest", "tmp", "active"} {
		entries, err := os.ReadDir(filepath.Join(root, sub))
		if err != nil {
			t.Fatalf("reading %s/: %v", sub, err)
		}
		if len(entries) != 0 {
			t.Errorf("%s/ has leftovers after reopening: %d entries", sub, len(entries))
		}
	}
	// Every blob of the kept image reads back verified.
	out := filepath.Join(t.TempDir(), "out.tar")
	mustCLI(t, root, nil, "save", "-o", out, "keep:1")
	mustCLI(t, root, nil, "export", "-o", filepath.Join(t.TempDir(), "fs.tar"), "keep:2")
}
