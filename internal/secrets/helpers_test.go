package secrets

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
)

// byteReader replays bytes and then fails, so tests control exactly which
// random bytes a function sees.
type byteReader struct{ data []byte }

func (r *byteReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, errors.New("byteReader: exhausted")
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("entropy exhausted") }

// memStore is an in-memory Store that counts writes and can fail on demand.
type memStore struct {
	secrets map[string]map[string][]byte
	puts    int
	getErr  error
	putErr  error
}

func newMemStore() *memStore { return &memStore{secrets: map[string]map[string][]byte{}} }

func (m *memStore) Get(name string) (map[string][]byte, error) {
	if m.getErr != nil {
		return nil, m.getErr
	}
	data, ok := m.secrets[name]
	if !ok {
		return nil, fmt.Errorf("memStore: %q: %w", name, fs.ErrNotExist)
	}
	return cloneData(data), nil
}

func (m *memStore) Put(name string, data map[string][]byte) error {
	if m.putErr != nil {
		return m.putErr
	}
	m.puts++
	m.secrets[name] = cloneData(data)
	return nil
}

func cloneData(data map[string][]byte) map[string][]byte {
	out := make(map[string][]byte, len(data))
	for k, v := range data {
		out[k] = bytes.Clone(v)
	}
	return out
}

func equalData(a, b map[string][]byte) bool { return maps.EqualFunc(a, b, bytes.Equal) }
