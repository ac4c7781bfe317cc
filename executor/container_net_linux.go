package executor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// modeNAT keeps the NAT of a long-lived container's network namespace
// (natKeeper).
const modeNAT = "nat"

// lifelineFD is, in a long-lived container's init, the write end of a
// pipe whose read end is the NAT keeper's lifeline, and in the keeper
// that read end (os/exec ExtraFiles[3]).
const lifelineFD = 6

// containerNAT is the network of a long-lived container with the default
// network: a namespace made for it, and a keeper process that runs the NAT
// for as long as the container's init lives. A detached container outlives
// its caller, and so must its NAT; the keeper learns that the init is gone
// from the end of the lifeline pipe, whose only writer is the init, and
// then stops the NAT.
type containerNAT struct {
	ns       *os.File
	lifeline [2]*os.File // read end (keeper), write end (init)
}

// newContainerNAT prepares the network of a long-lived container of s, or
// returns nil when s does not have the default network or no NAT is
// installed (see containerNetwork).
func newContainerNAT(s Spec) (*containerNAT, error) {
	if _, ok := defaultNAT(s.Network); !ok {
		return nil, nil
	}
	ns, err := unshareNetNS()
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("creating lifeline pipe: %w", err)
	}
	return &containerNAT{ns: ns, lifeline: [2]*os.File{r, w}}, nil
}

// initFiles are the init's descriptors from netnsFD on.
func (c *containerNAT) initFiles() []*os.File {
	if c == nil {
		return nil
	}
	return []*os.File{c.ns, c.lifeline[1]}
}

// start starts the keeper, which returns once the NAT has configured the
// namespace, and closes this process's descriptors: from then on only the
// init holds the lifeline.
func (c *containerNAT) start(spec *initConfig) error {
	defer c.close()
	h, err := startHelper(modeNAT, IO{}, &syscall.SysProcAttr{Setsid: true}, c.ns, c.lifeline[0])
	if err != nil {
		return err
	}
	c.lifeline[0].Close()
	if err := json.NewEncoder(h.ctrl).Encode(&initConfig{Mode: modeNAT, Spec: spec.Spec}); err != nil {
		_ = h.cmd.Process.Kill()
	}
	h.ctrl.Close()
	res := collect(h.msgs)
	if res.err != "" {
		<-h.exited
		return fmt.Errorf("starting the container's network: %s", res.err)
	}
	// h.exited reaps the keeper, should it exit while this process lives.
	return nil
}

// close closes this process's descriptors.
func (c *containerNAT) close() {
	if c == nil {
		return
	}
	c.ns.Close()
	c.lifeline[0].Close()
	c.lifeline[1].Close()
}

// natKeeper runs in the keeper: it starts the NAT for the namespace open
// as netnsFD, reports when it is ready (by closing the status pipe), and
// stops it when the lifeline ends, that is when the container's init has
// exited. It returns only on a setup error.
func natKeeper(status *os.File) error {
	t, err := findNAT()
	if err != nil {
		return err
	}
	ns := &netns{file: os.NewFile(netnsFD, "netns")}
	if err := ns.startNAT(t); err != nil {
		return err
	}
	if err := ns.waitReady(); err != nil {
		return err
	}
	status.Close()
	lifeline := os.NewFile(lifelineFD, "lifeline")
	go func() {
		_, _ = io.Copy(io.Discard, lifeline)
		ns.close()
		os.Exit(0)
	}()
	<-ns.exited
	return errors.New("the NAT exited")
}
