package executor

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// procStat is what /proc/PID/stat tells about a process.
type procStat struct {
	state byte   // R, S, D, Z, X, ...
	start uint64 // start time in clock ticks after boot (field 22)
}

// readProcStat reads /proc/PID/stat. The command name (field 2) may hold
// spaces and parentheses, so fields are counted after its last ')'.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("parsing /proc/%d/stat: no command name", pid)
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state), so field 22 is f[19].
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("parsing /proc/%d/stat: too few fields", pid)
	}
	start, err := strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("parsing /proc/%d/stat: start time: %w", pid, err)
	}
	return procStat{state: f[0][0], start: start}, nil
}

// processStart returns the start time of a live process.
func processStart(pid int) (uint64, error) {
	st, err := readProcStat(pid)
	if err != nil {
		return 0, fmt.Errorf("reading start time of pid %d: %w", pid, err)
	}
	return st.start, nil
}

// isProcess reports whether pid is still the process that started at start
// and has not exited: a pid reused by another process, or a zombie waiting
// to be reaped, is not.
func isProcess(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	st, err := readProcStat(pid)
	return err == nil && st.start == start && st.state != 'Z' && st.state != 'X'
}

// errProcessGone reports that a recorded pid no longer names its process.
var errProcessGone = errors.New("process is gone")

// openProcess returns a pidfd for pid after checking that it names the
// process that started at start. Signals sent through the pidfd cannot
// reach another process that reuses the pid later.
func openProcess(pid int, start uint64) (int, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return -1, errProcessGone
		}
		return -1, fmt.Errorf("opening pid %d: %w", pid, err)
	}
	// The pidfd pins the process that had pid when it was opened: if that
	// is still the one that started at start, the fd refers to it.
	if !isProcess(pid, start) {
		unix.Close(fd)
		return -1, errProcessGone
	}
	return fd, nil
}
