package local

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// InstanceProcesses finds instance name's manager (by its config path on the
// command line) and every process below it: the postmaster and its
// children. In the local runtime an instance is exactly this process tree.
func InstanceProcesses(l Layout, name string) ([]int, error) {
	cfg := l.InstanceConfig(name)
	entries, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, err
	}
	parent := map[int]int{}
	var manager int
	for _, e := range entries {
		pid, err := strconv.Atoi(filepath.Base(e))
		if err != nil {
			continue
		}
		if b, err := os.ReadFile(e + "/stat"); err == nil { // #nosec G304 -- procfs
			parent[pid] = ppidFromStat(string(b))
		}
		if b, err := os.ReadFile(e + "/cmdline"); err == nil && isManagerOf(string(b), cfg) { // #nosec G304 -- procfs
			manager = pid
		}
	}
	if manager == 0 {
		return nil, nil
	}
	var out []int
	for pid := range parent {
		for p := pid; p > 1; p = parent[p] {
			if p == manager {
				out = append(out, pid)
				break
			}
		}
	}
	return out, nil
}

// isManagerOf reports whether a NUL-separated command line runs
// `pgward instance run --config cfg`.
func isManagerOf(cmdline, cfg string) bool {
	args := strings.Split(strings.TrimRight(cmdline, "\x00"), "\x00")
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--config" && args[i+1] == cfg {
			return i >= 2 && args[i-2] == "instance" && args[i-1] == "run"
		}
	}
	return false
}

func ppidFromStat(stat string) int {
	// The command name is in parentheses and may hold spaces.
	i := strings.LastIndex(stat, ")")
	if i < 0 {
		return 0
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}
