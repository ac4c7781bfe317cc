package copier

import (
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// chmodSpec is a parsed --chmod: either an octal mode or symbolic clauses
// in chmod(1) syntax.
type chmodSpec struct {
	set     bool
	octal   bool
	mode    uint32
	clauses []chmodClause
}

// chmodClause is one comma-separated part of a symbolic mode, such as
// "u=rwX" or "+x".
type chmodClause struct {
	who     uint32 // the bits of the classes named; 0 means all
	actions []chmodAction
}

// chmodAction is an operator with its permission letters.
type chmodAction struct {
	op    byte   // '+', '-' or '='
	perms string // letters from "rwxXst", or one of "u", "g", "o"
}

const (
	whoUser  = 0o4700
	whoGroup = 0o2070
	whoOther = 0o1007
	whoAll   = 0o7777
)

// parseChmod parses a --chmod value: octal (BuildKit's classic form, at
// most 07777) or symbolic (Dockerfile 1.14).
func parseChmod(s string) (chmodSpec, error) {
	if s == "" {
		return chmodSpec{}, nil
	}
	if s[0] >= '0' && s[0] <= '9' {
		v, err := strconv.ParseUint(s, 8, 32)
		if err != nil || v > 0o7777 {
			return chmodSpec{}, fmt.Errorf("invalid chmod parameter: '%s'. it should be octal string and between 0 and 07777", s)
		}
		return chmodSpec{set: true, octal: true, mode: uint32(v)}, nil
	}
	spec := chmodSpec{set: true}
	for _, part := range strings.Split(s, ",") {
		c, err := parseClause(part)
		if err != nil {
			return chmodSpec{}, fmt.Errorf("invalid chmod parameter %q: %w", s, err)
		}
		spec.clauses = append(spec.clauses, c)
	}
	return spec, nil
}

// parseClause parses "[ugoa]*([-+=]([rwxXst]*|[ugo]))+".
func parseClause(s string) (chmodClause, error) {
	var c chmodClause
	i := 0
	for ; i < len(s); i++ {
		switch s[i] {
		case 'u':
			c.who |= whoUser
		case 'g':
			c.who |= whoGroup
		case 'o':
			c.who |= whoOther
		case 'a':
			c.who |= whoAll
		default:
			goto ops
		}
	}
ops:
	if i == len(s) {
		return c, fmt.Errorf("missing operator in %q", s)
	}
	for i < len(s) {
		op := s[i]
		if op != '+' && op != '-' && op != '=' {
			return c, fmt.Errorf("unexpected %q in %q", op, s)
		}
		i++
		j := i
		for j < len(s) && s[j] != '+' && s[j] != '-' && s[j] != '=' {
			j++
		}
		perms := s[i:j]
		switch {
		case perms == "u" || perms == "g" || perms == "o":
		case strings.Trim(perms, "rwxXst") != "":
			return c, fmt.Errorf("unknown permission in %q", s)
		}
		c.actions = append(c.actions, chmodAction{op: op, perms: perms})
		i = j
	}
	return c, nil
}

// apply returns the permission bits (with setuid, setgid and sticky) that
// the spec gives an entry whose current bits are m.
func (c chmodSpec) apply(m fs.FileMode, isDir bool) fs.FileMode {
	if !c.set {
		return m
	}
	if c.octal {
		return fromUnixMode(c.mode)
	}
	bits := toUnixMode(m)
	for _, cl := range c.clauses {
		who := cl.who
		if who == 0 {
			who = whoAll
		}
		for _, a := range cl.actions {
			var v uint32
			switch a.perms {
			case "u":
				v = replicate((bits >> 6) & 7)
			case "g":
				v = replicate((bits >> 3) & 7)
			case "o":
				v = replicate(bits & 7)
			default:
				v = letterBits(a.perms, bits, isDir, cl.who == 0 || cl.who&0o7 != 0)
			}
			v &= who
			switch a.op {
			case '+':
				bits |= v
			case '-':
				bits &^= v
			case '=':
				bits = bits&^(who&0o777) | v
				if who&0o6000 != 0 {
					bits &^= who & 0o6000 &^ v
				}
			}
		}
	}
	return fromUnixMode(bits)
}

// letterBits turns "rwxXst" letters into bits for all classes; the caller
// masks them with the classes named.
func letterBits(perms string, cur uint32, isDir, sticky bool) uint32 {
	var v uint32
	for _, p := range perms {
		switch p {
		case 'r':
			v |= 0o444
		case 'w':
			v |= 0o222
		case 'x':
			v |= 0o111
		case 'X':
			if isDir || cur&0o111 != 0 {
				v |= 0o111
			}
		case 's':
			v |= 0o6000
		case 't':
			if sticky {
				v |= 0o1000
			}
		}
	}
	return v
}

// replicate copies three permission bits into the user, group and other
// positions.
func replicate(p uint32) uint32 {
	return p<<6 | p<<3 | p
}

// toUnixMode converts the permission and special bits of an fs.FileMode
// into their numeric form.
func toUnixMode(m fs.FileMode) uint32 {
	v := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return v
}

// fromUnixMode converts numeric permission and special bits into an
// fs.FileMode (without type bits).
func fromUnixMode(v uint32) fs.FileMode {
	m := fs.FileMode(v & 0o777)
	if v&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if v&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if v&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// permBits returns the permission and special bits of m.
func permBits(m fs.FileMode) fs.FileMode {
	return m & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}
