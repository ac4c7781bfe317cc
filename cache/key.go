package cache

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/opencontainers/go-digest"
)

// KeyVersion names the canonical encoding hashed by Key. Change it whenever
// the encoding or the meaning of a KeyInput field changes, so that records
// written by an older builder are never mistaken for current ones.
const KeyVersion = "builder.cache.v2"

// KeyScratch is the Parent of the first step of a stage built FROM scratch.
const KeyScratch digest.Digest = "scratch"

// KV is a name and a value: a build arg or an instruction flag.
type KV struct {
	// Name is the arg or flag name, without leading dashes for flags.
	Name string `json:"name"`
	// Value is the value after variable expansion.
	Value string `json:"value"`
}

// MountKey describes one RUN --mount for the cache key. It deliberately has
// no field that could carry a secret's value: a secret mount is keyed by its
// id (and how it is exposed), never by its content.
type MountKey struct {
	// Type is the mount type: bind, cache, tmpfs, secret or ssh.
	Type string `json:"type"`
	// Target is the mount point inside the container (for a secret exposed
	// only as an environment variable it may be empty).
	Target string `json:"target,omitempty"`
	// Source is the path inside From (bind, cache with from=).
	Source string `json:"source,omitempty"`
	// From identifies what a bind or cache mount reads from: the key of the
	// last step of the named stage, an image's manifest digest, or the
	// context checksum of the mounted source when it comes from the build
	// context.
	From digest.Digest `json:"from,omitempty"`
	// ID is the cache mount id, the secret id or the ssh id.
	ID string `json:"id,omitempty"`
	// Sharing is the cache mount sharing mode: shared, private or locked.
	Sharing string `json:"sharing,omitempty"`
	// Env is the environment variable a secret is exposed as, if any.
	Env string `json:"env,omitempty"`
	// ReadOnly is true for read-only mounts (bind defaults to read-only;
	// the caller passes the effective value).
	ReadOnly bool `json:"readonly,omitempty"`
	// Required is the secret/ssh required flag.
	Required bool `json:"required,omitempty"`
	// Mode, UID and GID are the mode and ownership options as written
	// (cache, secret, ssh). Empty means the default.
	Mode string `json:"mode,omitempty"`
	UID  string `json:"uid,omitempty"`
	GID  string `json:"gid,omitempty"`
	// Size is the tmpfs size option as written.
	Size string `json:"size,omitempty"`
}

// KeyInput is the canonical description of one build step: everything that
// can change its result. Key hashes it.
//
// Slices whose order carries no meaning (Args, Flags, Mounts) are sorted by
// Key, so callers need not sort them; Env keeps its order because a later
// entry overrides an earlier one. A nil slice and an empty one are the same.
type KeyInput struct {
	// Parent is the key of the previous step in the stage. For the first
	// step it is the base image's manifest digest (or its config digest when
	// no manifest exists), or KeyScratch.
	Parent digest.Digest
	// Platform is the target platform, "os/arch[/variant]".
	Platform string
	// Instruction is the instruction as written after variable expansion,
	// including its flags and any heredoc bodies.
	Instruction string
	// Args are the build args in scope at this step with their values:
	// only args declared (by ARG) before this step in the stage, or, for
	// the predefined args, used by it. An arg declared without a value and
	// not given on the command line is unset; leave it out. If a name
	// occurs twice the last occurrence wins. Proxy args (HTTP_PROXY and
	// friends, any case variant Docker predefines) are dropped by Key.
	Args []KV
	// Env is the environment of the step ("NAME=value"), in image config
	// order.
	Env []string
	// Flags are the instruction's flags (chown, chmod, link, exclude,
	// parents, network, security, ...). Repeated flags appear repeatedly.
	Flags []KV
	// Sources is the checksum of the COPY/ADD sources (Hasher.Checksum), or
	// for ADD of a URL the digest of the downloaded content; empty for
	// other instructions.
	Sources digest.Digest
	// Mounts are the RUN --mount options of the step.
	Mounts []MountKey
	// SourceDateEpoch is the build's SOURCE_DATE_EPOCH in seconds, empty
	// without one. It changes the mtimes in the step's layer and the
	// times in its history, so a step built under another epoch (or
	// none) is another step. Empty adds nothing to the encoding: keys of
	// builds without an epoch are those of older builders.
	SourceDateEpoch string
}

// proxyArgs are Docker's predefined proxy build args. They may be used
// without declaration and never enter the cache key or the image history,
// so that building behind a proxy reuses the cache built without one.
var proxyArgs = map[string]bool{
	"HTTP_PROXY": true, "http_proxy": true,
	"HTTPS_PROXY": true, "https_proxy": true,
	"FTP_PROXY": true, "ftp_proxy": true,
	"NO_PROXY": true, "no_proxy": true,
	"ALL_PROXY": true, "all_proxy": true,
}

// IsProxyArg reports whether name is one of Docker's predefined proxy build
// args (HTTP_PROXY, HTTPS_PROXY, FTP_PROXY, NO_PROXY, ALL_PROXY, upper or
// lower case), which Key ignores.
func IsProxyArg(name string) bool { return proxyArgs[name] }

// Key returns the cache key of a step: the sha256 of a versioned canonical
// JSON encoding of in. Struct field order, the order of Args, Flags and
// Mounts, and nil versus empty slices do not change the key; proxy args are
// ignored.
func Key(in KeyInput) digest.Digest {
	doc := keyDoc{
		Version:     KeyVersion,
		Parent:      cstr(in.Parent),
		Platform:    cstr(in.Platform),
		Instruction: cstr(in.Instruction),
		Args:        canonicalArgs(in.Args),
		Flags:       canonicalKVs(in.Flags),
		Sources:     cstr(in.Sources),
		Epoch:       cstr(in.SourceDateEpoch),
	}
	for _, e := range in.Env {
		doc.Env = append(doc.Env, cstr(e))
	}
	for _, m := range in.Mounts {
		doc.Mounts = append(doc.Mounts, mountDoc{
			Type: cstr(m.Type), Target: cstr(m.Target), Source: cstr(m.Source),
			From: cstr(m.From), ID: cstr(m.ID), Sharing: cstr(m.Sharing),
			Env: cstr(m.Env), ReadOnly: m.ReadOnly, Required: m.Required,
			Mode: cstr(m.Mode), UID: cstr(m.UID), GID: cstr(m.GID), Size: cstr(m.Size),
		})
	}
	// Mounts are applied in order of their targets; the stable sort keeps
	// the written order of mounts sharing a target, where it matters.
	slices.SortStableFunc(doc.Mounts, func(a, b mountDoc) int {
		return strings.Compare(string(a.Target), string(b.Target))
	})
	b, err := json.Marshal(doc)
	if err != nil {
		// Only strings, bools and slices of them: Marshal cannot fail.
		panic("cache: encoding key: " + err.Error())
	}
	return digest.FromBytes(b)
}

// keyDoc is the canonical encoding hashed by Key. Its JSON field names and
// order are part of KeyVersion.
type keyDoc struct {
	Version     string     `json:"version"`
	Parent      cstr       `json:"parent,omitempty"`
	Platform    cstr       `json:"platform,omitempty"`
	Instruction cstr       `json:"instruction"`
	Args        []kvDoc    `json:"args,omitempty"`
	Env         []cstr     `json:"env,omitempty"`
	Flags       []kvDoc    `json:"flags,omitempty"`
	Sources     cstr       `json:"sources,omitempty"`
	Mounts      []mountDoc `json:"mounts,omitempty"`
	Epoch       cstr       `json:"source_date_epoch,omitempty"`
}

type kvDoc struct {
	Name  cstr `json:"name"`
	Value cstr `json:"value"`
}

type mountDoc struct {
	Type     cstr `json:"type"`
	Target   cstr `json:"target,omitempty"`
	Source   cstr `json:"source,omitempty"`
	From     cstr `json:"from,omitempty"`
	ID       cstr `json:"id,omitempty"`
	Sharing  cstr `json:"sharing,omitempty"`
	Env      cstr `json:"env,omitempty"`
	ReadOnly bool `json:"readonly,omitempty"`
	Required bool `json:"required,omitempty"`
	Mode     cstr `json:"mode,omitempty"`
	UID      cstr `json:"uid,omitempty"`
	GID      cstr `json:"gid,omitempty"`
	Size     cstr `json:"size,omitempty"`
}

// canonicalArgs drops proxy args, keeps the last value of a repeated name
// and sorts by name.
func canonicalArgs(args []KV) []kvDoc {
	last := make(map[string]string, len(args))
	for _, a := range args {
		if IsProxyArg(a.Name) {
			continue
		}
		last[a.Name] = a.Value
	}
	out := make([]kvDoc, 0, len(last))
	for n, v := range last {
		out = append(out, kvDoc{Name: cstr(n), Value: cstr(v)})
	}
	sortKVs(out)
	return out
}

// canonicalKVs sorts flags by name, then value.
func canonicalKVs(kvs []KV) []kvDoc {
	out := make([]kvDoc, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, kvDoc{Name: cstr(kv.Name), Value: cstr(kv.Value)})
	}
	sortKVs(out)
	return out
}

func sortKVs(kvs []kvDoc) {
	slices.SortFunc(kvs, func(a, b kvDoc) int {
		if c := strings.Compare(string(a.Name), string(b.Name)); c != 0 {
			return c
		}
		return strings.Compare(string(a.Value), string(b.Value))
	})
}

// cstr is a string in the canonical encoding. encoding/json replaces invalid
// UTF-8 with U+FFFD, which would make different byte strings (binary heredoc
// bodies, odd file names) share a key; a cstr that is not valid UTF-8 is
// encoded as {"base64": "..."} instead, which no valid string encodes to.
type cstr string

// MarshalJSON implements json.Marshaler.
func (s cstr) MarshalJSON() ([]byte, error) {
	if utf8.ValidString(string(s)) {
		return json.Marshal(string(s))
	}
	return json.Marshal(struct {
		Base64 string `json:"base64"`
	}{base64.StdEncoding.EncodeToString([]byte(s))})
}
