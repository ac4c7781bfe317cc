package executor

import (
	"fmt"
	"os"
	"unsafe"

	"github.com/elastic/go-seccomp-bpf/arch"
	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// seccompProfile returns the seccomp section of sp for the Spec.Seccomp
// value name: Docker's default profile, none, or the profile in the file
// name, each adjusted to sp's capabilities and the host's architecture and
// kernel as Docker does.
func seccompProfile(name string, sp *specs.Spec) (*specs.LinuxSeccomp, error) {
	switch name {
	case "":
		p, err := seccomp.GetDefaultProfile(sp)
		if err != nil {
			return nil, fmt.Errorf("loading the default seccomp profile: %w", err)
		}
		return p, nil
	case SeccompUnconfined:
		return nil, nil
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading seccomp profile: %w", err)
	}
	p, err := seccomp.LoadProfile(string(b), sp)
	if err != nil {
		return nil, fmt.Errorf("loading seccomp profile %s: %w", name, err)
	}
	return p, nil
}

// loadSeccomp installs the filter sp describes on every thread of the
// calling process; children inherit it. Without no_new_privs this needs
// CAP_SYS_ADMIN, which a container's init has.
func loadSeccomp(sp *specs.LinuxSeccomp) error {
	if sp == nil {
		return nil
	}
	prog, err := compileSeccomp(sp)
	if err != nil {
		return err
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return fmt.Errorf("assembling seccomp filter: %w", err)
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog))); errno != 0 {
		return fmt.Errorf("loading seccomp filter: %w", errno)
	}
	return nil
}

// compileSeccomp turns the runtime-spec seccomp section into a classic
// BPF program: the architecture check, then each rule's system calls in
// order, the first match deciding, then the default action. A rule with
// argument comparisons loads the arguments, so the system call number is
// loaded again after it. (go-seccomp-bpf's assembler does not reload it,
// which makes any profile with two conditional rules, such as Docker's
// socket and clone rules, compare later system call numbers against an
// argument; only its system call table is used here.)
//
// Only the native architecture is filtered: system calls of another ABI
// (i386 or x32 on amd64) get the default action, which is stricter than
// libseccomp's handling of the profile's sub-architectures. System call
// names missing from the table (newer than it) are skipped, as libseccomp
// skips names it does not know.
func compileSeccomp(sp *specs.LinuxSeccomp) ([]bpf.Instruction, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, fmt.Errorf("compiling seccomp filter: %w", err)
	}
	def, err := seccompAction(sp.DefaultAction, sp.DefaultErrnoRet)
	if err != nil {
		return nil, err
	}
	loadNr := bpf.LoadAbsolute{Off: 0, Size: 4}
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4}, // seccomp_data.arch
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(info.ID), SkipTrue: 1},
		bpf.RetConstant{Val: def},
		loadNr,
	}
	if info.ID == arch.X86_64.ID {
		// x32 system calls have this bit set.
		prog = append(prog, bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: uint32(arch.X32.SeccompMask), SkipFalse: 1}, bpf.RetConstant{Val: def})
	}
	for _, rule := range sp.Syscalls {
		action, err := seccompAction(rule.Action, rule.ErrnoRet)
		if err != nil {
			return nil, err
		}
		var body []bpf.Instruction
		if len(rule.Args) > 0 {
			sets, err := seccompConditions(rule.Args)
			if err != nil {
				return nil, err
			}
			for _, set := range sets {
				body = append(body, conditionSet(set, action)...)
			}
			body = append(body, loadNr)
		} else {
			body = []bpf.Instruction{bpf.RetConstant{Val: action}}
		}
		if len(body) > 255 {
			return nil, fmt.Errorf("compiling seccomp filter: rule for %v is too long", rule.Names)
		}
		seen := map[int]bool{}
		for _, name := range rule.Names {
			nr, ok := info.SyscallNames[name]
			if !ok || seen[nr] {
				continue
			}
			seen[nr] = true
			prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(nr), SkipFalse: uint8(len(body))})
			prog = append(prog, body...)
		}
	}
	prog = append(prog, bpf.RetConstant{Val: def})
	if len(prog) > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("compiling seccomp filter: %d instructions, more than %d", len(prog), unix.BPF_MAXINSNS)
	}
	return prog, nil
}

// seccompAction maps a runtime-spec action to a seccomp return value.
func seccompAction(a specs.LinuxSeccompAction, errnoRet *uint) (uint32, error) {
	errno := uint32(unix.EPERM)
	if errnoRet != nil {
		errno = uint32(*errnoRet)
	}
	switch a {
	case specs.ActAllow:
		return unix.SECCOMP_RET_ALLOW, nil
	case specs.ActErrno:
		return unix.SECCOMP_RET_ERRNO | errno&unix.SECCOMP_RET_DATA, nil
	case specs.ActTrace:
		return unix.SECCOMP_RET_TRACE | errno&unix.SECCOMP_RET_DATA, nil
	case specs.ActKill, specs.ActKillThread:
		return unix.SECCOMP_RET_KILL_THREAD, nil
	case specs.ActKillProcess:
		return unix.SECCOMP_RET_KILL_PROCESS, nil
	case specs.ActTrap:
		return unix.SECCOMP_RET_TRAP, nil
	case specs.ActLog:
		return unix.SECCOMP_RET_LOG, nil
	}
	return 0, fmt.Errorf("compiling seccomp filter: action %s is not supported by the built-in runtime", a)
}

// seccompConditions splits a rule's argument comparisons into sets, any
// of which matches when all of its comparisons hold. Comparisons of
// distinct arguments form one set; repeated comparisons of one argument
// are alternatives, as runc treats them.
func seccompConditions(args []specs.LinuxSeccompArg) ([][]specs.LinuxSeccompArg, error) {
	seen := map[uint]bool{}
	repeated := false
	for _, a := range args {
		if a.Index > 5 {
			return nil, fmt.Errorf("compiling seccomp filter: argument index %d out of range", a.Index)
		}
		if _, ok := seccompJumps[a.Op]; !ok && a.Op != specs.OpMaskedEqual {
			return nil, fmt.Errorf("compiling seccomp filter: unknown comparison %s", a.Op)
		}
		repeated = repeated || seen[a.Index]
		seen[a.Index] = true
	}
	if !repeated {
		return [][]specs.LinuxSeccompArg{args}, nil
	}
	sets := make([][]specs.LinuxSeccompArg, len(args))
	for i, a := range args {
		sets[i] = []specs.LinuxSeccompArg{a}
	}
	return sets, nil
}

// seccompJumps are the comparisons of the low words; the high words are
// compared first, and decide unless equal.
var seccompJumps = map[specs.LinuxSeccompOperator]bpf.JumpTest{
	specs.OpEqualTo: bpf.JumpEqual, specs.OpNotEqual: bpf.JumpNotEqual,
	specs.OpLessThan: bpf.JumpLessThan, specs.OpLessEqual: bpf.JumpLessOrEqual,
	specs.OpGreaterThan: bpf.JumpGreaterThan, specs.OpGreaterEqual: bpf.JumpGreaterOrEqual,
}

// conditionSet returns instructions that return action when every
// comparison of set holds, and otherwise go on after their end. Arguments
// are 64-bit; classic BPF compares 32 bits at a time.
func conditionSet(set []specs.LinuxSeccompArg, action uint32) []bpf.Instruction {
	// Each comparison is built with skip counts relative to its own end;
	// failing ones are fixed up to reach the end of the set.
	const fail = 0xff
	var out []bpf.Instruction
	for _, a := range set {
		hi, lo := uint32(a.Value>>32), uint32(a.Value)
		ldHi, ldLo := argLoads(a.Index)
		var c []bpf.Instruction
		switch a.Op {
		case specs.OpMaskedEqual:
			vhi, vlo := uint32(a.ValueTwo>>32), uint32(a.ValueTwo)
			c = []bpf.Instruction{
				ldHi, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: hi},
				bpf.JumpIf{Cond: bpf.JumpEqual, Val: vhi, SkipFalse: fail},
				ldLo, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: lo},
				bpf.JumpIf{Cond: bpf.JumpEqual, Val: vlo, SkipFalse: fail},
			}
		case specs.OpEqualTo:
			c = []bpf.Instruction{
				ldHi, bpf.JumpIf{Cond: bpf.JumpEqual, Val: hi, SkipFalse: fail},
				ldLo, bpf.JumpIf{Cond: bpf.JumpEqual, Val: lo, SkipFalse: fail},
			}
		case specs.OpNotEqual:
			c = []bpf.Instruction{
				ldHi, bpf.JumpIf{Cond: bpf.JumpEqual, Val: hi, SkipFalse: 2},
				ldLo, bpf.JumpIf{Cond: bpf.JumpEqual, Val: lo, SkipTrue: fail},
			}
		default:
			// Greater or less: a different high word decides by itself
			// (true if it compares strictly the right way, else false).
			strict := map[specs.LinuxSeccompOperator]bpf.JumpTest{
				specs.OpLessThan: bpf.JumpLessThan, specs.OpLessEqual: bpf.JumpLessThan,
				specs.OpGreaterThan: bpf.JumpGreaterThan, specs.OpGreaterEqual: bpf.JumpGreaterThan,
			}[a.Op]
			c = []bpf.Instruction{
				ldHi, bpf.JumpIf{Cond: strict, Val: hi, SkipTrue: 3},
				bpf.JumpIf{Cond: bpf.JumpEqual, Val: hi, SkipFalse: fail},
				ldLo, bpf.JumpIf{Cond: seccompJumps[a.Op], Val: lo, SkipFalse: fail},
			}
		}
		out = append(out, c...)
	}
	out = append(out, bpf.RetConstant{Val: action})
	// A failing jump lands after the Ret.
	for i, ins := range out {
		if j, ok := ins.(bpf.JumpIf); ok {
			if j.SkipTrue == fail {
				j.SkipTrue = uint8(len(out) - i - 1)
			}
			if j.SkipFalse == fail {
				j.SkipFalse = uint8(len(out) - i - 1)
			}
			out[i] = j
		}
	}
	return out
}

// argLoads load the high and the low word of system call argument i.
func argLoads(i uint) (hi, lo bpf.LoadAbsolute) {
	off := uint32(16 + 8*i) // seccomp_data.args[i]
	hiOff, loOff := off+4, off
	if !littleEndian() {
		hiOff, loOff = off, off+4
	}
	return bpf.LoadAbsolute{Off: hiOff, Size: 4}, bpf.LoadAbsolute{Off: loOff, Size: 4}
}

func littleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}
