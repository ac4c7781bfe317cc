package executor

import (
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// terminal is a pseudo-terminal a container's init or an exec helper opens
// in the container's own devpts instance (/dev/pts), after entering the
// container's mount namespace, so that the process sees its terminal there.
type terminal struct {
	master *os.File
	slave  *os.File // closed by the opener once the process holds it
}

// openTerminal opens a new pseudo-terminal of the given size whose slave
// belongs to uid, as runc does for a container's console.
func openTerminal(size windowSize, uid uint32) (_ *terminal, err error) {
	master, err := os.OpenFile("/dev/pts/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("opening terminal: %w", err)
	}
	defer func() {
		if err != nil {
			master.Close()
		}
	}()
	var sfd int
	err = control(master, func(fd int) error {
		if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
			return err
		}
		// TIOCGPTPEER opens the slave by the master, not by a path the
		// container could have replaced.
		r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
		if errno != 0 {
			return errno
		}
		sfd = int(r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("opening terminal: %w", err)
	}
	t := &terminal{master: master, slave: os.NewFile(uintptr(sfd), "pty")}
	if err := unix.Fchown(sfd, int(uid), -1); err != nil {
		t.slave.Close()
		return nil, fmt.Errorf("opening terminal: %w", err)
	}
	if err := t.resize(size); err != nil {
		t.slave.Close()
		return nil, err
	}
	return t, nil
}

// control runs fn with f's descriptor without putting f in blocking mode
// (as Fd would), so that reads on it stay interruptible.
func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// slaveFd is the slave's descriptor, for the process to inherit.
func (t *terminal) slaveFd() uintptr { return t.slave.Fd() }

// resize sets the window size; the kernel sends SIGWINCH to the terminal's
// foreground process group when it changes. A zero size is left alone.
func (t *terminal) resize(s windowSize) error {
	if s.Rows == 0 && s.Cols == 0 {
		return nil
	}
	err := control(t.master, func(fd int) error {
		return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: s.Rows, Col: s.Cols})
	})
	if err != nil {
		return fmt.Errorf("resizing terminal: %w", err)
	}
	return nil
}

// pump copies in (when not nil) to the master and the master to out. The
// returned channel is closed when the master reports the end, which it does
// once every descriptor of the slave is closed and its output is read.
func (t *terminal) pump(in io.Reader, out io.Writer) <-chan struct{} {
	if in != nil {
		go func() { _, _ = io.Copy(t.master, onlyReader{in}) }()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(onlyWriter{out}, onlyReader{t.master})
	}()
	return done
}

// drain waits up to a few seconds for the output pump to finish.
func drain(done <-chan struct{}) {
	if done == nil {
		return
	}
	select {
	case <-done:
	case <-time.After(3 * time.Second):
	}
}

// onlyReader and onlyWriter hide ReadFrom and WriteTo, so that io.Copy
// does a plain read and write loop: a terminal supports no splice or
// copy_file_range.
type onlyReader struct{ io.Reader }

type onlyWriter struct{ io.Writer }
