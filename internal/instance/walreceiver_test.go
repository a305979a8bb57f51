package instance

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
)

// TestPrimaryConnInfoBoundsASilentPrimary: a replica's rendered
// primary_conninfo carries walReceiverTCP (the kernel's bound on a
// connection attempt or a session nothing answers); a primary's has no
// primary_conninfo, and the connection string pgx parses (slots, rewind's
// checkpoint) and pg_basebackup and pg_rewind use stays without it.
func TestPrimaryConnInfoBoundsASilentPrimary(t *testing.T) {
	c := &v1.Cluster{}
	c.Name = "c"
	c.Spec.Instances = 3
	c.Spec.Bootstrap = &v1.BootstrapConfiguration{InitDB: &v1.BootstrapInitDB{Database: "app", Owner: "app"}}
	v1.SetDefaults(c)
	m := &Manager{cfg: &Config{Name: "c-2", Port: 5432, ListenAddress: "*", SocketDir: "/run/pg", OSUser: "postgres", ConfDir: t.TempDir(), SecretsRoot: "/s",
		Secrets: Secrets{ServerCA: "ca", ClientCA: "ca", ServerTLS: "server", Replication: "repl"}}, cluster: c}
	m.st.Primary = Endpoint{Name: "c-1", Host: "c-rw", Port: 5432}
	files, err := m.renderFiles(c, false)
	if err != nil {
		t.Fatal(err)
	}
	var conninfo string
	for _, line := range strings.Split(string(files["postgresql.conf"]), "\n") {
		if v, ok := strings.CutPrefix(line, "primary_conninfo = "); ok {
			conninfo = v
		}
	}
	for _, want := range []string{"host=''c-rw''", "connect_timeout=2", "tcp_user_timeout=1000", "keepalives=1", "keepalives_idle=1", "keepalives_interval=1", "keepalives_count=2", "application_name=''c-2''"} {
		if !strings.Contains(conninfo, want) {
			t.Errorf("a replica's primary_conninfo lacks %s: %s", want, conninfo)
		}
	}
	files, err = m.renderFiles(c, true)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(files["postgresql.conf"]), "primary_conninfo") {
		t.Errorf("a primary's postgresql.conf has a primary_conninfo")
	}
	ci := m.replicationConnInfo(m.st.Primary, "")
	if strings.Contains(ci, "tcp_user_timeout") || strings.Contains(ci, "keepalives") {
		t.Errorf("the pgx connection string carries the WAL receiver's TCP settings: %s", ci)
	}
}

// silentListener is an address whose SYNs go unanswered, as a primary's
// behind a network cut: a listening socket with a backlog of 0 whose one
// queue slot is taken (Linux drops SYNs to a listener whose accept queue
// is full), so a connection attempt waits as it would for a dropped packet.
func silentListener(t *testing.T) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*syscall.SockaddrInet4).Port
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	dial := func(d time.Duration) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		var dl net.Dialer
		return dl.DialContext(ctx, "tcp", addr)
	}
	// Fill the accept queue; from then on nothing answers.
	for range 3 {
		if conn, err := dial(300 * time.Millisecond); err == nil {
			t.Cleanup(func() { _ = conn.Close() })
		}
	}
	if conn, err := dial(500 * time.Millisecond); err == nil {
		_ = conn.Close()
		t.Fatalf("%s still answers connection attempts", addr)
	}
	return port
}

// TestWALReceiverGivesUpOnASilentPrimary runs a real PostgreSQL standby
// whose primary_conninfo is pgward's and whose primary answers nothing:
// its WAL receiver must give up each connection attempt within seconds and
// try again, as it must after a network cut to reach the new primary.
// Without walReceiverTCP the first attempt waits for TCP's own limit
// (over a minute; connect_timeout is not applied by the WAL receiver) and
// this fails.
func TestWALReceiverGivesUpOnASilentPrimary(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, err := ResolvePGBinDir(ctx, "")
	if err != nil {
		t.Fatalf("PostgreSQL's binaries: %v", err)
	}
	port := silentListener(t)
	dir, err := os.MkdirTemp("", "pgward-walreceiver-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	var cred *syscall.Credential
	if os.Geteuid() == 0 { // PostgreSQL refuses to run as root
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)} // #nosec G115 -- ids of a local user
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	run := func(name string, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, filepath.Join(bin, name), args...) // #nosec G204 -- PostgreSQL's own binaries
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
		return cmd
	}
	data := filepath.Join(dir, "data")
	if out, err := run("initdb", "-N", "-A", "peer", "-U", "postgres", "-D", data).CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	m := &Manager{cfg: &Config{SecretsRoot: dir, Secrets: Secrets{ServerCA: "ca", Replication: "repl"}}}
	conninfo := walReceiverConnInfo(m.replicationConnInfo(Endpoint{Name: "c-1", Host: "127.0.0.1", Port: port}, "c-2"))
	q := "'" + strings.ReplaceAll(conninfo, "'", "''") + "'"
	conf := "listen_addresses = ''\nunix_socket_directories = '" + dir + "'\nprimary_conninfo = " + q +
		"\nwal_retrieve_retry_interval = '200ms'\nlog_line_prefix = '%m [%p] '\n"
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0) // #nosec G302 G304 -- the test's own data directory
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(conf); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "standby.signal"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		if err := os.Chown(filepath.Join(data, "standby.signal"), int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	pg := run("postgres", "-D", data)
	stderr, err := pg.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = pg.Process.Signal(syscall.SIGQUIT)
		_ = pg.Wait()
	})
	// Each failed attempt is one FATAL of a WAL receiver; pgward's bound
	// is 1 s per attempt (then 200 ms to the next), so 4 s see at least
	// two: a 2 s bound would not (its second comes after 4.2 s).
	failed := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "could not connect to the primary server") {
				failed <- sc.Text()
			}
		}
	}()
	start := time.Now()
	var got []time.Duration
	timeout := time.After(4 * time.Second)
	for len(got) < 2 {
		select {
		case line := <-failed:
			got = append(got, time.Since(start))
			if !strings.Contains(line, "timed out") {
				t.Errorf("the attempt failed otherwise than by the timeout: %s", line)
			}
		case <-timeout:
			t.Fatalf("the WAL receiver gave up %d connection attempts to a silent primary in 4 s (after %v); it must give each up within about 1 s", len(got), got)
		}
	}
	t.Logf("connection attempts to a silent primary given up after %v", got)
}
