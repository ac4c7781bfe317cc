package executor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/builder-project/builder/internal/userns"
	"golang.org/x/sys/unix"
)

// overlayFixedOptions keep the upperdir a self-contained diff.
var overlayFixedOptions = [][2]string{{"redirect_dir", "off"}, {"metacopy", "off"}, {"index", "off"}}

// userxattrFixedOptions are overlayFixedOptions for a rootless process
// (userns.Rootless), which mounts with userxattr: the kernel then keeps
// opaque markers as user.overlay.opaque, which root of a user namespace
// may set (the store unpacks layers the same way). userxattr refuses
// redirect_dir=off but takes "nofollow", which creates no redirects either.
var userxattrFixedOptions = [][2]string{{"redirect_dir", "nofollow"}, {"metacopy", "off"}, {"index", "off"}}

// fixedOptions returns the fixed options for this process.
func fixedOptions() [][2]string {
	if userns.Rootless() {
		return userxattrFixedOptions
	}
	return overlayFixedOptions
}

// mountOverlay mounts an overlay of lowers (topmost first), upper and work
// on target, in the caller's mount namespace. With upper empty the overlay
// is read-only (and needs two lowers or more). It uses the new mount API,
// which takes one lower directory per call and so has no length limit, and
// falls back to mount(2) on kernels without "lowerdir+" (before 6.8).
func mountOverlay(target string, lowers []string, upper, work string) error {
	return mountOverlayWith(target, lowers, upper, work, overlayOptions{})
}

// overlayOptions are mountOverlayWith's options.
type overlayOptions struct {
	legacy bool // use mount(2)
	nodev  bool // mount nodev
}

// mountOverlayWith is mountOverlay with options.
func mountOverlayWith(target string, lowers []string, upper, work string, o overlayOptions) error {
	if len(lowers) == 0 {
		return errors.New("mounting overlay: no lower directory")
	}
	var attr int
	var flags uintptr
	if o.nodev {
		attr, flags = unix.MOUNT_ATTR_NODEV, unix.MS_NODEV
	}
	err := errNoLowerdirPlus
	if !o.legacy {
		err = mountOverlayFsconfig(target, lowers, upper, work, attr)
	}
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, errNoLowerdirPlus) {
		return fmt.Errorf("mounting overlay on %s: %w", target, err)
	}
	if err := mountOverlayLegacy(target, lowers, upper, work, flags); err != nil {
		return fmt.Errorf("mounting overlay on %s: %w", target, err)
	}
	return nil
}

var errNoLowerdirPlus = errors.New(`kernel does not support "lowerdir+"`)

func mountOverlayFsconfig(target string, lowers []string, upper, work string, attr int) (err error) {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("opening overlay filesystem context: %w", err)
	}
	defer unix.Close(fd)
	defer func() {
		if err != nil {
			if log := fsLog(fd); log != "" {
				err = fmt.Errorf("%w (%s)", err, log)
			}
		}
	}()
	for i, l := range lowers {
		if err := unix.FsconfigSetString(fd, "lowerdir+", l); err != nil {
			if i == 0 && errors.Is(err, unix.EINVAL) {
				if strings.Contains(fsLog(fd), "lowerdir+") {
					return errNoLowerdirPlus
				}
			}
			return fmt.Errorf("setting lowerdir %s: %w", l, err)
		}
	}
	if userns.Rootless() {
		if err := unix.FsconfigSetFlag(fd, "userxattr"); err != nil {
			return fmt.Errorf("setting userxattr: %w", err)
		}
	}
	opts := fixedOptions()
	if upper != "" {
		opts = append([][2]string{{"upperdir", upper}, {"workdir", work}}, opts...)
	}
	for _, o := range opts {
		if err := unix.FsconfigSetString(fd, o[0], o[1]); err != nil {
			return fmt.Errorf("setting %s=%s: %w", o[0], o[1], err)
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fmt.Errorf("creating overlay: %w", err)
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, attr)
	if err != nil {
		return fmt.Errorf("creating overlay mount: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attaching overlay mount: %w", err)
	}
	return nil
}

// fsLog drains the messages the kernel queued on a filesystem context.
func fsLog(fd int) string {
	var msgs []string
	buf := make([]byte, 4096)
	for range 32 {
		n, err := unix.Read(fd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	return strings.Join(msgs, "; ")
}

// mountOverlayLegacy uses mount(2). Its options must fit in a page, so
// when absolute paths are too long it changes to the directory all of them
// share and passes relative paths.
func mountOverlayLegacy(target string, lowers []string, upper, work string, flags uintptr) error {
	dirs := append([]string(nil), lowers...)
	if upper != "" {
		dirs = append(dirs, upper, work)
	}
	for _, d := range dirs {
		if strings.ContainsAny(d, ",:\\") {
			return fmt.Errorf("overlay directory %q contains ',', ':' or '\\'", d)
		}
	}
	data := overlayData(lowers, upper, work)
	if len(data) < os.Getpagesize() {
		return unix.Mount("overlay", target, "overlay", flags, data)
	}
	common := commonDir(dirs)
	if common == "/" {
		return fmt.Errorf("overlay options are %d bytes, more than a page, and the directories share no parent", len(data))
	}
	rel := func(p string) string {
		if p == "" {
			return ""
		}
		r, _ := filepath.Rel(common, p)
		return r
	}
	var rl []string
	for _, l := range lowers {
		rl = append(rl, rel(l))
	}
	data = overlayData(rl, rel(upper), rel(work))
	if len(data) >= os.Getpagesize() {
		return fmt.Errorf("overlay options are %d bytes even with relative paths, more than a page", len(data))
	}
	absTarget, err := filepath.Abs(target)
	if err != nil {
		return err
	}
	wd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("getting working directory: %w", err)
	}
	if err := unix.Chdir(common); err != nil {
		return fmt.Errorf("changing to %s: %w", common, err)
	}
	defer unix.Chdir(wd)
	return unix.Mount("overlay", absTarget, "overlay", flags, data)
}

func overlayData(lowers []string, upper, work string) string {
	var b strings.Builder
	b.WriteString("lowerdir=" + strings.Join(lowers, ":"))
	if upper != "" {
		b.WriteString(",upperdir=" + upper + ",workdir=" + work)
	}
	if userns.Rootless() {
		b.WriteString(",userxattr")
	}
	for _, o := range fixedOptions() {
		b.WriteString("," + o[0] + "=" + o[1])
	}
	return b.String()
}

// commonDir returns the deepest directory containing all of the absolute
// paths dirs.
func commonDir(dirs []string) string {
	common := filepath.Dir(filepath.Clean(dirs[0]))
	for _, d := range dirs[1:] {
		d = filepath.Clean(d)
		for common != "/" && !strings.HasPrefix(d, common+"/") {
			common = filepath.Dir(common)
		}
	}
	return common
}
