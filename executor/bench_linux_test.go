package executor

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/builder-project/builder/internal/testutil"
)

// preferNAT makes findNAT look for the NAT called name first, until the
// test ends.
func preferNAT(tb testing.TB, name string) {
	old := natTools
	natTools = slices.Clone(old)
	slices.SortStableFunc(natTools, func(a, b natTool) int {
		switch {
		case a.name == name:
			return -1
		case b.name == name:
			return 1
		}
		return 0
	})
	natOnce = sync.Once{}
	tb.Cleanup(func() {
		natTools = old
		natOnce = sync.Once{}
	})
}

// BenchmarkRunIsolation measures what the private network and seccomp
// add to a run of `true`: it runs the four combinations of Network
// host/default and Seccomp unconfined/default in turn, b.N times each,
// and reports the milliseconds per run of each and the differences to
// host+unconfined.
func BenchmarkRunIsolation(b *testing.B) {
	testutil.RequirePrivileges(b, "root", "overlay")
	lower := testutil.BusyboxRootfs(b)
	for _, rt := range []string{Builtin, Runc} {
		for _, nat := range []string{"slirp4netns", "pasta"} {
			b.Run(rt+"/"+nat, func(b *testing.B) {
				ex, err := New(rt)
				if err != nil {
					b.Skip(err)
				}
				preferNAT(b, nat)
				if t, err := findNAT(); err != nil || t.name != nat {
					b.Skipf("%s is not installed", nat)
				}
				benchRunIsolation(b, ex, lower)
			})
		}
	}
}

func benchRunIsolation(b *testing.B, ex Executor, lower string) {
	configs := []struct {
		name             string
		network, seccomp string
	}{
		{"host+unconfined", NetworkHost, SeccompUnconfined},
		{"host+seccomp", NetworkHost, ""},
		{"nat+unconfined", NetworkDefault, SeccompUnconfined},
		{"nat+seccomp", NetworkDefault, ""},
	}
	total := make([]time.Duration, len(configs))
	dir := b.TempDir()
	runOnce := func(i int) {
		c := configs[i]
		upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
		for _, d := range []string{upper, work} {
			if err := os.RemoveAll(d); err != nil {
				b.Fatal(err)
			}
			if err := os.Mkdir(d, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		s := Spec{Lowers: []string{lower}, Upper: upper, Work: work, Args: []string{"true"}, Network: c.network, Seccomp: c.seccomp}
		start := time.Now()
		if err := ex.Run(context.Background(), s, IO{}); err != nil {
			b.Fatalf("%s: %v", c.name, err)
		}
		total[i] += time.Since(start)
	}
	for i := range configs {
		runOnce(i) // warm up
		total[i] = 0
	}
	b.ResetTimer()
	for range b.N {
		for i := range configs {
			runOnce(i)
		}
	}
	ms := func(i int) float64 { return float64(total[i].Microseconds()) / 1000 / float64(b.N) }
	for i, c := range configs {
		b.ReportMetric(ms(i), c.name+"-ms/run")
		if i > 0 {
			b.ReportMetric(ms(i)-ms(0), c.name+"-extra-ms/run")
		}
	}
}
