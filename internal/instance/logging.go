package instance

import (
	"context"
	"log/slog"
	"os"
	"strings"

	v1 "github.com/pgward/pgward/api/v1"
)

// LevelTrace is spec.logLevel trace: below debug, for what happens on
// every request (each status exchange, several a second).
const LevelTrace = slog.LevelDebug - 4

// SlogLevel is spec.logLevel as a slog level (info when left out).
// PGWARD_LOG_LEVEL=debug, a developer's switch in the process's
// environment, lowers it to debug at most.
func SlogLevel(s *v1.ClusterSpec) slog.Level {
	level := slog.LevelInfo
	switch s.LogLevel {
	case "error":
		level = slog.LevelError
	case "warning":
		level = slog.LevelWarn
	case "debug":
		level = slog.LevelDebug
	case "trace":
		level = LevelTrace
	}
	if strings.EqualFold(os.Getenv("PGWARD_LOG_LEVEL"), "debug") {
		level = min(level, slog.LevelDebug)
	}
	return level
}

// SetLogLevel hands the manager the level of its logger, which it keeps at
// spec.logLevel: now, and whenever a new manifest is applied.
func (m *Manager) SetLogLevel(v *slog.LevelVar) {
	m.level = v
	m.applyLogLevel()
}

func (m *Manager) applyLogLevel() {
	if m.level != nil {
		m.level.Set(SlogLevel(&m.cluster.Spec))
	}
}

// trace and debug log at LevelTrace and debug level; they are called
// from the status port's handlers too, on managers tests build without
// a logger.
func (m *Manager) trace(msg string, args ...any) {
	if m.log != nil {
		m.log.Log(context.Background(), LevelTrace, msg, args...)
	}
}

func (m *Manager) debug(msg string, args ...any) {
	if m.log != nil {
		m.log.Debug(msg, args...)
	}
}
