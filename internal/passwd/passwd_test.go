package passwd

import (
	"bufio"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

const (
	testPasswd = `root:x:0:0:root:/root:/bin/sh
# comment
broken line
  app:x:1000:1000:app:/home/app:/bin/sh  

nohome:x:1001:1001::
short:x:7
:x:8:8::/nobody:
badid:x:-1:0::/:
bigid:x:4294967296:0::/:
maxid:x:4294967295:4294967295
app:x:2000:2000::/second:
alias:x:1000:50::/alias:
`
	testGroup = `root:x:0:
wheel:x:10:app,other
app:x:1000:
staff:x:50: app , ,app
#hidden:x:60:app
bad:x:sixty:app
tiny:x
wheel:x:11:app
`
)

func TestParsePasswd(t *testing.T) {
	got, err := ParsePasswd(strings.NewReader(testPasswd))
	if err != nil {
		t.Fatal(err)
	}
	want := []User{
		{Name: "root", UID: 0, GID: 0, Home: "/root"},
		{Name: "app", UID: 1000, GID: 1000, Home: "/home/app"},
		{Name: "nohome", UID: 1001, GID: 1001},
		{Name: "maxid", UID: 4294967295, GID: 4294967295},
		{Name: "app", UID: 2000, GID: 2000, Home: "/second"},
		{Name: "alias", UID: 1000, GID: 50, Home: "/alias"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParsePasswd =\n%+v\nwant\n%+v", got, want)
	}
}

func TestParseGroup(t *testing.T) {
	got, err := ParseGroup(strings.NewReader(testGroup))
	if err != nil {
		t.Fatal(err)
	}
	want := []Group{
		{Name: "root", GID: 0},
		{Name: "wheel", GID: 10, Members: []string{"app", "other"}},
		{Name: "app", GID: 1000},
		{Name: "staff", GID: 50, Members: []string{"app", "app"}},
		{Name: "wheel", GID: 11, Members: []string{"app"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseGroup =\n%+v\nwant\n%+v", got, want)
	}
}

func TestParseErrors(t *testing.T) {
	readErr := errors.New("disk on fire")
	long := "u:x:1:1::/" + strings.Repeat("h", maxLine) + "\n"
	for name, parse := range map[string]func(io.Reader) error{
		"passwd": func(r io.Reader) error { _, err := ParsePasswd(r); return err },
		"group":  func(r io.Reader) error { _, err := ParseGroup(r); return err },
	} {
		if err := parse(iotest.ErrReader(readErr)); !errors.Is(err, readErr) {
			t.Errorf("%s: read error = %v, want %v", name, err, readErr)
		}
		if err := parse(strings.NewReader(long)); !errors.Is(err, bufio.ErrTooLong) {
			t.Errorf("%s: long line error = %v, want ErrTooLong", name, err)
		}
		if err := parse(strings.NewReader("")); err != nil {
			t.Errorf("%s: empty file: %v", name, err)
		}
	}
}

func TestLookups(t *testing.T) {
	users, _ := ParsePasswd(strings.NewReader(testPasswd))
	groups, _ := ParseGroup(strings.NewReader(testGroup))
	app := User{Name: "app", UID: 1000, GID: 1000, Home: "/home/app"}
	for _, tc := range []struct {
		name   string
		lookup func() (any, bool)
		want   any
		found  bool
	}{
		{"user by name, first of two", func() (any, bool) { return UserByName(users, "app") }, app, true},
		{"unknown user name", func() (any, bool) { return UserByName(users, "ghost") }, User{}, false},
		{"malformed entry", func() (any, bool) { return UserByName(users, "short") }, User{}, false},
		{"user by uid, first of two", func() (any, bool) { return UserByUID(users, 1000) }, app, true},
		{"unknown uid", func() (any, bool) { return UserByUID(users, 4242) }, User{}, false},
		{"group by name, first of two", func() (any, bool) { return GroupByName(groups, "wheel") },
			Group{Name: "wheel", GID: 10, Members: []string{"app", "other"}}, true},
		{"commented-out group", func() (any, bool) { return GroupByName(groups, "hidden") }, Group{}, false},
	} {
		got, found := tc.lookup()
		if !reflect.DeepEqual(got, tc.want) || found != tc.found {
			t.Errorf("%s: got %+v, %v; want %+v, %v", tc.name, got, found, tc.want, tc.found)
		}
	}
}

func TestMemberOf(t *testing.T) {
	groups, _ := ParseGroup(strings.NewReader(testGroup))
	for _, tc := range []struct {
		user string
		want []uint32
	}{
		{"app", []uint32{10, 50, 11}},
		{"other", []uint32{10}},
		{"root", []uint32{}},
	} {
		got := MemberOf(groups, tc.user)
		if got == nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("MemberOf(%q) = %#v, want %v", tc.user, got, tc.want)
		}
	}
}
