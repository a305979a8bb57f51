package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/local"
)

// BenchmarkStatusPoll measures what the controller pays per health check:
// one mTLS /pg/status round trip to a real instance manager, and the CPU
// time the instance manager spends answering it.
//
//	go test -run '^$' -bench StatusPoll ./test/e2e/
func BenchmarkStatusPoll(b *testing.B) {
	dir := filepath.Join(workRoot, "poll")
	ctx := context.Background()
	if out, err := pgward(ctx, "local", "up", "-f", filepath.Join(repoRoot, "config", "samples", "cluster-example.yaml"), "--dir", dir); err != nil {
		b.Fatalf("up: %v\n%s", err, out)
	}
	defer func() { _, _ = pgward(context.Background(), "local", "down", "--purge", "--dir", dir) }()
	read := func(secret, key string) []byte {
		v, err := os.ReadFile(filepath.Join(dir, "secrets", secret, key))
		if err != nil {
			b.Fatal(err)
		}
		return v
	}
	cert, err := tls.X509KeyPair(read("cluster-example-controller", "tls.crt"), read("cluster-example-controller", "tls.key"))
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(read("cluster-example-ca", "ca.crt"))
	cl := instanceapi.NewClient(pool, cert, "localhost", time.Second)
	st, err := local.LoadState(local.Layout{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(st.Instances[0].StatusPort))
	pids, _ := local.InstanceProcesses(local.Layout{Dir: dir}, st.Instances[0].Name)
	manager := minPid(pids)
	var ack uint64
	cpu0 := cpuTime(manager)
	b.ResetTimer()
	for range b.N {
		s, err := cl.Status(ctx, addr, ack)
		if err != nil {
			b.Fatal(err)
		}
		ack = s.RequestID
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime(manager)-cpu0).Microseconds())/float64(b.N), "manager-cpu-µs/op")
}

func minPid(pids []int) int {
	m := 0
	for _, p := range pids {
		if m == 0 || p < m {
			m = p
		}
	}
	return m
}

// cpuTime is a process's user+system CPU time from /proc (clock ticks of 10ms).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b)[strings.LastIndex(string(b), ")")+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return time.Duration(u+s) * 10 * time.Millisecond
}
