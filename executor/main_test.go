package executor

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	if Init() {
		return
	}
	if runProbe() {
		return
	}
	os.Exit(m.Run())
}
