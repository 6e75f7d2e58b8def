// Package procgroup runs a command in a process group of its own and
// stops the whole group, so that its children (Kamailio's workers) go
// with it. Tests and the benchmark stop only what they started, by PID.
package procgroup

import (
	"os/exec"
	"syscall"
	"time"
)

// Start starts cmd as the leader of a new process group.
func Start(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd.Start()
}

// Stop sends SIGTERM to cmd's group and waits up to grace for done, which
// closes when cmd has exited; then it kills what is left of the group and
// waits for done.
func Stop(cmd *exec.Cmd, done <-chan struct{}, grace time.Duration) {
	pgid := -cmd.Process.Pid
	select {
	case <-done:
	default:
		_ = syscall.Kill(pgid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(grace):
		}
	}
	_ = syscall.Kill(pgid, syscall.SIGKILL)
	<-done
}
