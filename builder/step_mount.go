package builder

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/builder-project/builder/cache"
	"github.com/builder-project/builder/dockerfile"
	"github.com/builder-project/builder/executor"
	"github.com/builder-project/builder/internal/copier"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	digest "github.com/opencontainers/go-digest"
)

// mountPlan is one RUN --mount, its source resolved once.
type mountPlan struct {
	m instructions.Mount // expanded, as parsed
	// from identifies what a bind mount reads: the context checksum of
	// the source, the key of a stage, or an image's manifest digest.
	from digest.Digest
	// ctxCopy copies the source of a bind mount from the context, as the
	// step sees it, to bindSource below a destination root.
	ctxCopy copier.Options
	stage   *dockerfile.Stage // bind mount from a stage
	image   *stored           // bind mount from an image
	// id is the effective cache or secret id; target the effective
	// mount point of a secret.
	id, target string
}

func (bd *build) newMountPlan(ctx context.Context, res *stageResult, st *dockerfile.Step, i int, m *instructions.Mount) (*mountPlan, error) {
	mp := &mountPlan{m: *m, target: m.Target}
	if m.Env != nil && m.Type != instructions.MountTypeSecret {
		return nil, fmt.Errorf("RUN --mount=type=%s: env= is only valid for secret mounts", m.Type)
	}
	if m.From != "" && m.Type != instructions.MountTypeBind && m.Type != instructions.MountTypeCache {
		return nil, fmt.Errorf("RUN --mount=type=%s: from= is only valid for bind mounts", m.Type)
	}
	switch m.Type {
	case instructions.MountTypeTmpfs:
	case instructions.MountTypeCache:
		if m.From != "" {
			return nil, fmt.Errorf("RUN --mount=type=cache,from=%s: seeding a cache mount from a stage or image is not supported", m.From)
		}
		mp.id = m.CacheID
		if mp.id == "" {
			mp.id = m.Target
		}
	case instructions.MountTypeSecret:
		mp.id = m.CacheID
		if m.Source != "" {
			mp.id = m.Source
		}
		if mp.id == "" {
			mp.id = path.Base(m.Target)
		}
		if mp.target == "" && m.Env == nil {
			mp.target = "/run/secrets/" + path.Base(mp.id)
		}
	case instructions.MountTypeBind:
		if err := bd.resolveBind(ctx, res, st, i, mp); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("RUN --mount=type=%s is not supported", m.Type)
	}
	return mp, nil
}

// resolveBind finds what a bind mount reads and fingerprints it.
func (bd *build) resolveBind(ctx context.Context, res *stageResult, st *dockerfile.Step, i int, mp *mountPlan) error {
	var src *dockerfile.MountSource
	for j := range st.Mounts {
		if st.Mounts[j].Index == i {
			src = &st.Mounts[j]
		}
	}
	if (src == nil) != (mp.m.From == "") || src != nil && src.From != mp.m.From {
		return fmt.Errorf("--mount from=%s: the source was not resolved", mp.m.From)
	}
	switch {
	case src == nil:
	case src.Stage != nil:
		mp.stage, mp.from = src.Stage, bd.result(src.Stage).key
		return nil
	default:
		img, err := bd.image(ctx, src.Image, res.platform)
		if err != nil {
			return fmt.Errorf("--mount from=%s: %w", src.Image, err)
		}
		mp.image, mp.from = img, img.rec.Manifest.Digest
		return nil
	}
	// The step sees the context as COPY reads it, without what
	// .dockerignore excludes, and the key covers exactly those files.
	mp.ctxCopy = bd.copyOptions("/", copySpec{srcs: []string{literalSource(mp.m.Source)}, dest: "/" + bindSource}, true)
	sum, err := bd.contextSum(ctx, mp.ctxCopy, copySpec{})
	if err != nil {
		return fmt.Errorf("mount source %q: %w", mp.m.Source, err)
	}
	mp.from = sum
	return nil
}

// literalSource makes a bind source a COPY source that names exactly it: a
// path with wildcard characters becomes a pattern whose only match is that
// path, each such character in a class of its own.
func literalSource(p string) string {
	if !strings.ContainsAny(p, "*?[") {
		return p
	}
	var b strings.Builder
	for _, c := range p {
		switch c {
		case '*', '?', '[':
			b.WriteString("[" + string(c) + "]")
		case '\\':
			b.WriteString(`[\\]`)
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// key describes the mount for the cache key: every option as written, with
// the source's fingerprint. A secret contributes its id, never its value.
func (mp *mountPlan) key() cache.MountKey {
	m := mp.m
	k := cache.MountKey{
		Type: string(m.Type), Target: mp.target, Source: m.Source, From: mp.from,
		ID: mp.id, Sharing: string(m.CacheSharing), ReadOnly: m.ReadOnly, Required: m.Required,
	}
	if m.Type != instructions.MountTypeCache && m.Type != instructions.MountTypeSecret {
		k.ID = m.CacheID
	}
	if m.Env != nil {
		k.Env = mp.envName()
	}
	if m.Mode != nil {
		k.Mode = fmt.Sprintf("%o", *m.Mode)
	}
	if m.UID != nil {
		k.UID = fmt.Sprint(*m.UID)
	}
	if m.GID != nil {
		k.GID = fmt.Sprint(*m.GID)
	}
	if m.SizeLimit != 0 {
		k.Size = fmt.Sprint(m.SizeLimit)
	}
	return k
}

// envName is the variable a secret is exposed as: env=, or its id.
func (mp *mountPlan) envName() string {
	if mp.m.Env == nil || *mp.m.Env != "" {
		return deref(mp.m.Env)
	}
	return mp.id
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// mount adds the mount to spec, and returns what to release once the step
// is over.
func (mp *mountPlan) mount(ctx context.Context, bd *build, spec *executor.Spec) (func(), error) {
	m := mp.m
	switch m.Type {
	case instructions.MountTypeTmpfs:
		opts := []string{"nosuid", "nodev"}
		if m.SizeLimit > 0 {
			opts = append(opts, fmt.Sprintf("size=%d", m.SizeLimit))
		}
		spec.Mounts = append(spec.Mounts, executor.Mount{Type: "tmpfs", Destination: m.Target, Options: opts})
		return nil, nil
	case instructions.MountTypeCache:
		return mp.cacheMount(bd, spec)
	case instructions.MountTypeSecret:
		return mp.secretMount(bd, spec)
	default:
		return mp.bindMount(ctx, bd, spec)
	}
}

// cacheMount binds the persistent cache directory of the mount's id. The
// mode, uid and gid options, when given, are applied to its root.
func (mp *mountPlan) cacheMount(bd *build, spec *executor.Spec) (func(), error) {
	m := mp.m
	locked := m.CacheSharing == instructions.MountSharingLocked || m.CacheSharing == instructions.MountSharingPrivate
	dir, release, err := bd.b.st.CacheMount(mp.id, locked)
	if err != nil {
		return nil, err
	}
	if err := applyOwnership(dir, m.Mode, m.UID, m.GID); err != nil {
		release()
		return nil, fmt.Errorf("cache mount %q: %w", mp.id, err)
	}
	spec.Mounts = append(spec.Mounts, executor.Mount{Type: "bind", Source: dir, Destination: m.Target, Options: []string{"rbind", rwOption(m.ReadOnly)}})
	return release, nil
}

func rwOption(readOnly bool) string {
	if readOnly {
		return "ro"
	}
	return "rw"
}

// applyOwnership sets the mode and owner options of a mount on p.
func applyOwnership(p string, mode, uid, gid *uint64) error {
	if uid != nil || gid != nil {
		u, g := -1, -1
		if uid != nil {
			u = int(*uid)
		}
		if gid != nil {
			g = int(*gid)
		}
		if err := os.Lchown(p, u, g); err != nil {
			return err
		}
	}
	if mode != nil {
		return os.Chmod(p, os.FileMode(*mode)&os.ModePerm)
	}
	return nil
}

// SecretSource is where a --secret value comes from: a file or an
// environment variable of the builder process.
type SecretSource struct {
	File string
	Env  string
}

// secretMount exposes a build secret to a RUN step: as a read-only file
// (mode 0400 unless mode= says otherwise) at its target, and/or as an
// environment variable with env=. The value never enters a layer, the
// config, the history or the cache key.
func (mp *mountPlan) secretMount(bd *build, spec *executor.Spec) (func(), error) {
	m := mp.m
	src, ok := bd.opts.Secrets[mp.id]
	if !ok {
		if m.Required {
			return nil, fmt.Errorf("secret %q is required but was not provided (use --secret id=%s,src=FILE)", mp.id, mp.id)
		}
		return nil, nil
	}
	value, err := src.read(mp.id)
	if err != nil {
		return nil, err
	}
	if m.Env != nil {
		spec.Env = append(spec.Env, mp.envName()+"="+string(value))
	}
	if mp.target == "" {
		return nil, nil
	}
	dir, release, err := bd.b.st.TempDir("secret-")
	if err != nil {
		return nil, err
	}
	mode := uint64(0o400)
	if m.Mode == nil {
		m.Mode = &mode
	}
	zero := uint64(0)
	if m.UID == nil {
		m.UID = &zero
	}
	if m.GID == nil {
		m.GID = &zero
	}
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, value, 0o400); err == nil {
		err = applyOwnership(file, m.Mode, m.UID, m.GID)
	}
	if err != nil {
		release()
		return nil, fmt.Errorf("secret %q: %w", mp.id, err)
	}
	spec.Mounts = append(spec.Mounts, executor.Mount{Type: "bind", Source: file, Destination: mp.target, Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}})
	return func() { release() }, nil
}

// read returns the secret's value.
func (s SecretSource) read(id string) ([]byte, error) {
	if s.Env != "" {
		v, set := os.LookupEnv(s.Env)
		if !set {
			return nil, fmt.Errorf("secret %q: environment variable %s is not set", id, s.Env)
		}
		return []byte(v), nil
	}
	value, err := os.ReadFile(s.File)
	if err != nil {
		return nil, fmt.Errorf("reading secret %q: %w", id, err)
	}
	return value, nil
}
