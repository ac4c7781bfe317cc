package cache

import (
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func baseKeyInput() KeyInput {
	return KeyInput{
		Parent:      digest.FromString("parent"),
		Platform:    "linux/amd64",
		Instruction: "RUN make",
		Args:        []KV{{"A", "1"}, {"B", "2"}},
		Env:         []string{"PATH=/usr/bin", "X=1"},
		Flags:       []KV{{"network", "none"}, {"exclude", "*.md"}, {"exclude", "*.txt"}},
		Sources:     digest.FromString("sources"),
		Mounts: []MountKey{
			{Type: "cache", Target: "/root/.cache", ID: "go", Sharing: "shared"},
			{Type: "secret", Target: "/run/secrets/tok", ID: "tok"},
		},
	}
}

func TestKeyRules(t *testing.T) {
	base := Key(baseKeyInput())
	tests := []struct {
		name   string
		mutate func(*KeyInput)
		same   bool
	}{
		// Every field changes the key.
		{"parent", func(in *KeyInput) { in.Parent = digest.FromString("other") }, false},
		{"parent scratch", func(in *KeyInput) { in.Parent = KeyScratch }, false},
		{"platform", func(in *KeyInput) { in.Platform = "linux/arm64" }, false},
		{"instruction", func(in *KeyInput) { in.Instruction = "RUN make all" }, false},
		{"heredoc body", func(in *KeyInput) { in.Instruction = "RUN <<EOF\necho 1\nEOF" }, false},
		{"arg value", func(in *KeyInput) { in.Args[0].Value = "9" }, false},
		{"arg added", func(in *KeyInput) { in.Args = append(in.Args, KV{"C", ""}) }, false},
		{"arg removed", func(in *KeyInput) { in.Args = in.Args[:1] }, false},
		{"env", func(in *KeyInput) { in.Env[1] = "X=2" }, false},
		{"env order", func(in *KeyInput) { in.Env[0], in.Env[1] = in.Env[1], in.Env[0] }, false},
		{"flag value", func(in *KeyInput) { in.Flags[0].Value = "host" }, false},
		{"flag added", func(in *KeyInput) { in.Flags = append(in.Flags, KV{"link", "true"}) }, false},
		{"sources", func(in *KeyInput) { in.Sources = digest.FromString("changed") }, false},
		{"mount target", func(in *KeyInput) { in.Mounts[0].Target = "/cache" }, false},
		{"cache mount id", func(in *KeyInput) { in.Mounts[0].ID = "npm" }, false},
		{"cache mount sharing", func(in *KeyInput) { in.Mounts[0].Sharing = "locked" }, false},
		{"secret id", func(in *KeyInput) { in.Mounts[1].ID = "other" }, false},
		{"secret env", func(in *KeyInput) { in.Mounts[1].Env = "TOKEN" }, false},
		{"bind from stage", func(in *KeyInput) {
			in.Mounts = append(in.Mounts, MountKey{Type: "bind", Target: "/src", From: digest.FromString("stage")})
		}, false},
		{"source date epoch set", func(in *KeyInput) { in.SourceDateEpoch = "1600000000" }, false},
		{"source date epoch 0", func(in *KeyInput) { in.SourceDateEpoch = "0" }, false},
		{"invalid utf8 differs", func(in *KeyInput) { in.Instruction = "RUN \xff" }, false},
		// Order and representation do not matter.
		{"args order", func(in *KeyInput) { in.Args[0], in.Args[1] = in.Args[1], in.Args[0] }, true},
		{"args duplicate last wins", func(in *KeyInput) { in.Args = append([]KV{{"A", "old"}}, in.Args...) }, true},
		{"flags order", func(in *KeyInput) { slicesReverse(in.Flags) }, true},
		{"mounts order", func(in *KeyInput) { in.Mounts[0], in.Mounts[1] = in.Mounts[1], in.Mounts[0] }, true},
		// Proxy args never count, declared or not, in either case.
		{"proxy args", func(in *KeyInput) {
			for _, n := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"} {
				in.Args = append(in.Args, KV{n, "http://proxy:3128"})
			}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := baseKeyInput()
			tt.mutate(&in)
			got := Key(in)
			if (got == base) != tt.same {
				t.Fatalf("Key changed = %v, want changed = %v", got != base, !tt.same)
			}
		})
	}
}

func slicesReverse(kvs []KV) {
	for i, j := 0, len(kvs)-1; i < j; i, j = i+1, j-1 {
		kvs[i], kvs[j] = kvs[j], kvs[i]
	}
}

func TestKeyNilEqualsEmpty(t *testing.T) {
	a := Key(KeyInput{Parent: KeyScratch, Instruction: "ENV A=1"})
	b := Key(KeyInput{Parent: KeyScratch, Instruction: "ENV A=1", Args: []KV{}, Env: []string{}, Flags: []KV{}, Mounts: []MountKey{}})
	if a != b {
		t.Fatalf("nil and empty slices differ: %s %s", a, b)
	}
}

func TestKeyInvalidUTF8Distinct(t *testing.T) {
	// encoding/json maps both to U+FFFD; the canonical encoding must not.
	a := Key(KeyInput{Instruction: "RUN \xff"})
	b := Key(KeyInput{Instruction: "RUN \xfe"})
	c := Key(KeyInput{Instruction: "RUN \uFFFD"})
	if a == b || a == c || b == c {
		t.Fatalf("invalid UTF-8 collides: %s %s %s", a, b, c)
	}
}

// TestKeyGolden pins the encoding: if it fails, the encoding changed, and
// KeyVersion must change with it.
func TestKeyGolden(t *testing.T) {
	const want = "sha256:a6151ae6718ecd82978c5410405177766d804b9c07342adeb1548a2f05f97ff6"
	if got := Key(baseKeyInput()); got.String() != want {
		t.Fatalf("Key = %s, want %s (bump KeyVersion if the encoding changed on purpose)", got, want)
	}
}

// TestMountKeyCannotHoldSecret checks that no MountKey field could carry a
// secret's value: every field is named for metadata, never content.
func TestMountKeyCannotHoldSecret(t *testing.T) {
	allowed := map[string]bool{"Type": true, "Target": true, "Source": true, "From": true, "ID": true,
		"Sharing": true, "Env": true, "ReadOnly": true, "Required": true, "Mode": true, "UID": true, "GID": true, "Size": true}
	rt := reflect.TypeFor[MountKey]()
	for i := range rt.NumField() {
		f := rt.Field(i)
		if !allowed[f.Name] || strings.Contains(strings.ToLower(f.Name), "value") || f.Type.Kind() == reflect.Slice {
			t.Errorf("MountKey.%s (%s) is not an allowed metadata field", f.Name, f.Type)
		}
	}
}
