package childproc_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/shopfaas/shop/internal/childproc"
)

// ReadStat finds the command name and the fields after it when that name
// holds spaces and parentheses, as a process may name itself anything; the
// start time is when it started, as BootTicks counts.
func TestReadStat(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	odd := filepath.Join(t.TempDir(), "a) 1 2 (b")
	if err := os.WriteFile(odd, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(odd, "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	before, ok1 := childproc.BootTicks()
	exited, err := childproc.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	st, ok := childproc.ReadStat(pid)
	after, ok2 := childproc.BootTicks()
	uid, uidOK := childproc.UID(pid)
	pids, err := childproc.Processes()
	_ = cmd.Process.Kill()
	<-exited
	if want := (childproc.Stat{Comm: "a) 1 2 (b", State: st.State, PPID: os.Getpid(), PGID: pid, Start: st.Start}); !ok || st != want || st.State == "Z" {
		t.Errorf("ReadStat(%d) = %+v, %v; want %+v, a live state", pid, st, ok, want)
	}
	if !ok1 || !ok2 || st.Start < before || st.Start > after {
		t.Errorf("ReadStat(%d).Start = %d, want it between the BootTicks before and after the start: %d (%v), %d (%v)", pid, st.Start, before, ok1, after, ok2)
	}
	if !uidOK || uid != os.Getuid() {
		t.Errorf("UID(%d) = %d, %v; want %d", pid, uid, uidOK, os.Getuid())
	}
	if err != nil || !slices.Contains(pids, pid) || !slices.Contains(pids, os.Getpid()) {
		t.Errorf("Processes() = %d pids (%v), want %d and %d among them", len(pids), err, pid, os.Getpid())
	}
	if st, ok := childproc.ReadStat(pid); ok {
		t.Errorf("ReadStat of a reaped process = %+v, want false", st)
	}
}

// A process group is alive while a member runs, and not once the members
// left are zombies nobody has reaped yet, nor once they are reaped.
func TestGroupAlive(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	alive := childproc.GroupAlive(pid)
	_ = cmd.Process.Kill()
	// Not reaped yet: a zombie until Wait.
	for st, ok := childproc.ReadStat(pid); ok && st.State != "Z"; st, ok = childproc.ReadStat(pid) {
		time.Sleep(5 * time.Millisecond)
	}
	zombie := childproc.GroupAlive(pid)
	_ = cmd.Wait()
	if !alive {
		t.Error("GroupAlive of a group whose one member sleeps = false, want true")
	}
	if zombie {
		t.Error("GroupAlive of a group whose one member is a zombie = true, want false")
	}
	if childproc.GroupAlive(pid) {
		t.Error("GroupAlive of a group whose member is reaped = true, want false")
	}
}

// StartGroup's atExit runs while the leader that exited is still a zombie,
// not reaped: its pid, the group's id, cannot have been given to another
// process yet, so atExit may signal the group by number. atExit runs
// before the exit is reported.
func TestAGroupsAtExitRunsBeforeItsLeaderIsReaped(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	var (
		st    childproc.Stat
		seen  bool
		probe error
	)
	exited, err := childproc.StartGroup(cmd, func() {
		st, seen = childproc.ReadStat(cmd.Process.Pid)
		probe = syscall.Kill(-cmd.Process.Pid, 0)
	})
	if err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	_ = cmd.Process.Kill()
	<-exited
	if want := (childproc.Stat{Comm: "sleep", State: "Z", PPID: os.Getpid(), PGID: pid, Start: st.Start}); !seen || st != want {
		t.Errorf("ReadStat of the leader in atExit = %+v, %v; want %+v: exited, not yet reaped", st, seen, want)
	}
	if probe != nil {
		t.Errorf("signal 0 to the group in atExit: %v, want it delivered", probe)
	}
}
