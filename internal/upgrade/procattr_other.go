//go:build !linux

package upgrade

import "syscall"

// childProcAttr puts a server in its own process group; other systems have
// no parent-death signal, so a killed test may leave servers behind.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
