package executor

import (
	"errors"
	"io/fs"
)

// ContainerStubs returns the mountpoint stubs the init of the container of
// stateDir created in the upperdir (paths relative to the root
// filesystem, as init.json records them): the files and directories made
// only to mount on (/etc/hosts, /etc/resolv.conf, /proc, /dev, /sys,
// extra mounts' targets) and the directories overlay copied up to hold
// them. They are in the upperdir while the container runs; once it has
// exited, the init has removed those still as it left them. A container
// whose init has not set up yet has none.
//
// A commit of a running container leaves exactly these paths out of its
// layer (docker's init layer).
func ContainerStubs(stateDir string) ([]string, error) {
	var rec initRecord
	if err := readJSON(stateDir, initFile, &rec); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	paths := make([]string, len(rec.Stubs))
	for i, e := range rec.Stubs {
		paths[i] = e.Path
	}
	return paths, nil
}
