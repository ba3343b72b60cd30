//go:build !linux

package chaos

import "syscall"

// childProcAttr puts a server in its own process group, so a Ctrl-C aimed
// at the harness does not kill the nodes behind its back. Without Linux's
// Pdeathsig, servers outlive a harness that is itself SIGKILLed.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
