package pgconf

import (
	"crypto/sha256"
	"encoding/hex"
)

// Hash returns the hex-encoded SHA-256 of a rendered file. A runtime keeps
// the hash of what it last wrote and rewrites the file and reloads
// PostgreSQL only when the hash of a new rendering differs.
func Hash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
