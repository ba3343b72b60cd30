package chaos

import "syscall"

// childProcAttr puts a server in its own process group, so a Ctrl-C aimed
// at the harness does not kill the nodes behind its back (the harness
// stops them itself), and asks the kernel to SIGKILL it if the harness
// dies without cleaning up (e.g. a test binary killed on timeout).
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
