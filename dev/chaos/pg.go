package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
)

// cluster is a private PostgreSQL cluster: initdb into a directory of its
// own, served on its own port on 127.0.0.1 with trust authentication, so
// restarting it disturbs nobody. As root, the server runs as the postgres
// user (initdb refuses root).
type cluster struct {
	bin, dir string
	port     int
	asUser   bool
}

func pgBinDir() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Strings(dirs)
	if len(dirs) == 0 {
		return "", errors.New("chaos: PostgreSQL server binaries not found (apt-get install postgresql)")
	}
	return dirs[len(dirs)-1], nil
}

func startCluster(ctx context.Context, dir string, port int) (*cluster, error) {
	bin, err := pgBinDir()
	if err != nil {
		return nil, err
	}
	c := &cluster{bin: bin, dir: dir, port: port, asUser: os.Geteuid() == 0}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if c.asUser {
		if out, err := exec.Command("chown", "-R", "postgres:postgres", dir).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("chown %s: %v: %s", dir, err, out)
		}
	}
	if err := c.run(ctx, "initdb", "-D", filepath.Join(dir, "data"), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"); err != nil {
		return nil, err
	}
	return c, c.ctl(ctx, "start")
}

// URL is the connection URL of database name.
func (c *cluster) URL(name string) string {
	return "postgres://postgres@127.0.0.1:" + strconv.Itoa(c.port) + "/" + name + "?sslmode=disable"
}

func (c *cluster) run(ctx context.Context, prog string, args ...string) error {
	path := filepath.Join(c.bin, prog)
	var cmd *exec.Cmd
	if c.asUser {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = c.dir
	// Its own process group: a Ctrl-C of the chaos run must not reach the
	// server before the run stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %v: %w\n%s", prog, args, err, out)
	}
	return nil
}

func (c *cluster) ctl(ctx context.Context, action string, extra ...string) error {
	args := []string{action, "-D", filepath.Join(c.dir, "data"), "-w", "-t", "120", "-l", filepath.Join(c.dir, "server.log")}
	if action != "stop" {
		args = append(args, "-o", "-p "+strconv.Itoa(c.port)+" -k "+c.dir+" -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=on")
	}
	return c.run(ctx, "pg_ctl", append(args, extra...)...)
}

// Restart is `pg_ctl restart -m fast`: sessions are cut, transactions in
// flight roll back, and the server writes a checkpoint before it stops.
// With crash, it is `-m immediate`, which stops every process at once as a
// crash of its processes would (not of the host): no checkpoint, the WAL
// still in PostgreSQL's buffers is lost (asynchronous commits not yet
// written: the relay's marks, the simulator's ledger), and the start
// replays the WAL.
func (c *cluster) Restart(ctx context.Context, crash bool) error {
	mode := "fast"
	if crash {
		mode = "immediate"
	}
	return c.ctl(ctx, "restart", "-m", mode)
}

// Close stops the server and removes its directory.
func (c *cluster) Close() error {
	err := c.ctl(context.Background(), "stop", "-m", "fast")
	_ = os.RemoveAll(c.dir)
	return err
}
