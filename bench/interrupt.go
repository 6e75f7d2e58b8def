package main

import (
	"errors"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/sipline/sipline/internal/procgroup"
)

// running is what a run has started or changed and undoes at its end: the
// servers, callees, sipps and phones, and the socket buffer setting. The
// processes run in process groups of their own (procgroup), where a
// terminal's ^C does not reach them, so an interrupted run undoes these
// itself (stopOnSignal); before, a run stopped by ^C, or by a closed pipe
// (`go run ./bench | head`), left its servers running.
//
// procs holds the processes from start to exit; once stopping is set,
// none is started.
var running = struct {
	sync.Mutex
	procs    map[*proc]struct{}
	stopping bool
	restore  func()
}{procs: map[*proc]struct{}{}}

var errInterrupted = errors.New("the run was interrupted")

// start starts p's command in a process group of its own and tracks it.
// The lock is held across the start, so a process is either among those
// stopOnSignal stops, or not started.
func start(p *proc) error {
	running.Lock()
	defer running.Unlock()
	if running.stopping {
		return errInterrupted
	}
	if err := procgroup.Start(p.cmd); err != nil {
		return err
	}
	running.procs[p] = struct{}{}
	return nil
}

// setRestore names what undoes the buffer setting, or nil once it is undone.
func setRestore(f func()) {
	running.Lock()
	running.restore = f
	running.Unlock()
}

func untrack(p *proc) {
	running.Lock()
	delete(running.procs, p)
	running.Unlock()
}

// stopOnSignal stops every process still running and undoes the buffer
// setting on SIGINT, SIGTERM, SIGHUP or SIGPIPE, then exits.
func stopOnSignal() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	go func() {
		s := <-sig
		// stderr may be the closed pipe; the message is for a terminal.
		os.Stderr.WriteString("bench: " + s.String() + ": stopping what it started\n")
		running.Lock()
		running.stopping = true
		procs := make([]*proc, 0, len(running.procs))
		for p := range running.procs {
			procs = append(procs, p)
		}
		restore := running.restore
		running.Unlock()
		var wg sync.WaitGroup
		for _, p := range procs {
			wg.Go(p.stop)
		}
		wg.Wait()
		if restore != nil {
			restore()
		}
		os.Exit(1)
	}()
}
