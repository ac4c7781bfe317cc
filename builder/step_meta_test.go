package builder

import (
	"context"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

// TestFakeExposeExpandsVariables: EXPOSE expands ARG and ENV values as
// docker and Buildah do, a value with spaces becoming several ports, and
// an unset variable with ${X:+...} none; history records the ports as
// expanded. docker's --change EXPOSE sees the image's environment.
func TestFakeExposeExpandsVariables(t *testing.T) {
	f := newFakeBuild(t, nil)
	f.mustBuild(t, `FROM scratch
ARG PORT=8080
ENV TLS=1 EXTRA="9000/udp 9001"
EXPOSE $PORT ${TLS:+8443} ${NOTLS:+9443}
EXPOSE ${EXTRA}
`, BuildOptions{Tags: []string{"app:1"}, BuildArgs: map[string]string{"PORT": "8081"}})
	ins, err := f.b.Inspect(context.Background(), []string{"app:1"})
	if err != nil {
		t.Fatal(err)
	}
	var ports []string
	for p := range ins[0].Config.ExposedPorts {
		ports = append(ports, p)
	}
	sort.Strings(ports)
	if want := []string{"8081/tcp", "8443/tcp", "9000/udp", "9001/tcp"}; !reflect.DeepEqual(ports, want) {
		t.Errorf("exposed ports %q, want %q", ports, want)
	}
	hist, err := f.b.History(context.Background(), "app:1")
	if err != nil {
		t.Fatal(err)
	}
	var createdBy []string
	for _, h := range hist {
		createdBy = append(createdBy, h.CreatedBy)
	}
	for _, want := range []string{"EXPOSE 8081 8443", "EXPOSE 9000/udp 9001"} {
		if !slices.Contains(createdBy, want) {
			t.Errorf("history %q lacks %q", createdBy, want)
		}
	}

	_, err = f.b.Import(context.Background(), strings.NewReader(string(tarOf(t, "a", "1"))), ImportOptions{Ref: "imp:1",
		Changes: []string{"ENV PORT=7000", "EXPOSE $PORT"}})
	if err != nil {
		t.Fatal(err)
	}
	ins, err = f.b.Inspect(context.Background(), []string{"imp:1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ins[0].Config.ExposedPorts["7000/tcp"]; !ok || len(ins[0].Config.ExposedPorts) != 1 {
		t.Errorf("import --change EXPOSE $PORT: ports %v", ins[0].Config.ExposedPorts)
	}
}
