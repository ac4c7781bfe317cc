package userns

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestParseMaps(t *testing.T) {
	m, err := ParseMaps(strings.NewReader("         0       1001          1\n         1     100000      65536\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.String(); got != "0:1001:1,1:100000:65536" {
		t.Fatalf("maps = %s", got)
	}
	if m.Identity() || m.Count() != 65537 {
		t.Fatalf("identity %v count %d", m.Identity(), m.Count())
	}
	for id, want := range map[uint32]bool{0: true, 1: true, 1000: true, 65536: true, 65537: false} {
		if m.Contains(id) != want {
			t.Errorf("Contains(%d) = %v", id, !want)
		}
	}
	host, _ := ParseMaps(strings.NewReader("0 0 4294967295\n"))
	if !host.Identity() {
		t.Fatal("the initial namespace's map is not the identity")
	}
	if _, err := ParseMaps(strings.NewReader("0 1\n")); err == nil {
		t.Fatal("a two-field line parsed")
	}
}

func TestSubIDs(t *testing.T) {
	f := filepath.Join(t.TempDir(), "subuid")
	os.WriteFile(f, []byte("# comment\nalice:100000:65536\nbob:165536:65536\n1003:231072:1000\nalice:300000:10\n"), 0o644)
	tests := []struct {
		name string
		id   int
		want []SubIDRange
	}{
		{"alice", 1001, []SubIDRange{{100000, 65536}, {300000, 10}}},
		{"carol", 1003, []SubIDRange{{231072, 1000}}},
		{"dave", 1004, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SubIDs(f, tt.name, tt.id)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
	if got, err := SubIDs(filepath.Join(t.TempDir(), "none"), "alice", 1); err != nil || got != nil {
		t.Fatalf("missing file: %v, %v", got, err)
	}
	os.WriteFile(f, []byte("alice:x:65536\n"), 0o644)
	if _, err := SubIDs(f, "alice", 1); err == nil || !strings.Contains(err.Error(), f+":1") {
		t.Fatalf("malformed line: %v", err)
	}
}

func TestLayout(t *testing.T) {
	got := Layout(1001, []SubIDRange{{100000, 65536}, {300000, 10}}).String()
	if want := "0:1001:1,1:100000:65536,65537:300000:10"; got != want {
		t.Fatalf("layout %s, want %s", got, want)
	}
}

func TestCheckChown(t *testing.T) {
	if err := CheckChown("/f", 0, 0, nil); err != nil {
		t.Fatal(err)
	}
	other := errors.New("other")
	if err := CheckChown("/f", 1, 1, other); err != other {
		t.Fatalf("a non-EINVAL error changed: %v", err)
	}
	current = Info{UIDs: Maps{{0, 1001, 1}}, GIDs: Maps{{0, 1001, 1}}}
	currentOnce.Do(func() {})
	err := CheckChown("/f", 1000, 1000, syscall.EINVAL)
	if !errors.Is(err, ErrUnmapped) || !strings.Contains(err.Error(), "/etc/subuid") || !strings.Contains(err.Error(), "uidmap") || !strings.Contains(err.Error(), "1000:1000 of /f") {
		t.Fatalf("unmapped owner: %v", err)
	}
	if err := CheckChown("/f", 0, 0, syscall.EINVAL); errors.Is(err, ErrUnmapped) {
		t.Fatalf("a mapped owner reported unmapped: %v", err)
	}
}
