package main

import (
	"os"
	"os/signal"
	"sync"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// attachTerminal prepares the caller's terminal for a process on a
// pseudo-terminal (run -t, exec -t, start of a container made with -t).
// With raw, a terminal on stdin is put in raw mode, as docker does for
// -it: keys such as ^C then reach the process through its terminal
// instead of signalling builder. The window size of that terminal (else
// of stdout's) is sent on the returned channel now and on every SIGWINCH.
// restore undoes both; it may be called more than once.
func attachTerminal(raw bool) (resize <-chan [2]uint16, restore func()) {
	fd := -1
	for _, f := range []int{0, 1} {
		if term.IsTerminal(f) {
			fd = f
			break
		}
	}
	if fd < 0 {
		return nil, func() {}
	}
	var saved *term.State
	if raw && fd == 0 {
		saved, _ = term.MakeRaw(fd) // a terminal that cannot be raw stays cooked
	}
	sizes := make(chan [2]uint16, 16)
	send := func() {
		if ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ); err == nil {
			select {
			case sizes <- [2]uint16{ws.Row, ws.Col}:
			default: // the process takes no resizes
			}
		}
	}
	send()
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, unix.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-winch:
				send()
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return sizes, func() {
		once.Do(func() {
			signal.Stop(winch)
			close(done)
			if saved != nil {
				_ = term.Restore(fd, saved)
			}
		})
	}
}
