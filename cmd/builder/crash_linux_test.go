package main

import (
	"os"
	"os/exec"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestKilledBySIGKILL checks the crash test's judge: a child that exited
// before the kill (a zombie not yet reaped, which Signal still signals
// without error) does not count, a running one that is killed does.
func TestKilledBySIGKILL(t *testing.T) {
	exited := exec.Command(os.Args[0], "-test.run=^$")
	if err := exited.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for the exit without reaping, so the pid stays a zombie.
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, exited.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	if err := exited.Process.Signal(syscall.SIGKILL); err != nil {
		t.Logf("Signal to the exited child: %v", err)
	}
	if err := exited.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	if killedBySIGKILL(exited.ProcessState) {
		t.Error("a child that exited by itself counts as killed")
	}

	running := exec.Command("sleep", "60")
	if err := running.Start(); err != nil {
		t.Fatal(err)
	}
	if err := running.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := running.Wait(); err == nil {
		t.Error("a killed child exited 0")
	}
	if !killedBySIGKILL(running.ProcessState) {
		t.Errorf("a running child killed with SIGKILL does not count: %v", running.ProcessState)
	}
}
