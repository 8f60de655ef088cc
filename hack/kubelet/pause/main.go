// Minimal pod sandbox ("pause") process for a locally built pause image: no registry is
// reachable here, so registry.k8s.io/pause cannot be pulled. It sleeps as PID 1 of the pod,
// exits on SIGINT/SIGTERM and reaps zombies (the job of the upstream pause binary).
// Build: CGO_ENABLED=0 go build -ldflags '-s -w' -o pause hack/kubelet/pause/main.go
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s == syscall.SIGCHLD {
			for {
				var ws syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
