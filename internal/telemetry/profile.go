package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
)

// CPUProfilePath is the file a process called name writes its CPU profile to
// when profiling was asked for: dir/<name>.<pid>.pprof when dir is set and
// chosen (comma-separated names) is empty or names it, "" otherwise. dir and
// chosen are the PPROF_CPU_DIR and PPROF_FUNCTIONS settings.
func CPUProfilePath(dir, chosen, name string) string {
	if dir == "" || (chosen != "" && !slices.Contains(strings.Split(chosen, ","), name)) {
		return ""
	}
	return filepath.Join(dir, fmt.Sprintf("%s.%d.pprof", name, os.Getpid()))
}

// startCPUProfile starts the CPU profiler (creating path's directory); stop
// writes the profile to path. Nothing is listened on.
func startCPUProfile(path string) (stop func() error, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

// ProfileCPUUntil profiles the process to path (when not empty) and writes the
// profile as soon as ctx ends, before any drain a supervisor may cut short;
// the returned stop (safe to call again, meant to be deferred) writes it too.
// With path empty it does nothing.
func ProfileCPUUntil(ctx context.Context, path string, log *slog.Logger) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	write, err := startCPUProfile(path)
	if err != nil {
		return nil, err
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			if err := write(); err != nil {
				log.Error("cpu profile", "err", err)
			}
		})
	}
	context.AfterFunc(ctx, stop)
	log.Info("writing a CPU profile at shutdown", "file", path)
	return stop, nil
}
