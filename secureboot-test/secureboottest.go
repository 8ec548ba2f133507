// Package secureboottest boots EFI images under real UEFI firmware with
// Secure Boot on and only the test's own certificates enrolled, and reports
// the firmware's verdict. Verifiers such as sbverify check a signature's
// structure; the firmware is the judge that matters.
//
// It drives QEMU without KVM: OVMF on qemu-system-x86_64 (q35 with SMM) for
// AMD64 and AAVMF on qemu-system-aarch64 (virt, Cortex-A57) for ARM64, with
// no network device. A boot takes about 4-7 s on an idle machine.
//
//	if err := secureboottest.Available(secureboottest.AMD64); err != nil {
//		t.Skip(err)
//	}
//	vars, err := secureboottest.Vars(secureboottest.AMD64, secureboottest.Keys{PK: ca, KEK: ca, DB: []*x509.Certificate{ca}})
//	...
//	r, err := secureboottest.Boot(ctx, secureboottest.AMD64, vars, "signed-grub.efi", "Welcome to GRUB!")
//	if err != nil || r.Verdict != secureboottest.Accepted || !r.Saw("Welcome to GRUB!") {
//		t.Fatalf("verdict %v, err %v\n%s", r.Verdict, err, r.Log)
//	}
//
// Vars writes an edk2 variable store offline: it takes the distribution's
// empty template (OVMF_VARS_4M.fd; on Arm64 the store headers of
// AAVMF_VARS.ms.fd, whose Microsoft keys it drops) and writes PK, KEK, db,
// SecureBootEnable and CustomMode into it. With a PK the firmware starts in
// user mode with Secure Boot on; without one it is in setup mode and boots
// anything, which makes a useful control.
//
// Boot makes a FAT boot disk (mkfs.vfat -C and mtools, no mounting) with the
// image as the removable-media loader \EFI\BOOT\BOOTX64.EFI or BOOTAA64.EFI
// (BootFiles puts several files there, say shim beside GRUB), runs QEMU on a
// private copy of the variable store, and reads the serial console until
// the firmware's boot manager reports the verdict:
//
//   - Accepted: it started the image from the disk; printed only after the
//     signature check passed.
//   - Refused: it failed to load the image with Access Denied or Security
//     Violation; the image is not signed by a key in db.
//   - LoadError, Unsupported: it could not load the image at all (a damaged
//     image, another architecture); not a verdict on the signature.
//   - NoVerdict: none of these before QEMU exited or time ran out.
//
// After Accepted, Boot lets the payload run until one of the strings it was
// asked to wait for appears, then kills QEMU and removes its files. What
// Debian's images print: GRUB "Welcome to GRUB!"; a Linux kernel's EFI
// stub "EFI stub: UEFI Secure Boot is enabled."; shim, when the GRUB beside
// it is not signed by a key it trusts (db or its built-in vendor
// certificate), "Verification failed: (0x1A) Security Violation". Pass the
// alternatives you expect and check them with Result.Saw. A boot is bounded
// by ctx's deadline, or by DefaultTimeout when ctx has none; Boot never
// leaves QEMU running.
//
// Firmware is looked for in Debian's and Fedora's locations; Available
// reports what is missing (scripts/install-deps.sh installs it on Debian).
// The package is for Linux hosts.
package secureboottest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Arch selects the firmware and QEMU system emulator, by Go's name for the
// architecture.
type Arch string

// The supported architectures.
const (
	AMD64 Arch = "amd64" // OVMF on qemu-system-x86_64
	ARM64 Arch = "arm64" // AAVMF on qemu-system-aarch64
)

// Loader returns the removable-media boot path on the ESP for arch:
// EFI/BOOT/BOOTX64.EFI or EFI/BOOT/BOOTAA64.EFI.
func (a Arch) Loader() string {
	switch a {
	case AMD64:
		return "EFI/BOOT/BOOTX64.EFI"
	case ARM64:
		return "EFI/BOOT/BOOTAA64.EFI"
	}
	return ""
}

// DefaultTimeout bounds one attempt at a boot, unless ctx's deadline is
// nearer. A boot needs 4-7 s of CPU on an idle machine; on a busy one QEMU
// waits for the CPU and the same boot takes minutes of wall time (measured
// here: verdicts after 78 s with other tests and busy loops sharing two
// cores). So the time counts as spent only while QEMU had a fair share of
// the CPU: an attempt ends when DefaultTimeout has passed and QEMU has used
// at least a third of it in CPU time, or at the latest after four times
// DefaultTimeout. An attempt that ends so without a verdict is made once
// more on fresh copies of the disk and variable store (Result.Retried).
const DefaultTimeout = 90 * time.Second

// attemptTimeout is DefaultTimeout, shortened by tests of the retry.
var attemptTimeout = DefaultTimeout

// firmware is one usable firmware build and the QEMU to run it.
type firmware struct {
	qemu         string   // path of the system emulator
	code         string   // read-only firmware code
	varsTemplate string   // formatted variable store template
	args         []string // machine arguments before the flash drives
	disk         string   // -device for the drive "esp"
}

// candidate pairs of firmware code and matching variable store template,
// in order of preference. A code file and a template belong together: the
// store must come from the same build. Debian 12's are the ones tried; the
// Fedora paths follow its edk2 packaging. (Debian's 2 MiB
// OVMF_CODE.secboot.fd prints nothing on the serial console in this setup,
// so it is not listed.)
var candidates = map[Arch][][2]string{
	AMD64: {
		{"/usr/share/OVMF/OVMF_CODE_4M.secboot.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"}, // Debian, Ubuntu
		{"/usr/share/edk2/ovmf/OVMF_CODE.secboot.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"},
		{"/usr/share/edk2/ovmf-4m/OVMF_CODE.secboot.fd", "/usr/share/edk2/ovmf-4m/OVMF_VARS.fd"},
	},
	ARM64: {
		// Debian: AAVMF_VARS.fd is all zeros, so the store headers come
		// from the Microsoft-key template, whose variables Vars drops.
		{"/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.ms.fd"},
		{"/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw", "/usr/share/edk2/aarch64/vars-template-pflash.raw"},
	},
}

var (
	emulators = map[Arch]string{AMD64: "qemu-system-x86_64", ARM64: "qemu-system-aarch64"}
	machines  = map[Arch][]string{
		AMD64: {"-machine", "q35,smm=on,accel=tcg", "-global", "driver=cfi.pflash01,property=secure,value=on"},
		ARM64: {"-machine", "virt,accel=tcg", "-cpu", "cortex-a57"},
	}
	disks = map[Arch]string{AMD64: "ide-hd,drive=esp,bus=ide.0", ARM64: "virtio-blk-pci,drive=esp"}
)

// Available reports whether arch's firmware can be booted here: nil if
// QEMU, a Secure Boot capable firmware with a formatted variable store
// template, mkfs.vfat and mtools are all installed, otherwise an error
// naming what is missing.
func Available(arch Arch) error {
	fw, err := find(arch)
	if err != nil {
		return err
	}
	tmpl, err := os.ReadFile(fw.varsTemplate)
	if err != nil {
		return err
	}
	if _, _, err := store(tmpl); err != nil {
		return fmt.Errorf("%s: %w", fw.varsTemplate, err)
	}
	for _, tool := range []string{"mkfs.vfat", "mmd", "mcopy"} {
		if _, err := lookTool(tool); err != nil {
			return fmt.Errorf("%v (install dosfstools and mtools)", err)
		}
	}
	return nil
}

func find(arch Arch) (firmware, error) {
	cands, ok := candidates[arch]
	if !ok {
		return firmware{}, fmt.Errorf("secureboottest: unknown architecture %q (want %q or %q)", arch, AMD64, ARM64)
	}
	qemu, err := exec.LookPath(emulators[arch])
	if err != nil {
		return firmware{}, fmt.Errorf("secureboottest: %s not found (install qemu-system-%s)", emulators[arch], map[Arch]string{AMD64: "x86", ARM64: "arm"}[arch])
	}
	var tried []string
	for _, c := range cands {
		if regular(c[0]) && regular(c[1]) {
			return firmware{qemu: qemu, code: c[0], varsTemplate: c[1], args: machines[arch], disk: disks[arch]}, nil
		}
		tried = append(tried, c[0]+" with "+c[1])
	}
	pkg := map[Arch]string{AMD64: "ovmf", ARM64: "qemu-efi-aarch64"}[arch]
	return firmware{}, fmt.Errorf("secureboottest: no %s Secure Boot firmware (install %s); looked for %s", arch, pkg, strings.Join(tried, "; "))
}

func regular(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// lookTool finds a program on PATH or in the sbin directories, which are
// not on an ordinary user's PATH on Debian (mkfs.vfat lives there).
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		if p := filepath.Join(dir, name); regular(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("secureboottest: %s not found", name)
}

// Verdict is what the firmware made of the image.
type Verdict int

// The verdicts, read from the firmware's boot manager messages.
const (
	NoVerdict   Verdict = iota // no verdict before QEMU exited or time ran out
	Accepted                   // started: the signature check passed
	Refused                    // Access Denied or Security Violation
	LoadError                  // Load Error: not a loadable image
	Unsupported                // Unsupported: typically the wrong architecture
)

func (v Verdict) String() string {
	switch v {
	case NoVerdict:
		return "no verdict"
	case Accepted:
		return "accepted"
	case Refused:
		return "refused"
	case LoadError:
		return "load error"
	case Unsupported:
		return "unsupported"
	}
	return "Verdict(" + strconv.Itoa(int(v)) + ")"
}

// Result is the outcome of a boot.
type Result struct {
	Verdict Verdict
	// Status is the firmware's text for a failed load, such as "Access
	// Denied"; empty otherwise. A failure with any status other than those
	// of Refused, LoadError and Unsupported ends the boot as NoVerdict.
	Status string
	// Log is the serial console output with terminal escape sequences
	// removed (a cursor movement becomes a line break), blank lines
	// dropped, and bytes above 0x7F read as code page 437 box drawing.
	Log string
	// Elapsed is the time from starting QEMU to the verdict, or to the end
	// of the boot when there was none.
	Elapsed time.Duration
	// Retried is true when a first attempt ended in DefaultTimeout without
	// a verdict and this result is the second attempt's; FirstLog is the
	// first attempt's serial log, for the report.
	Retried  bool
	FirstLog string
}

// Saw reports whether s appeared in the serial log.
func (r Result) Saw(s string) bool { return strings.Contains(r.Log, s) }

// Boot boots efiImage, a file on this machine, as arch's removable-media
// loader under Secure Boot firmware with the variable store vars (from
// Vars; Boot copies it, so it can be reused). It returns once the verdict
// is in and, if it is Accepted and waitFor is not empty, once any string in
// waitFor has appeared in the log, or QEMU has exited. The error is for a
// boot that could not be run (missing tools, QEMU failing to start) and for
// ctx ending; a boot that ran out of DefaultTimeout returns the result so
// far and no error: NoVerdict, or Accepted without the awaited string.
func Boot(ctx context.Context, arch Arch, vars []byte, efiImage string, waitFor ...string) (Result, error) {
	return BootFiles(ctx, arch, vars, map[string]string{arch.Loader(): efiImage}, waitFor...)
}

// BootFiles is Boot with a boot disk holding files: keys are paths on the
// ESP ("EFI/BOOT/grubx64.efi"; FAT ignores case), values files on this
// machine. The firmware starts arch.Loader(), which files must contain.
func BootFiles(ctx context.Context, arch Arch, vars []byte, files map[string]string, waitFor ...string) (Result, error) {
	fw, err := find(arch)
	if err != nil {
		return Result{}, err
	}
	loader := false
	for d := range files {
		loader = loader || strings.EqualFold(espPath(d), arch.Loader())
	}
	if !loader {
		return Result{}, fmt.Errorf("secureboottest: no %s among the files to boot", arch.Loader())
	}
	if fi, err := os.Stat(fw.varsTemplate); err != nil || fi.Size() != int64(len(vars)) {
		return Result{}, fmt.Errorf("secureboottest: the variable store is %d bytes, not the size of %s (use Vars(%q, ...))", len(vars), fw.varsTemplate, arch)
	}
	if _, _, err := store(vars); err != nil {
		return Result{}, fmt.Errorf("secureboottest: bad variable store: %w", err)
	}
	dir, err := os.MkdirTemp("", "signet-secureboot-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	esp := filepath.Join(dir, "esp.img")
	if err := makeESP(ctx, esp, files); err != nil {
		return Result{}, err
	}
	varsFile := filepath.Join(dir, "vars.fd")
	release, err := acquireSlot(ctx)
	if err != nil {
		return Result{}, err
	}
	defer release()
	var first Result
	for attempt := 1; ; attempt++ {
		// The firmware writes to its variable store, and could to the
		// ESP: a second attempt starts from the same bytes as the first.
		if err := os.WriteFile(varsFile, vars, 0o600); err != nil {
			return Result{}, err
		}
		if attempt > 1 {
			if err := os.Remove(esp); err != nil {
				return Result{}, err
			}
			if err := makeESP(ctx, esp, files); err != nil {
				return Result{}, err
			}
		}
		res, timedOut, err := run(ctx, fw, varsFile, esp, waitFor)
		if attempt > 1 {
			res.Retried, res.FirstLog = true, first.Log
		}
		if err != nil || !timedOut || attempt > 1 || ctx.Err() != nil {
			return res, err
		}
		first = res
	}
}

// makeESP writes a FAT image holding files, without mounting it.
func makeESP(ctx context.Context, img string, files map[string]string) error {
	mkfs, err := lookTool("mkfs.vfat")
	if err != nil {
		return err
	}
	var total int64
	for _, src := range files {
		fi, err := os.Stat(src)
		if err != nil {
			return fmt.Errorf("secureboottest: %w", err)
		}
		total += fi.Size()
	}
	kib := max(64<<10, total/1024*5/4+16<<10) // room for FAT overhead
	if err := tool(ctx, mkfs, "-C", img, strconv.FormatInt(kib, 10)); err != nil {
		return err
	}
	dests := make([]string, 0, len(files))
	for d := range files {
		dests = append(dests, d)
	}
	sort.Strings(dests)
	made := map[string]bool{".": true, "/": true}
	for _, d := range dests {
		d = espPath(d)
		var parents []string
		for p := path.Dir(d); !made[strings.ToLower(p)]; p = path.Dir(p) {
			parents = append(parents, p)
			made[strings.ToLower(p)] = true
		}
		for i := len(parents) - 1; i >= 0; i-- {
			if err := tool(ctx, "mmd", "-i", img, "::/"+parents[i]); err != nil {
				return err
			}
		}
	}
	for _, d := range dests {
		dst := "::/" + espPath(d)
		if err := tool(ctx, "mcopy", "-i", img, files[d], dst); err != nil {
			return err
		}
	}
	return nil
}

// espPath normalises a path on the ESP: slashes, no leading one.
func espPath(p string) string {
	return path.Clean(strings.TrimLeft(strings.ReplaceAll(p, `\`, "/"), "/"))
}

func tool(ctx context.Context, name string, args ...string) error {
	p, err := lookTool(name)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, p, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // ended by the caller, not a tool failure
		}
		return fmt.Errorf("secureboottest: %s %s: %v\n%s", filepath.Base(p), strings.Join(args, " "), err, out)
	}
	return nil
}

// console collects QEMU's serial output and signals each write.
type console struct {
	mu     sync.Mutex
	buf    []byte
	notify chan struct{}
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.buf = append(c.buf, p...)
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
	return len(p), nil
}

// text returns the cleaned output so far, and the part of it made of
// complete lines, which is what verdicts are read from: a status can arrive
// in two writes.
func (c *console) text() (all, complete string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := bytes.LastIndexAny(c.buf, "\r\n") + 1
	return clean(c.buf), clean(c.buf[:n])
}

// run makes one attempt at a boot. timedOut reports that the attempt ran
// out of DefaultTimeout (not ctx) before it was done.
func run(ctx context.Context, fw firmware, varsFile, esp string, waitFor []string) (res Result, timedOut bool, err error) {
	args := append([]string{}, fw.args...)
	args = append(args,
		"-m", "512",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+fw.code,
		"-drive", "if=pflash,format=raw,unit=1,file="+varsFile,
		"-drive", "if=none,id=esp,format=raw,file="+esp,
		"-device", fw.disk,
		"-nodefaults", "-nic", "none", "-display", "none", "-monitor", "none",
		"-serial", "stdio", "-no-reboot")
	con := &console{notify: make(chan struct{}, 1)}
	var stderr bytes.Buffer
	cmd := exec.Command(fw.qemu, args...)
	cmd.Stdout = con
	cmd.Stderr = &stderr
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = 5 * time.Second

	timeout := attemptTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = time.Until(d)
	}
	// The CPU rule of DefaultTimeout applies only to the attempt's own
	// time, not to ctx's deadline.
	hardStop := 4 * timeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < hardStop {
		hardStop = time.Until(d)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Result{}, false, fmt.Errorf("secureboottest: starting %s: %w", fw.qemu, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	finish := func() {
		res.Log, _ = con.text()
		if res.Verdict == NoVerdict {
			res.Elapsed = time.Since(start)
		}
	}
	stop := func() {
		cmd.Process.Kill()
		<-exited
		finish()
	}
	for {
		select {
		case <-ctx.Done():
			stop()
			return res, false, ctx.Err()
		case <-timer.C:
			if cpu, ok := cpuTime(cmd.Process.Pid); ok && cpu < timeout/3 && time.Since(start) < hardStop {
				// Starved rather than stuck: look again later.
				timer.Reset(min(timeout/3-cpu+time.Second, hardStop-time.Since(start)))
				continue
			}
			stop()
			if ctx.Err() != nil {
				return res, false, ctx.Err()
			}
			return res, true, nil
		case err := <-exited:
			finish()
			if res.Verdict == NoVerdict && res.Status == "" {
				res.Verdict, res.Status = verdict(res.Log)
			}
			if err != nil && res.Verdict == NoVerdict {
				return res, false, fmt.Errorf("secureboottest: %s: %v\n%s", filepath.Base(fw.qemu), err, bytes.TrimSpace(stderr.Bytes()))
			}
			return res, false, nil
		case <-con.notify:
			log, lines := con.text()
			if res.Verdict == NoVerdict {
				res.Verdict, res.Status = verdict(lines)
				if res.Verdict == NoVerdict && res.Status == "" {
					continue
				}
				res.Elapsed = time.Since(start)
			}
			if res.Verdict == Accepted && len(waitFor) > 0 && !sawAny(log, waitFor) {
				continue
			}
			stop()
			return res, false, nil
		}
	}
}

func sawAny(log string, want []string) bool {
	for _, s := range want {
		if strings.Contains(log, s) {
			return true
		}
	}
	return false
}

// The boot manager's messages about a boot option (edk2 BdsDxe):
//
//	BdsDxe: loading Boot0001 "UEFI QEMU HARDDISK QM00001 " from PciRoot(0x0)/Pci(0x1F,0x2)/Sata(0x0,0xFFFF,0x0)
//	BdsDxe: starting Boot0001 "UEFI QEMU HARDDISK QM00001 " from PciRoot(0x0)/Pci(0x1F,0x2)/Sata(0x0,0xFFFF,0x0)
//	BdsDxe: failed to load Boot0001 "UEFI QEMU HARDDISK QM00001 " from PciRoot(0x0)/Pci(0x1F,0x2)/Sata(0x0,0xFFFF,0x0): Access Denied
//
// Options whose device path is in a firmware volume (Fv(...): the setup
// menu, a built-in shell) are the firmware's own, not the disk.
var bdsLine = regexp.MustCompile(`BdsDxe: (loading|starting|failed to load) (Boot[0-9A-Fa-f]{4}) "[^"]*"(?: from (\S+?))?(?:: (.+?))?\s*$`)

// verdict reads the first verdict about a boot option from the disk out of
// a cleaned log.
func verdict(log string) (Verdict, string) {
	paths := map[string]string{}
	for line := range strings.Lines(log) {
		m := bdsLine.FindStringSubmatch(strings.TrimRight(line, "\n"))
		if m == nil {
			continue
		}
		what, opt, devpath, status := m[1], m[2], m[3], m[4]
		if devpath != "" {
			paths[opt] = devpath
		} else {
			devpath = paths[opt]
		}
		if strings.HasPrefix(devpath, "Fv(") {
			continue
		}
		switch what {
		case "starting":
			return Accepted, ""
		case "failed to load":
			switch status {
			case "Access Denied", "Security Violation":
				return Refused, status
			case "Load Error":
				return LoadError, status
			case "Unsupported":
				return Unsupported, status
			}
			return NoVerdict, status
		}
	}
	return NoVerdict, ""
}

// clean removes terminal escape sequences and control characters from raw
// console output, turning cursor movements and carriage returns into line
// breaks, and drops blank lines. The firmware's serial terminal is PC-ANSI
// on OVMF, so bytes above 0x7F are code page 437 (shim draws its error box
// with them); they become ASCII.
func clean(raw []byte) string {
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == 0x1b && i+1 < len(raw) && raw[i+1] == '[': // CSI
			j := i + 2
			for j < len(raw) && raw[j] >= 0x20 && raw[j] <= 0x3f {
				j++
			}
			if j < len(raw) && (raw[j] == 'H' || raw[j] == 'f' || raw[j] == 'J') {
				b.WriteByte('\n')
			}
			i = j
		case c == 0x1b && i+1 < len(raw) && raw[i+1] == ']': // OSC, to BEL or ST
			j := i + 2
			for j < len(raw) && raw[j] != 0x07 && !(raw[j] == 0x1b && j+1 < len(raw) && raw[j+1] == '\\') {
				j++
			}
			if j < len(raw) && raw[j] == 0x1b {
				j++
			}
			i = j
		case c == 0x1b: // other escapes: intermediates, then one final byte
			j := i + 1
			for j < len(raw) && raw[j] >= 0x20 && raw[j] <= 0x2f {
				j++
			}
			i = j
		case c == '\r' || c == '\n':
			b.WriteByte('\n')
		case c >= 0x80:
			b.WriteByte(cp437(c))
		case c == '\t' || c >= 0x20 && c != 0x7f:
			b.WriteByte(c)
		}
	}
	var out strings.Builder
	for line := range strings.Lines(b.String()) {
		line = strings.TrimRight(line, " \t\n")
		if strings.TrimSpace(line) != "" {
			out.WriteString(line)
			out.WriteByte('\n')
		}
	}
	return out.String()
}

// cp437 approximates a code page 437 byte in ASCII: box-drawing lines and
// corners as | - +, shades and blocks as #, anything else as ?.
func cp437(c byte) byte {
	switch {
	case c == 0xb3 || c == 0xba:
		return '|'
	case c == 0xc4 || c == 0xcd:
		return '-'
	case c >= 0xb4 && c <= 0xda:
		return '+'
	case c >= 0xb0 && c <= 0xb2 || c >= 0xdb && c <= 0xdf:
		return '#'
	}
	return '?'
}
