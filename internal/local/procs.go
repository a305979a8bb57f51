package local

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// proc identifies a process across pid reuse: its pid and its start time
// (clock ticks since boot, /proc/<pid>/stat field 22).
type proc struct {
	pid   int
	start uint64
}

// alive reports whether p still runs: same pid, same start time, not a
// zombie waiting for its parent.
func (p proc) alive() bool {
	st, ok := readStat(p.pid)
	return ok && st.start == p.start && st.state != 'Z' && st.state != 'X'
}

type stat struct {
	ppid  int
	state byte
	start uint64
}

// readStat parses /proc/<pid>/stat.
func readStat(pid int) (stat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat") // #nosec G304 -- procfs
	if err != nil {
		return stat{}, false
	}
	return parseStat(string(b))
}

func parseStat(s string) (stat, bool) {
	// The command name is in parentheses and may hold spaces and ')'.
	i := strings.LastIndex(s, ")")
	if i < 0 {
		return stat{}, false
	}
	f := strings.Fields(s[i+1:])
	// After the name: state(3) ppid(4) ... starttime(22).
	if len(f) < 2 || len(f[0]) != 1 {
		return stat{}, false
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return stat{}, false
	}
	st := stat{ppid: ppid, state: f[0][0]}
	if len(f) >= 20 {
		if st.start, err = strconv.ParseUint(f[19], 10, 64); err != nil {
			return stat{}, false
		}
	}
	return st, true
}

func procOf(pid int) (proc, bool) {
	st, ok := readStat(pid)
	if !ok || st.state == 'Z' || st.state == 'X' {
		return proc{}, false
	}
	return proc{pid: pid, start: st.start}, true
}

// managers finds the running instance managers of the cluster in l, by the
// config path on their command line: those the controller started, and
// those a previous controller left running (they outlive it).
func managers(l Layout) map[string]proc {
	out := map[string]proc{}
	configs := map[string]string{} // config path -> instance
	dirs, _ := filepath.Glob(filepath.Join(l.Dir, "instances", "*"))
	for _, d := range dirs {
		name := filepath.Base(d)
		configs[l.InstanceConfig(name)] = name
	}
	if len(configs) == 0 {
		return out
	}
	entries, _ := filepath.Glob("/proc/[0-9]*")
	for _, e := range entries {
		pid, err := strconv.Atoi(filepath.Base(e))
		if err != nil {
			continue
		}
		b, err := os.ReadFile(e + "/cmdline") // #nosec G304 -- procfs
		if err != nil {
			continue
		}
		cfg := managerConfig(string(b))
		name, ok := configs[cfg]
		if !ok {
			continue
		}
		if p, ok := procOf(pid); ok {
			out[name] = p
		}
	}
	return out
}

// InstanceManagerPid is the pid of the instance manager of name.
func InstanceManagerPid(l Layout, name string) (int, bool) {
	m, ok := managers(l)[name]
	return m.pid, ok
}

// InstanceProcesses finds instance name's manager and every process below
// it: the postmaster and its children. In the local runtime an instance is
// exactly this process tree.
func InstanceProcesses(l Layout, name string) ([]int, error) {
	m, ok := managers(l)[name]
	if !ok {
		return nil, nil
	}
	entries, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, err
	}
	parent := map[int]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(filepath.Base(e))
		if err != nil {
			continue
		}
		if st, ok := readStat(pid); ok {
			parent[pid] = st.ppid
		}
	}
	var out []int
	for pid := range parent {
		for p := pid; p > 1; p = parent[p] {
			if p == m.pid {
				out = append(out, pid)
				break
			}
		}
	}
	return out, nil
}

// managerConfig returns the config path of a NUL-separated command line
// that runs `pgward instance run --config PATH`, or "".
func managerConfig(cmdline string) string {
	args := strings.Split(strings.TrimRight(cmdline, "\x00"), "\x00")
	for i := 2; i+1 < len(args); i++ {
		if args[i] == "--config" && args[i-2] == "instance" && args[i-1] == "run" {
			return args[i+1]
		}
	}
	return ""
}

// isManagerOf reports whether a command line runs the manager of config cfg.
func isManagerOf(cmdline, cfg string) bool { return cfg != "" && managerConfig(cmdline) == cfg }

// ppidFromStat is the parent pid of a /proc/<pid>/stat line.
func ppidFromStat(s string) int {
	st, ok := parseStat(s)
	if !ok {
		return 0
	}
	return st.ppid
}
