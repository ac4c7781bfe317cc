package executor

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestContainerStubsRecord: ContainerStubs lists the paths init.json
// records, none before the init wrote it, and fails on a damaged record.
func TestContainerStubsRecord(t *testing.T) {
	dir := t.TempDir()
	if got, err := ContainerStubs(dir); err != nil || got != nil {
		t.Errorf("stubs without init.json = %q, %v; want none", got, err)
	}
	rec := initRecord{Stubs: []cleanupEntry{{Path: "etc", Dir: true, Mode: 0o755}, {Path: "etc/hosts", Created: true}, {Path: "proc", Dir: true, Created: true}}}
	data, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, initFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := ContainerStubs(dir); err != nil || !slices.Equal(got, []string{"etc", "etc/hosts", "proc"}) {
		t.Errorf("stubs = %q, %v", got, err)
	}
	if err := os.WriteFile(filepath.Join(dir, initFile), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ContainerStubs(dir); err == nil {
		t.Error("no error for a damaged init.json")
	}
}

// TestContainerStubsRunning: while a container runs, ContainerStubs names
// exactly what the runtime put in its upperdir besides the process's own
// changes; once it has stopped, those stubs are gone.
func TestContainerStubsRunning(t *testing.T) {
	c := newContainer(t)
	cfg := c.config(true, sh(`echo x > /mine; sleep 1000`)...)
	cfg.Mounts = []Mount{{Type: "tmpfs", Destination: "/scratch/tmp"}}
	c.start(t, cfg, IO{})
	c.waitMarked(t, "sleep 1000", 1)
	stubs, err := ContainerStubs(c.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"etc/hosts", "etc/resolv.conf", "scratch", "scratch/tmp"} {
		if !slices.Contains(stubs, want) {
			t.Errorf("stubs %q lack %s", stubs, want)
		}
	}
	// Everything in the upperdir is a stub or lies on the way to one,
	// except the process's file.
	for _, p := range c.upperEntries(t) {
		if p != "mine" && !slices.Contains(stubs, p) {
			t.Errorf("upperdir entry %s is neither the process's nor a stub (stubs %q)", p, stubs)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := StopContainer(ctx, c.dir, time.Second); err != nil {
		t.Fatal(err)
	}
	if got := c.upperEntries(t); !slices.Equal(got, []string{"mine"}) {
		t.Errorf("upperdir after stop = %q, want only the process's file", got)
	}
}
