package builder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/builder-project/builder/internal/store"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/image-spec/identity"
)

// graphDriverName is the storage driver name inspect shows.
const graphDriverName = "overlay"

// GraphDriver is docker's description of where a container's or image's
// files are: Name is the storage driver, Data its directories (LowerDir
// topmost first, joined by ":"; UpperDir; and, for containers, WorkDir and
// MergedDir). The paths are the store's own: committed snapshots, which
// builder unpacks when a container or build first uses them, and the
// container's active snapshot.
type GraphDriver struct {
	Name string            `json:"Name"`
	Data map[string]string `json:"Data"`
}

// imageGraphDriver describes the snapshot directories of layers.
func (b *Builder) imageGraphDriver(layers []store.Layer) GraphDriver {
	gd := GraphDriver{Name: graphDriverName, Data: map[string]string{}}
	var dirs []string
	for _, c := range identity.ChainIDs((&stageResult{layers: layers}).diffIDs()) {
		dir, _ := b.st.Snapshots().Dir(c)
		dirs = append([]string{dir}, dirs...)
	}
	if len(dirs) > 0 {
		gd.Data["UpperDir"] = dirs[0]
	}
	if len(dirs) > 1 {
		gd.Data["LowerDir"] = strings.Join(dirs[1:], ":")
	}
	return gd
}

// ContainerInspect has docker's container-inspect fields.
type ContainerInspect struct {
	ID          string                 `json:"Id"`
	Created     string                 `json:"Created"`
	Path        string                 `json:"Path"`
	Args        []string               `json:"Args"`
	State       ContainerInspectState  `json:"State"`
	Image       string                 `json:"Image"`
	Name        string                 `json:"Name"`
	Driver      string                 `json:"Driver"`
	Platform    string                 `json:"Platform"`
	HostConfig  ContainerHostConfig    `json:"HostConfig"`
	GraphDriver GraphDriver            `json:"GraphDriver"`
	Mounts      []ContainerMount       `json:"Mounts"`
	Config      ContainerInspectConfig `json:"Config"`
}

// ContainerInspectState is docker's State of a container.
type ContainerInspectState struct {
	Status     string `json:"Status"`
	Running    bool   `json:"Running"`
	Paused     bool   `json:"Paused"`
	Pid        int    `json:"Pid"`
	ExitCode   int    `json:"ExitCode"`
	StartedAt  string `json:"StartedAt"`
	FinishedAt string `json:"FinishedAt"`
}

// ContainerHostConfig is the part of docker's HostConfig builder has.
type ContainerHostConfig struct {
	NetworkMode string   `json:"NetworkMode"`
	Binds       []string `json:"Binds"`
	AutoRemove  bool     `json:"AutoRemove"`
	Runtime     string   `json:"Runtime"`
}

// ContainerMount is one entry of docker's Mounts.
type ContainerMount struct {
	Type        string `json:"Type"`
	Source      string `json:"Source"`
	Destination string `json:"Destination"`
	RW          bool   `json:"RW"`
}

// ContainerInspectConfig is docker's container Config: the image config
// the container runs with, and how it is attached.
type ContainerInspectConfig struct {
	Hostname  string `json:"Hostname"`
	Image     string `json:"Image"`
	Tty       bool   `json:"Tty"`
	OpenStdin bool   `json:"OpenStdin"`
	dockerspec.DockerOCIImageConfig
}

// InspectContainer returns docker's inspect view of the container ref
// names.
func (b *Builder) InspectContainer(ctx context.Context, ref string) (ContainerInspect, error) {
	c, err := b.loadContainer(ref)
	if err != nil {
		return ContainerInspect{}, err
	}
	st, err := b.containerState(c)
	if err != nil {
		return ContainerInspect{}, err
	}
	a, err := b.st.Snapshots().Get(c.rec.ID)
	if err != nil {
		return ContainerInspect{}, err
	}
	cmd := c.command()
	r := ContainerInspect{
		ID: c.rec.ID, Created: c.rec.Created.Format(time.RFC3339Nano), Args: []string{},
		State: ContainerInspectState{Status: st.Status, Running: st.Running(), Paused: st.Status == "paused", Pid: st.Pid, ExitCode: st.ExitCode,
			StartedAt: st.StartedAt.Format(time.RFC3339Nano), FinishedAt: st.FinishedAt.Format(time.RFC3339Nano)},
		Image: c.rec.Image.String(), Name: "/" + c.name(), Driver: graphDriverName, Platform: "linux",
		HostConfig: ContainerHostConfig{NetworkMode: c.spec.Network, Binds: []string{}, AutoRemove: c.spec.AutoRemove, Runtime: c.spec.Runtime},
		GraphDriver: GraphDriver{Name: graphDriverName, Data: map[string]string{
			"LowerDir": strings.Join(a.Lowers, ":"), "UpperDir": a.Upper, "WorkDir": a.Work, "MergedDir": c.dirs.Merged,
		}},
		Mounts: []ContainerMount{},
		Config: ContainerInspectConfig{Hostname: shortContainerID(c.rec.ID), Image: c.spec.ImageRef, Tty: c.spec.Tty, OpenStdin: c.spec.Interactive, DockerOCIImageConfig: c.spec.Config},
	}
	if len(cmd) > 0 {
		r.Path, r.Args = cmd[0], cmd[1:]
	}
	if r.HostConfig.NetworkMode == "" {
		r.HostConfig.NetworkMode = "default"
	}
	for _, v := range c.spec.Volumes {
		bind := v.Source + ":" + v.Destination
		if v.ReadOnly {
			bind += ":ro"
		}
		r.HostConfig.Binds = append(r.HostConfig.Binds, bind)
		r.Mounts = append(r.Mounts, ContainerMount{Type: "bind", Source: v.Source, Destination: v.Destination, RW: !v.ReadOnly})
	}
	return r, nil
}

// Inspected is what InspectObjects found for one reference: a container
// or an image. It marshals as the one it holds.
type Inspected struct {
	Container *ContainerInspect
	Image     *InspectResult
}

// MarshalJSON implements json.Marshaler.
func (i Inspected) MarshalJSON() ([]byte, error) {
	if i.Container != nil {
		return json.Marshal(i.Container)
	}
	return json.Marshal(i.Image)
}

// InspectObjects inspects what each of refs names, in order, as docker
// inspect does: a container when one has that name or ID, else an image.
// kind "container" or "image" looks for that kind only; "" for both.
func (b *Builder) InspectObjects(ctx context.Context, refs []string, kind string) ([]Inspected, error) {
	if kind != "" && kind != "container" && kind != "image" {
		return nil, fmt.Errorf("--type %q: want container or image", kind)
	}
	var out []Inspected
	for _, ref := range refs {
		if kind != "image" {
			c, err := b.InspectContainer(ctx, ref)
			if err == nil {
				out = append(out, Inspected{Container: &c})
				continue
			}
			if !errors.Is(err, ErrNotFound) || kind == "container" {
				return out, err
			}
		}
		imgs, err := b.Inspect(ctx, []string{ref})
		if err != nil {
			if errors.Is(err, ErrNotFound) && kind == "" {
				return out, fmt.Errorf("no such object: %s: %w", ref, ErrNotFound)
			}
			return out, err
		}
		out = append(out, Inspected{Image: &imgs[0]})
	}
	return out, nil
}
