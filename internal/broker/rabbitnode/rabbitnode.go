// Package rabbitnode runs a private RabbitMQ node for tests and the chaos
// suite: its own Erlang node name, AMQP and distribution ports on 127.0.0.1,
// data, log and cookie in a directory of its own and no plugins (but
// rabbitmq_prometheus when asked for), so stopping, restarting, killing it or
// raising its alarms disturbs nobody else on the machine. On Linux a node
// dies with the process that started it, even one killed before its Close.
// The processes the node's Erlang VM starts (erl_child_setup, port programs
// such as inet_gethost) each set up a session of their own, out of reach of
// any signal to the VM's process group; they exit on their own once the VM
// has exited, even killed alone (TestACrashedNodeLeavesNoProcessBehind).
//
// Ports are chosen below the kernel's ephemeral range (32768 and up on
// Linux): a listener on an ephemeral port can find its port taken by some
// outgoing connection's local end, and RabbitMQ then fails to start with
// eaddrinuse.
package rabbitnode

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopfaas/shop/internal/childproc"
)

// Options configure a node. Zero values take the defaults.
type Options struct {
	// Dir holds the node's data, logs and cookie (default: a new temporary
	// directory, removed by Close).
	Dir string
	// Port is the AMQP port on 127.0.0.1 and DistPort the Erlang distribution
	// port (default: free ports between 20000 and 32000).
	Port, DistPort int
	// PrometheusPort, when not 0, enables RabbitMQ's rabbitmq_prometheus
	// plugin on 127.0.0.1:PrometheusPort (/metrics, /metrics/detailed), the
	// endpoint monitoring/prometheus.yml scrapes; 0 runs no plugin.
	PrometheusPort int
	// BinDir holds rabbitmq-server and rabbitmqctl (default
	// /usr/lib/rabbitmq/bin, where Debian's package puts the scripts that run
	// as the calling user, else $PATH).
	BinDir string
	// StartTimeout bounds each start (default 3 min: a loaded 2-core machine
	// boots a node in 15-60 s).
	StartTimeout time.Duration
	// Log receives the node's console output (default: Dir/console.log).
	Log *os.File
}

// Node is a running private RabbitMQ node.
type Node struct {
	opts    Options
	name    string
	tempDir bool
	console *os.File

	mu  sync.Mutex
	run *run // nil when the VM is not running
}

// run is one start of the node: its Erlang VM.
type run struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the VM has exited and been reaped
}

// Start prepares the node's directory and boots the node, returning once it
// accepts AMQP connections.
func Start(ctx context.Context, opts Options) (*Node, error) {
	n := &Node{opts: opts}
	if n.opts.Dir == "" {
		d, err := os.MkdirTemp("", "shop-rabbit-")
		if err != nil {
			return nil, err
		}
		n.opts.Dir, n.tempDir = d, true
	}
	if n.opts.BinDir == "" {
		n.opts.BinDir = "/usr/lib/rabbitmq/bin"
		if _, err := os.Stat(filepath.Join(n.opts.BinDir, "rabbitmq-server")); err != nil {
			p, err := exec.LookPath("rabbitmq-server")
			if err != nil {
				return nil, errors.New("rabbitnode: rabbitmq-server not found (apt-get install rabbitmq-server)")
			}
			n.opts.BinDir = filepath.Dir(p)
		}
	}
	if n.opts.StartTimeout <= 0 {
		n.opts.StartTimeout = 3 * time.Minute
	}
	var err error
	if n.opts.Port == 0 {
		if n.opts.Port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	if n.opts.DistPort == 0 {
		for n.opts.DistPort == 0 || n.opts.DistPort == n.opts.Port {
			if n.opts.DistPort, err = FreePort(); err != nil {
				return nil, err
			}
		}
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	n.name = "shop-" + hex.EncodeToString(b) + "@localhost"
	if err := n.prepare(); err != nil {
		return nil, err
	}
	if err := n.Start(ctx); err != nil {
		_ = n.Close()
		return nil, err
	}
	return n, nil
}

// FreePort returns a TCP port between 20000 and 32000 that is free on
// 127.0.0.1 right now.
func FreePort() (int, error) {
	for range 200 {
		b := make([]byte, 2)
		_, _ = rand.Read(b)
		p := 20000 + (int(b[0])<<8|int(b[1]))%12000
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		_ = l.Close()
		return p, nil
	}
	return 0, errors.New("rabbitnode: no free port between 20000 and 32000")
}

func (n *Node) prepare() error {
	d := n.opts.Dir
	plugins := "[].\n"
	conf := "listeners.tcp.1 = 127.0.0.1:" + strconv.Itoa(n.opts.Port) + "\n" +
		"loopback_users = none\n" +
		"log.console = true\nlog.file = false\n"
	if n.opts.PrometheusPort != 0 {
		plugins = "[rabbitmq_prometheus].\n"
		conf += "prometheus.tcp.ip = 127.0.0.1\nprometheus.tcp.port = " + strconv.Itoa(n.opts.PrometheusPort) + "\n"
	}
	files := map[string]string{"enabled_plugins": plugins, "rabbitmq.conf": conf}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(d, name), []byte(content), 0o600); err != nil {
			return err
		}
	}
	cookie := filepath.Join(d, ".erlang.cookie")
	if _, err := os.Stat(cookie); err != nil {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		if err := os.WriteFile(cookie, []byte(hex.EncodeToString(b)), 0o400); err != nil {
			return err
		}
	}
	if n.opts.Log != nil {
		n.console = n.opts.Log
		return nil
	}
	f, err := os.OpenFile(filepath.Join(d, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	n.console = f
	return nil
}

func (n *Node) env() []string {
	d := n.opts.Dir
	return append(os.Environ(),
		"HOME="+d,
		"RABBITMQ_NODENAME="+n.name,
		"RABBITMQ_DIST_PORT="+strconv.Itoa(n.opts.DistPort),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(d, "rabbitmq"),
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(d, "advanced.config"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(d, "enabled_plugins"),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(d, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(d, "log"),
		"RABBITMQ_PID_FILE="+filepath.Join(d, "pid"),
		"RABBITMQ_PLUGINS_EXPAND_DIR="+filepath.Join(d, "plugins-expand"),
		"RABBITMQ_FEATURE_FLAGS_FILE="+filepath.Join(d, "feature_flags"),
		"RABBITMQ_QUORUM_DIR="+filepath.Join(d, "quorum"),
	)
}

// URL is the node's AMQP URL.
func (n *Node) URL() string {
	return "amqp://guest:guest@127.0.0.1:" + strconv.Itoa(n.opts.Port) + "/"
}

// Port is the node's AMQP port.
func (n *Node) Port() int { return n.opts.Port }

// Name is the Erlang node name.
func (n *Node) Name() string { return n.name }

// Start boots the node's process (after Kill or Stop) and waits until it
// accepts AMQP connections. On Linux the node dies with this process, even
// when it is killed (childproc.Start). A node whose VM exited on its own (a
// crash) may be started again without a Stop.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	if n.run != nil {
		n.mu.Unlock()
		return errors.New("rabbitnode: already running")
	}
	cmd := exec.Command(filepath.Join(n.opts.BinDir, "rabbitmq-server"))
	// RUNNING_UNDER_SYSTEMD makes the script exec the Erlang VM instead of
	// running it as a child of a shell that waits: the VM is then the
	// process childproc.Start ties to this one, and dies with it.
	cmd.Env = append(n.env(), "RUNNING_UNDER_SYSTEMD=true")
	cmd.Dir = n.opts.Dir
	cmd.Stdout, cmd.Stderr = n.console, n.console
	waited, err := childproc.Start(cmd)
	if err != nil {
		n.mu.Unlock()
		return fmt.Errorf("rabbitnode: start: %w", err)
	}
	r := &run{cmd: cmd, done: make(chan struct{})}
	n.run = r
	n.mu.Unlock()
	go func() {
		<-waited
		n.mu.Lock()
		if n.run == r { // not a later start's
			n.run = nil
		}
		n.mu.Unlock()
		close(r.done)
	}()
	return n.waitReady(ctx, r.done)
}

func (n *Node) waitReady(ctx context.Context, exited <-chan struct{}) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, n.opts.StartTimeout)
	defer cancel()
	for {
		conn, err := amqp.DialConfig(n.URL(), amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
		if err == nil {
			_ = conn.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			// ctx may be the caller's, ending before StartTimeout.
			return fmt.Errorf("rabbitnode: %s not ready after %s (see %s): %w", n.name, time.Since(start).Round(time.Second),
				filepath.Join(n.opts.Dir, "console.log"), err)
		case <-exited:
			return fmt.Errorf("rabbitnode: %s exited while starting (see %s)", n.name, filepath.Join(n.opts.Dir, "console.log"))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ctl runs rabbitmqctl against the node.
func (n *Node) ctl(ctx context.Context, args ...string) error {
	_, err := n.ctlOutput(ctx, args...)
	return err
}

func (n *Node) ctlOutput(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(n.opts.BinDir, "rabbitmqctl"), append([]string{"-n", n.name}, args...)...)
	cmd.Env = n.env()
	// ctx's end kills the process rabbitmqctl runs as only: what its Erlang
	// VM started (erl_child_setup, port programs, in sessions of their own)
	// may hold the output pipe a while longer, and CombinedOutput waits for
	// the pipe: WaitDelay bounds that wait.
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("rabbitmqctl %v: %w\n%s", args, err, out)
	}
	return string(out), nil
}

// Eval evaluates an Erlang expression on the node (`rabbitmqctl eval`) and
// returns what rabbitmqctl printed: tests reach into the broker with it, e.g.
// to suspend one queue's process.
func (n *Node) Eval(ctx context.Context, expr string) (string, error) {
	return n.ctlOutput(ctx, "eval", expr)
}

// RaiseMemoryAlarm sets the node's memory high watermark to 1 MB, under what
// any node uses, so RabbitMQ raises its memory alarm and blocks every
// connection that publishes (`rabbitmqctl set_vm_memory_high_watermark`).
func (n *Node) RaiseMemoryAlarm(ctx context.Context) error {
	return n.ctl(ctx, "set_vm_memory_high_watermark", "absolute", "1MB")
}

// ClearMemoryAlarm sets the memory high watermark back to RabbitMQ 3.10's
// default, 0.4 of the machine's memory, which clears the alarm.
func (n *Node) ClearMemoryAlarm(ctx context.Context) error {
	return n.ctl(ctx, "set_vm_memory_high_watermark", "0.4")
}

// StopApp stops the RabbitMQ application and leaves the Erlang node running
// (`rabbitmqctl stop_app`): every connection is closed.
func (n *Node) StopApp(ctx context.Context) error { return n.ctl(ctx, "stop_app") }

// StartApp starts the application again (`rabbitmqctl start_app`) and waits
// until it accepts connections.
func (n *Node) StartApp(ctx context.Context) error {
	if err := n.ctl(ctx, "start_app"); err != nil {
		return err
	}
	n.mu.Lock()
	r := n.run
	n.mu.Unlock()
	if r == nil {
		return errors.New("rabbitnode: the node's VM is not running")
	}
	return n.waitReady(ctx, r.done)
}

// Kill sends SIGKILL to the node's VM and waits until it is gone: nothing is
// flushed, as in a crash.
func (n *Node) Kill() error { return n.signal(syscall.SIGKILL, 30*time.Second) }

// Stop shuts the node down cleanly (SIGTERM) and waits for it.
func (n *Node) Stop() error { return n.signal(syscall.SIGTERM, 60*time.Second) }

// signal sends sig to the node's VM, SIGKILL if it still runs after within,
// and waits until it has exited and been reaped. A VM that already exited
// (crashed) is not signalled: os.Process signals no process once it has
// been reaped.
func (n *Node) signal(sig syscall.Signal, within time.Duration) error {
	n.mu.Lock()
	r := n.run
	n.mu.Unlock()
	if r == nil {
		return nil
	}
	_ = r.cmd.Process.Signal(sig)
	select {
	case <-r.done:
	case <-time.After(within):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	return nil
}

// Close stops the node and removes a temporary directory.
func (n *Node) Close() error {
	err := n.Stop()
	if n.console != nil && n.opts.Log == nil {
		_ = n.console.Close()
	}
	if n.tempDir {
		_ = os.RemoveAll(n.opts.Dir)
	}
	return err
}
