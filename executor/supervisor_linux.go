package executor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/builder-project/builder/internal/atomicfile"
)

// containerInitConfig is the part of a long-lived container's config only
// its init needs.
type containerInitConfig struct {
	StateDir string `json:"stateDir"` // absolute
	Detach   bool   `json:"detach"`
}

// initRecord is what a long-lived container's init records in initFile:
// the mountpoint stubs it created (before the process starts, so that
// whoever finds the init killed can remove them) and when the process
// started.
type initRecord struct {
	Stubs   []cleanupEntry `json:"stubs"`
	Started time.Time      `json:"started,omitzero"`
}

// exitRecord is what exitFile holds once the container's process exited.
type exitRecord struct {
	ExitCode int       `json:"exitCode"`
	Finished time.Time `json:"finished"`
}

// longLivedInit is pid 1 of a long-lived container (StartContainer). It
// sets the container up as containerInit does and starts the process, then
// stays as its supervisor, needing nobody else: it forwards the signals it
// gets to the process, resizes the terminal on request, copies a
// terminal's output (to the caller, or to the log of a detached
// container), and reaps. When the process exits it kills whatever is left
// in the container, removes the mountpoint stubs from the upperdir (opened
// before pivoting, as was the state directory), records the exit status
// in the state directory and exits with it.
//
// The config pipe stays open after the config: the end of it means the
// caller is gone (or gave up), which kills an attached container. A
// detached container ignores it and outlives its caller.
func longLivedInit(cfg *initConfig, t *stubTracker, status *os.File, ctrl *json.Decoder) error {
	c := cfg.Container
	if c == nil {
		return errors.New("reading container config: no container section")
	}
	state, err := os.OpenRoot(c.StateDir)
	if err != nil {
		return fmt.Errorf("opening state directory: %w", err)
	}
	upper, err := os.OpenRoot(cfg.Upper)
	if err != nil {
		return fmt.Errorf("opening upper directory: %w", err)
	}
	// Nothing in the container may look into the init's descriptors.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("making init non-dumpable: %w", err)
	}
	// Signals that arrive before the process runs are forwarded once it
	// does.
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, forwardedSignals()...)
	ignoreSIGPIPE()
	if err := enterContainer(cfg, t); err != nil {
		return err
	}
	proc := cfg.Spec.Process
	var (
		tty    *terminal
		pumped <-chan struct{}
		stderr io.Writer = os.Stderr
	)
	if cfg.Terminal != nil {
		if tty, err = openTerminal(*cfg.Terminal, proc.User.UID); err != nil {
			return err
		}
		var in io.Reader = os.Stdin
		if c.Detach {
			in = nil
		}
		pumped = tty.pump(in, os.Stdout)
		stderr = tty.slave
	}
	syscall.Umask(0o022)
	rec := initRecord{Stubs: t.entries}
	writeMessage(status, initMessage{Cleanup: t.entries})
	t.entries = nil
	if err := atomicfile.WriteIn(state, initFile, 0o644, jsonFill(rec)); err != nil {
		return fmt.Errorf("recording container state: %w", err)
	}
	err = loadSeccomp(cfg.Spec.Linux.Seccomp)
	var pid, code int
	if err == nil {
		pid, err = forkProcess(proc, tty, true)
	}
	if err != nil {
		fmt.Fprintf(stderr, "builder: %v\n", err)
		code = execFailureCode(err)
	} else {
		rec.Started = time.Now()
		_ = atomicfile.WriteIn(state, initFile, 0o644, jsonFill(rec))
		writeMessage(status, initMessage{Started: pid})
	}
	status.Close()
	if tty != nil {
		tty.slave.Close()
	}
	if err == nil {
		go forwardSignals(sigs, pid)
		go readControl(ctrl, tty, func() {
			if !c.Detach {
				_ = unix.Kill(-1, unix.SIGKILL)
			}
		})
		code = reap(pid)
	}
	signal.Stop(sigs)
	// The container ends with its process, as with docker.
	_ = unix.Kill(-1, unix.SIGKILL)
	reapAll(5 * time.Second)
	drain(pumped)
	if err := removeStubsIn(upper, rec.Stubs); err != nil {
		fmt.Fprintf(os.Stderr, "builder: %v\n", err)
	}
	if err := atomicfile.WriteIn(state, exitFile, 0o644, jsonFill(exitRecord{ExitCode: code, Finished: time.Now()})); err != nil {
		fmt.Fprintf(os.Stderr, "builder: %v\n", err)
	}
	os.Exit(code)
	return nil
}

// jsonFill returns an atomicfile fill function writing v as JSON.
func jsonFill(v any) func(io.Writer) error {
	return func(w io.Writer) error { return json.NewEncoder(w).Encode(v) }
}

// forwardedSignals are the signals a container's init passes on to its
// process: all but those that cannot be caught, SIGCHLD (the init's own
// business), SIGPIPE (raised by the init's own writes) and SIGURG and 32
// and 33, which the Go runtime uses itself.
func forwardedSignals() []os.Signal {
	var sigs []os.Signal
	for s := syscall.Signal(1); s <= 64; s++ {
		switch s {
		case unix.SIGKILL, unix.SIGSTOP, unix.SIGCHLD, unix.SIGPIPE, unix.SIGURG, 32, 33:
			continue
		}
		sigs = append(sigs, s)
	}
	return sigs
}

// ignoreSIGPIPE keeps a write to a caller that went away from killing
// the process, without the SIG_IGN disposition signal.Ignore would set,
// which its children would inherit.
func ignoreSIGPIPE() {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
}

func forwardSignals(sigs <-chan os.Signal, pid int) {
	for s := range sigs {
		_ = unix.Kill(pid, s.(syscall.Signal))
	}
}

// readControl applies the caller's control messages until the config pipe
// ends, then calls gone.
func readControl(dec *json.Decoder, tty *terminal, gone func()) {
	for {
		var m controlMessage
		if err := dec.Decode(&m); err != nil {
			gone()
			return
		}
		if m.Resize != nil && tty != nil {
			_ = tty.resize(*m.Resize)
		}
	}
}

// reapAll reaps the init's remaining children until there are none, for up
// to d: a process in uninterruptible sleep may take its time.
func reapAll(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		switch {
		case errors.Is(err, syscall.EINTR), err == nil && pid > 0:
		case err != nil:
			return // ECHILD: none left
		default:
			time.Sleep(5 * time.Millisecond)
		}
	}
}
