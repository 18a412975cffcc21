package store

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/ipfs/go-cid"
)

// MemChunks is an in-memory ChunkStore for tests. It copies data on Put and
// Get, so callers may reuse their buffers.
type MemChunks struct {
	mu     sync.RWMutex
	chunks map[string][]byte // key: cid.Cid.KeyString()
	size   int64
}

// NewMemChunks returns an empty in-memory chunk store.
func NewMemChunks() *MemChunks {
	return &MemChunks{chunks: make(map[string][]byte)}
}

// Has reports whether the chunk is stored.
func (m *MemChunks) Has(c cid.Cid) (bool, error) {
	if !c.Defined() {
		return false, ErrUndefinedCID
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, ok := m.chunks[c.KeyString()]
	return ok, nil
}

// Get returns a copy of the chunk.
func (m *MemChunks) Get(c cid.Cid) ([]byte, error) {
	if !c.Defined() {
		return nil, ErrUndefinedCID
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	data, ok := m.chunks[c.KeyString()]
	if !ok {
		return nil, fmt.Errorf("get chunk %s: %w", c, ErrNotFound)
	}
	return bytes.Clone(data), nil
}

// Put stores a copy of data unless the chunk is present.
func (m *MemChunks) Put(c cid.Cid, data []byte) error {
	if !c.Defined() {
		return ErrUndefinedCID
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := c.KeyString()
	if _, ok := m.chunks[k]; ok {
		return nil
	}
	if data == nil {
		data = []byte{}
	}
	m.chunks[k] = bytes.Clone(data)
	m.size += int64(len(data))
	return nil
}

// Delete removes the chunk.
func (m *MemChunks) Delete(c cid.Cid) error {
	if !c.Defined() {
		return ErrUndefinedCID
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := c.KeyString()
	if data, ok := m.chunks[k]; ok {
		m.size -= int64(len(data))
		delete(m.chunks, k)
	}
	return nil
}

// ForEach calls fn for a snapshot of the chunks, in CID byte order. fn may
// call other methods of the store.
func (m *MemChunks) ForEach(fn func(c cid.Cid, size int64) error) error {
	m.mu.RLock()
	sizes := make(map[string]int64, len(m.chunks))
	for k, v := range m.chunks {
		sizes[k] = int64(len(v))
	}
	m.mu.RUnlock()
	for _, k := range sortedKeys(sizes) {
		c, err := cid.Cast([]byte(k))
		if err != nil {
			return fmt.Errorf("store: bad chunk key: %w", err)
		}
		if err := fn(c, sizes[k]); err != nil {
			return err
		}
	}
	return nil
}

// Size returns the bytes stored.
func (m *MemChunks) Size() (int64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.size, nil
}
