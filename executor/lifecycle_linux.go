package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/builder-project/builder/internal/atomicfile"
)

// The files of a container's state directory.
const (
	stateFile = "state.json" // containerRecord, by the process that starts the container
	initFile  = "init.json"  // initRecord, by the container's init
	exitFile  = "exit"       // exitRecord, by the init when its process exited
	bundleDir = "bundle"     // hosts, resolv.conf, the rootfs mountpoint
)

// containerRecord is what StartContainer records in stateFile for later
// processes.
type containerRecord struct {
	ID string `json:"id"`
	// Pid is the host pid of the container's init, and PidStart its start
	// time (/proc/PID/stat field 22): a pid whose process started at
	// another time has been reused.
	Pid        int       `json:"pid,omitempty"`
	PidStart   uint64    `json:"pidStart,omitempty"`
	Created    time.Time `json:"created"`
	Cgroup     cgroup    `json:"cgroup"`
	Upper      string    `json:"upper"`
	StopSignal int       `json:"stopSignal,omitempty"`
	// The process's environment, working directory and user, which
	// ExecContainer starts from.
	Env  []string `json:"env"`
	Cwd  string   `json:"cwd"`
	User string   `json:"user,omitempty"`
	// Seccomp is the container's Spec.Seccomp, which exec'd processes
	// get too.
	Seccomp string `json:"seccomp,omitempty"`
}

// StartContainer starts a long-lived container with the built-in runtime
// (runtime "" or Builtin; other runtimes are not supported). It creates
// the container's namespaces and cgroup, mounts the overlay inside the
// container's own mount namespace (as Run does, so no mount is ever made
// on the host), starts the process with the init as its parent, and
// records the container in cfg.StateDir.
//
// Without cfg.Detach it streams stdio, waits for the process to exit and
// returns the final state. Cancelling ctx kills the container (ExitCode
// 137) and returns ctx's error along with the state; so does the end of
// the calling process, through the init's config pipe.
//
// With cfg.Detach it returns as soon as the process runs; stdio is not
// used, the output goes to the log (ContainerLogs), stdin is /dev/null,
// and a terminal's output is copied to the log. The container outlives
// the caller.
//
// Either way the init records the exit status in StateDir when the
// process exits: a binary that does not exist exits with 127, one that
// cannot be executed with 126, with a message on the process's stderr.
// StartContainer on a container that has exited starts it again with a
// fresh init; its log is kept and appended to.
func StartContainer(ctx context.Context, runtime string, cfg ContainerConfig, stdio IO) (ContainerState, error) {
	if runtime != "" && runtime != Builtin {
		return ContainerState{}, fmt.Errorf("long-lived containers are not supported with --runtime %s", runtime)
	}
	if err := ctx.Err(); err != nil {
		return ContainerState{}, err
	}
	if !validContainerID(cfg.ID) {
		return ContainerState{}, fmt.Errorf("starting container: id %q is not 64 lowercase hex digits", cfg.ID)
	}
	if cfg.StateDir == "" {
		return ContainerState{}, errors.New("starting container: no state directory")
	}
	dir, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return ContainerState{}, fmt.Errorf("starting container: %w", err)
	}
	created, err := resetState(dir)
	if err != nil {
		return ContainerState{}, err
	}
	p, err := prepareIn(cfg.Spec, filepath.Join(dir, bundleDir))
	if err != nil {
		return ContainerState{}, err
	}
	cg, err := newCgroup(cfg.ID)
	if err != nil {
		p.close()
		return ContainerState{}, err
	}
	rec := &containerRecord{
		ID: cfg.ID, Created: created, Cgroup: cg, Upper: p.spec.Upper, StopSignal: int(cfg.StopSignal),
		Env: p.oci.Process.Env, Cwd: p.oci.Process.Cwd, User: p.spec.User, Seccomp: p.spec.Seccomp,
	}
	// Recorded before the cgroup exists, so that RemoveContainer finds it
	// whatever happens next.
	if err := rec.write(dir); err != nil {
		p.close()
		return ContainerState{}, err
	}
	st, err := startInit(ctx, dir, rec, p, cfg, stdio)
	if err != nil && st.Status == "" {
		// Nothing runs: leave the container as created.
		_ = cg.remove()
		p.close()
		rec.Pid, rec.PidStart = 0, 0
		_ = rec.write(dir)
	}
	return st, err
}

// startInit starts the init of a prepared container and returns the state
// StartContainer returns; a zero state with an error means nothing runs.
func startInit(ctx context.Context, dir string, rec *containerRecord, p *prepared, cfg ContainerConfig, stdio IO) (ContainerState, error) {
	// The layout's error was returned when it was made.
	ok, devices, err := setUpCgroup(rec.Cgroup, nil, p.oci.Linux.Resources)
	if err != nil {
		return ContainerState{}, err
	}
	if !ok {
		// Rootless, where the user may not create cgroups: it is
		// killed through its init (pid 1 of its pid namespace) and
		// cannot be paused.
		rec.Cgroup = cgroup{}
		if err := rec.write(dir); err != nil {
			return ContainerState{}, err
		}
	}
	nat, err := newContainerNAT(cfg.Spec)
	if err != nil {
		return ContainerState{}, err
	}
	defer nat.close()
	// A container killed while paused left its cgroup frozen.
	if frozen, err := rec.Cgroup.frozen(); err != nil || frozen {
		if err := rec.Cgroup.setFrozen(false); err != nil {
			return ContainerState{}, err
		}
	}
	icfg := p.config(modeContainer)
	icfg.Container = &containerInitConfig{StateDir: dir, Detach: cfg.Detach}
	icfg.Cgroup, icfg.NoDev, icfg.NetNS = &rec.Cgroup, !devices, nat != nil
	if len(rec.Cgroup.Paths) == 0 {
		icfg.Cgroup = nil
	}
	if cfg.Terminal {
		icfg.Terminal = initialSize(stdio.Resize)
	}
	hio := IO{Stdin: stdio.Stdin, Stdout: stdio.Stdout, Stderr: stdio.Stderr}
	if cfg.Detach {
		log, err := os.OpenFile(filepath.Join(dir, logFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return ContainerState{}, fmt.Errorf("opening container log: %w", err)
		}
		defer log.Close()
		hio = IO{Stdout: log, Stderr: log}
	}
	// No Pdeathsig: the init outlives this thread; an attached one learns
	// that its caller is gone from the end of its config pipe. Its own
	// session keeps it out of the caller's terminal job control.
	h, err := startHelper(modeContainer, hio, &syscall.SysProcAttr{Cloneflags: namespaceFlags(p.oci, nat != nil), Setsid: true}, nat.initFiles()...)
	if err != nil {
		return ContainerState{}, err
	}
	kill := func() { _ = h.cmd.Process.Kill() }
	// The init waits for its config, so it starts nothing before it is in
	// the cgroup.
	rec.Pid = h.cmd.Process.Pid
	if rec.PidStart, err = processStart(rec.Pid); err == nil {
		if err = rec.Cgroup.add(rec.Pid); err == nil {
			err = rec.write(dir)
		}
	}
	if err == nil && nat != nil {
		err = nat.start(icfg)
	}
	if err != nil {
		kill()
		<-h.exited
		return ContainerState{}, err
	}
	if !cfg.Detach {
		res, err := h.supervise(ctx, icfg, stdio.Resize, kill)
		return finishAttached(ctx, dir, rec, p, res, err)
	}
	ctrl := newController(h.ctrl)
	defer ctrl.close()
	if err := ctrl.send(icfg); err != nil {
		kill()
	}
	// The init closes its status pipe once the process runs or failed to.
	res := collect(h.msgs)
	if res.err != "" {
		<-h.exited
		_ = removeStubs(p.spec.Upper, res.cleanup)
		return ContainerState{}, fmt.Errorf("setting up container: %s", res.err)
	}
	// h.exited reaps the init, should it exit while this process lives.
	return ContainerStateOf(dir)
}

// finishAttached turns the end of an attached container's init into
// StartContainer's result.
func finishAttached(ctx context.Context, dir string, rec *containerRecord, p *prepared, res helperResult, err error) (ContainerState, error) {
	if res.err != "" {
		_ = removeStubs(p.spec.Upper, res.cleanup)
		return ContainerState{}, fmt.Errorf("setting up container: %s", res.err)
	}
	if ctx.Err() != nil {
		// The init may have been killed before it could record anything.
		_ = rec.Cgroup.killAndWait(10*time.Second, "the container's processes")
	}
	st, serr := ContainerStateOf(dir)
	if err != nil {
		return st, err
	}
	return st, serr
}

// resetState prepares dir for a new start of the container and returns
// its creation time: now, or that of the container recorded there, which
// must have exited.
func resetState(dir string) (time.Time, error) {
	created := time.Now()
	r, st, err := readState(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return created, fmt.Errorf("creating state directory: %w", err)
		}
	case err != nil:
		return created, err
	case st.Status == StatusRunning || st.Status == StatusPaused || st.Pid != 0:
		return created, fmt.Errorf("starting container %s: container is already running", r.ID)
	default:
		created = r.Created
	}
	for _, f := range []string{initFile, exitFile} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return created, fmt.Errorf("resetting container state: %w", err)
		}
	}
	if err := removeRunDir(filepath.Join(dir, bundleDir)); err != nil {
		return created, err
	}
	return created, nil
}

func validContainerID(id string) bool {
	if len(id) != 64 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func (r *containerRecord) write(dir string) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding container state: %w", err)
	}
	// The environment may hold secrets.
	if err := atomicfile.WriteFile(filepath.Join(dir, stateFile), b, 0o600); err != nil {
		return fmt.Errorf("recording container state: %w", err)
	}
	return nil
}

// readJSON decodes the file name of dir into v.
func readJSON(dir, name string, v any) error {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("reading %s: %w", filepath.Join(dir, name), err)
	}
	return nil
}

// readState reads the container record of dir and works out its state.
func readState(dir string) (*containerRecord, ContainerState, error) {
	var r containerRecord
	if err := readJSON(dir, stateFile, &r); err != nil {
		return nil, ContainerState{}, fmt.Errorf("reading container state: %w", err)
	}
	st, err := r.state(dir)
	return &r, st, err
}

// ContainerStateOf reads the state of the container of stateDir. A
// recorded pid counts only while it names the same process (same start
// time) and that process has not exited, so a reused pid reads as exited.
//
// When it finds the init gone without an exit status (killed with
// SIGKILL, as by the OOM killer), it does what the init would have done:
// it kills what is left in the container's cgroup, removes the mountpoint
// stubs from the upperdir and records exit code 137.
func ContainerStateOf(stateDir string) (ContainerState, error) {
	_, st, err := readState(stateDir)
	return st, err
}

// state works out r's state from the records in dir and the live system.
func (r *containerRecord) state(dir string) (ContainerState, error) {
	var init initRecord
	if err := readJSON(dir, initFile, &init); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return ContainerState{}, err
	}
	st := ContainerState{Status: StatusCreated, Started: init.Started}
	exited := func() (bool, error) {
		var ex exitRecord
		err := readJSON(dir, exitFile, &ex)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		st.Status, st.Pid, st.ExitCode, st.Finished = StatusExited, 0, ex.ExitCode, ex.Finished
		return err == nil, err
	}
	if ok, err := exited(); ok || err != nil || r.Pid == 0 {
		return st, err
	}
	if isProcess(r.Pid, r.PidStart) {
		st.Pid = r.Pid
		if init.Started.IsZero() {
			return st, nil // still setting up
		}
		st.Status = StatusRunning
		frozen, err := r.Cgroup.frozen()
		if frozen {
			st.Status = StatusPaused
		}
		return st, err
	}
	// The init records the exit before it exits: look again.
	if ok, err := exited(); ok || err != nil {
		return st, err
	}
	if err := r.recordKilled(dir, init); err != nil {
		return st, err
	}
	_, err := exited()
	return st, err
}

// recordKilled finishes for an init that was killed: once the cgroup is
// empty, it removes the stubs and records exit code 137.
func (r *containerRecord) recordKilled(dir string, init initRecord) error {
	if err := r.Cgroup.killAndWait(10*time.Second, "the processes of container "+r.ID); err != nil {
		return err
	}
	if err := removeStubs(r.Upper, init.Stubs); err != nil {
		return err
	}
	ex := exitRecord{ExitCode: 128 + int(syscall.SIGKILL), Finished: time.Now()}
	if err := atomicfile.Write(filepath.Join(dir, exitFile), 0o644, jsonFill(ex)); err != nil {
		return fmt.Errorf("recording container exit: %w", err)
	}
	return nil
}

// runningState reads the container of dir and fails with ErrNotRunning
// unless it is running or paused.
func runningState(dir string) (*containerRecord, ContainerState, error) {
	r, st, err := readState(dir)
	if err != nil {
		return nil, st, err
	}
	if st.Status != StatusRunning && st.Status != StatusPaused {
		return nil, st, fmt.Errorf("container %s: %w", r.ID, ErrNotRunning)
	}
	return r, st, nil
}

// controller writes a child's config and then its control messages on
// the config pipe; closing it tells the child that its caller is gone.
type controller struct {
	mu sync.Mutex
	f  *os.File // nil once closed
}

func newController(f *os.File) *controller { return &controller{f: f} }

func (c *controller) send(v any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f == nil {
		return os.ErrClosed
	}
	return json.NewEncoder(c.f).Encode(v)
}

func (c *controller) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f != nil {
		c.f.Close()
		c.f = nil
	}
}

// forwardResizes sends the terminal sizes from ch until stop is closed.
func (c *controller) forwardResizes(ch <-chan [2]uint16, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case s, ok := <-ch:
			if !ok {
				return
			}
			_ = c.send(controlMessage{Resize: &windowSize{Rows: s[0], Cols: s[1]}})
		}
	}
}

// initialSize takes the sizes already waiting in ch and returns the last.
func initialSize(ch <-chan [2]uint16) *windowSize {
	s := &windowSize{}
	for {
		select {
		case v, ok := <-ch:
			if !ok {
				return s
			}
			s.Rows, s.Cols = v[0], v[1]
		default:
			return s
		}
	}
}
