package upgrade

import "syscall"

// childProcAttr puts a server in its own process group (a Ctrl-C aimed at
// the test does not stop it behind the harness's back) and has the kernel
// SIGKILL it if the test process dies without cleaning up.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
