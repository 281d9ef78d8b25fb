package pgcluster

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Timeout bounds each pg_ctl start and stop.
const Timeout = 30 * time.Second

// Cluster is one private PostgreSQL cluster. Its methods are safe for
// concurrent use.
type Cluster struct {
	t     testing.TB
	bin   string // directory of initdb, pg_ctl, postgres
	dir   string // removed at the end
	data  string
	log   string
	port  int
	runAs *user.User // nil: run as the invoking user

	mu      sync.Mutex
	running bool
}

// New creates a cluster and starts it; it is stopped and removed when the
// test ends. It skips or fails the test when PostgreSQL is not installed
// (see the package doc).
func New(t testing.TB) *Cluster {
	t.Helper()
	bin, err := findBin()
	if err != nil {
		unavailable(t, err)
	}
	c := &Cluster{t: t, bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			unavailable(t, fmt.Errorf("running as root and there is no postgres OS user to run PostgreSQL as: %w", err))
		}
		c.runAs = u
	}
	c.sweep()
	// Not t.TempDir: its parents are private to the invoking user, and the
	// server may run as another.
	c.dir, err = os.MkdirTemp("", dirPrefix)
	if err != nil {
		t.Fatalf("pgcluster: %v", err)
	}
	if err := os.WriteFile(filepath.Join(c.dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatalf("pgcluster: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(c.dir) })
	if c.runAs != nil {
		uid, _ := strconv.Atoi(c.runAs.Uid)
		gid, _ := strconv.Atoi(c.runAs.Gid)
		if err := os.Chown(c.dir, uid, gid); err != nil {
			t.Fatalf("pgcluster: chown %s to postgres: %v", c.dir, err)
		}
	}
	c.data = filepath.Join(c.dir, "data")
	c.log = filepath.Join(c.dir, "server.log")
	if out, err := c.run("initdb", "-D", c.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		t.Fatalf("pgcluster: initdb: %v\n%s", err, out)
	}
	c.port = freePort(t)
	conf := fmt.Sprintf(`
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 16MB
max_connections = 100
`, c.port, c.dir)
	f, err := os.OpenFile(filepath.Join(c.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("pgcluster: %v", err)
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("pgcluster: write postgresql.conf: %v", err)
	}
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.running {
			_, _ = c.run("pg_ctl", "-D", c.data, "-m", "immediate", "-w", "-t", "30", "stop")
			c.running = false
		}
	})
	c.Start()
	return c
}

const (
	dirPrefix = "pgcluster-"
	ownerFile = "owner.pid" // the test process that made the cluster
)

// sweep stops and removes the clusters of test processes that have died
// without cleaning up (a test binary killed by its -timeout panics past
// every t.Cleanup), so their servers do not run on forever.
func (c *Cluster) sweep() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue // being made, or not ours
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		data := filepath.Join(d, "data")
		if isFile(filepath.Join(data, "postmaster.pid")) {
			_, _ = c.run("pg_ctl", "-D", data, "-m", "immediate", "-w", "-t", "30", "stop")
		}
		os.RemoveAll(d)
	}
}

func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM)
}

// DSN returns a lib/pq URL for the cluster's postgres database as the
// postgres role, over TCP.
func (c *Cluster) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// Addr returns the server's host:port.
func (c *Cluster) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)) }

// Start starts the server and waits until it accepts connections; it does
// nothing if the server is running.
func (c *Cluster) Start() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return
	}
	if out, err := c.run("pg_ctl", "-D", c.data, "-l", c.log, "-w", "-t", strconv.Itoa(int(Timeout/time.Second)), "start"); err != nil {
		c.t.Fatalf("pgcluster: start: %v\n%s\nserver log:\n%s", err, out, c.logTail())
	}
	c.running = true
}

// Stop stops the server (pg_ctl stop -m fast: sessions are ended, open
// transactions rolled back) and waits until it has; it does nothing if the
// server is stopped.
func (c *Cluster) Stop() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return
	}
	if out, err := c.run("pg_ctl", "-D", c.data, "-m", "fast", "-w", "-t", strconv.Itoa(int(Timeout/time.Second)), "stop"); err != nil {
		c.t.Fatalf("pgcluster: stop: %v\n%s\nserver log:\n%s", err, out, c.logTail())
	}
	c.running = false
}

// Restart stops the server and starts it again on the same port.
func (c *Cluster) Restart() {
	c.t.Helper()
	c.Stop()
	c.Start()
}

// Running reports whether the server was started and not stopped.
func (c *Cluster) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running
}

// run runs one of the PostgreSQL programs, as the postgres OS user when
// the test runs as root.
func (c *Cluster) run(prog string, args ...string) ([]byte, error) {
	path := filepath.Join(c.bin, prog)
	var cmd *exec.Cmd
	switch {
	case c.runAs == nil:
		cmd = exec.Command(path, args...)
	case hasProgram("runuser"):
		cmd = exec.Command("runuser", append([]string{"-u", c.runAs.Username, "--", path}, args...)...)
	default:
		q := []string{shellQuote(path)}
		for _, a := range args {
			q = append(q, shellQuote(a))
		}
		cmd = exec.Command("su", c.runAs.Username, "-s", "/bin/sh", "-c", strings.Join(q, " "))
	}
	cmd.Dir = c.dir
	if cmd.Dir == "" { // sweeping, before the cluster has a directory
		cmd.Dir = os.TempDir()
	}
	// Locale settings of the invoking shell are not the cluster's business.
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	return cmd.CombinedOutput()
}

func (c *Cluster) logTail() string {
	b, err := os.ReadFile(c.log)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// findBin returns the directory of the newest installed PostgreSQL's
// initdb and pg_ctl.
func findBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		if isFile(filepath.Join(d, "initdb")) && isFile(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL initdb and pg_ctl in /usr/lib/postgresql/*/bin or on PATH")
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

func hasProgram(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("pgcluster: %v (CI=true: install PostgreSQL)", err)
	}
	t.Skipf("pgcluster: %v", err)
}

// freePort returns a loopback port nothing listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pgcluster: find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
