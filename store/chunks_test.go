package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

func testCID(t testing.TB, data []byte) cid.Cid {
	t.Helper()
	mh, err := multihash.Sum(data, multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, mh)
}

// chunkStoreSuite runs the ChunkStore contract against one implementation.
func chunkStoreSuite(t *testing.T, open func(t *testing.T) ChunkStore) {
	t.Run("PutGetHas", func(t *testing.T) {
		s := open(t)
		data := []byte("hello chunk")
		c := testCID(t, data)
		if ok, err := s.Has(c); err != nil || ok {
			t.Fatalf("Has before Put = %v, %v; want false", ok, err)
		}
		if err := s.Put(c, data); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Has(c); err != nil || !ok {
			t.Fatalf("Has after Put = %v, %v; want true", ok, err)
		}
		got, err := s.Get(c)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Get = %q, %v; want %q", got, err, data)
		}
	})
	t.Run("GetMissingIsErrNotFoundNamingCID", func(t *testing.T) {
		s := open(t)
		c := testCID(t, []byte("absent"))
		_, err := s.Get(c)
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get missing error = %v, want ErrNotFound", err)
		}
		if !strings.Contains(err.Error(), c.String()) {
			t.Errorf("error %q does not name %s", err, c)
		}
	})
	t.Run("PutTwiceCountsOnceAndKeepsFirstData", func(t *testing.T) {
		s := open(t)
		data := []byte("dedupe me")
		c := testCID(t, data)
		for range 3 {
			if err := s.Put(c, data); err != nil {
				t.Fatal(err)
			}
		}
		// the store trusts the caller: a second Put with other bytes is a no-op
		if err := s.Put(c, []byte("different")); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Get(c); !bytes.Equal(got, data) {
			t.Errorf("Get after repeated Put = %q, want %q", got, data)
		}
		if n, _ := s.Size(); n != int64(len(data)) {
			t.Errorf("Size = %d, want %d", n, len(data))
		}
	})
	t.Run("DeleteAndDeleteMissing", func(t *testing.T) {
		s := open(t)
		data := []byte("to delete")
		c := testCID(t, data)
		if err := s.Put(c, data); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(c); err != nil {
			t.Fatal(err)
		}
		if ok, _ := s.Has(c); ok {
			t.Error("Has after Delete = true")
		}
		if _, err := s.Get(c); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get after Delete error = %v, want ErrNotFound", err)
		}
		if err := s.Delete(c); err != nil {
			t.Errorf("Delete missing = %v, want nil", err)
		}
		if n, _ := s.Size(); n != 0 {
			t.Errorf("Size after Delete = %d, want 0", n)
		}
	})
	t.Run("ForEachAndSizeCoverEveryChunk", func(t *testing.T) {
		s := open(t)
		want := map[string]int64{}
		var total int64
		for i := range 40 {
			data := bytes.Repeat([]byte{byte(i)}, i*7) // includes an empty chunk
			c := testCID(t, data)
			if err := s.Put(c, data); err != nil {
				t.Fatal(err)
			}
			want[c.KeyString()] = int64(len(data))
			total += int64(len(data))
		}
		got := map[string]int64{}
		err := s.ForEach(func(c cid.Cid, size int64) error {
			if _, dup := got[c.KeyString()]; dup {
				t.Errorf("ForEach visited %s twice", c)
			}
			got[c.KeyString()] = size
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("ForEach visited %d chunks, want %d", len(got), len(want))
		}
		for k, n := range want {
			if got[k] != n {
				t.Errorf("ForEach size of %x = %d, want %d", k, got[k], n)
			}
		}
		if n, err := s.Size(); err != nil || n != total {
			t.Errorf("Size = %d, %v; want %d", n, err, total)
		}
		stop := errors.New("stop")
		calls := 0
		if err := s.ForEach(func(cid.Cid, int64) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
			t.Errorf("ForEach with failing fn: err=%v calls=%d, want stop after 1", err, calls)
		}
	})
	t.Run("GetResultIsNotSharedWithStore", func(t *testing.T) {
		s := open(t)
		data := []byte("immutable")
		c := testCID(t, data)
		buf := bytes.Clone(data)
		if err := s.Put(c, buf); err != nil {
			t.Fatal(err)
		}
		buf[0] = 'X'
		got, _ := s.Get(c)
		got[1] = 'Y'
		if again, _ := s.Get(c); !bytes.Equal(again, data) {
			t.Errorf("stored chunk changed to %q through caller buffers", again)
		}
	})
	t.Run("UndefinedCIDIsRejected", func(t *testing.T) {
		s := open(t)
		if err := s.Put(cid.Undef, []byte("x")); !errors.Is(err, ErrUndefinedCID) {
			t.Errorf("Put(Undef) = %v, want ErrUndefinedCID", err)
		}
		if _, err := s.Get(cid.Undef); !errors.Is(err, ErrUndefinedCID) {
			t.Errorf("Get(Undef) = %v, want ErrUndefinedCID", err)
		}
	})
	t.Run("ConcurrentPutsOfSameAndDifferentChunks", func(t *testing.T) {
		s := open(t)
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := range 20 {
					for _, data := range [][]byte{[]byte(fmt.Sprintf("shared-%d", i)), []byte(fmt.Sprintf("own-%d-%d", w, i))} {
						if err := s.Put(testCID(t, data), data); err != nil {
							t.Error(err)
						}
					}
				}
			})
		}
		wg.Wait()
		var want int64
		for i := range 20 {
			want += int64(len(fmt.Sprintf("shared-%d", i)))
			for w := range 8 {
				want += int64(len(fmt.Sprintf("own-%d-%d", w, i)))
			}
		}
		if n, _ := s.Size(); n != want {
			t.Errorf("Size after concurrent puts = %d, want %d", n, want)
		}
	})
}

func TestChunkStoreSuiteMem(t *testing.T) {
	chunkStoreSuite(t, func(*testing.T) ChunkStore { return NewMemChunks() })
}

func TestChunkStoreSuiteFile(t *testing.T) {
	chunkStoreSuite(t, func(t *testing.T) ChunkStore {
		s, err := OpenFileChunks(filepath.Join(t.TempDir(), "chunks"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestFileChunksLayoutFansOutByLastTwoCharacters(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenFileChunks(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("layout")
	c := testCID(t, data)
	if err := s.Put(c, data); err != nil {
		t.Fatal(err)
	}
	name := c.String()
	got, err := os.ReadFile(filepath.Join(dir, name[len(name)-2:], name))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("chunk file = %q, %v; want %q", got, err, data)
	}
}

func TestFileChunksPutTwiceDoesNotRewriteFile(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenFileChunks(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("written once")
	c := testCID(t, data)
	if err := s.Put(c, data); err != nil {
		t.Fatal(err)
	}
	name := c.String()
	file := filepath.Join(dir, name[len(name)-2:], name)
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := os.Chtimes(file, old, old); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(file)
	if err := s.Put(c, data); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if !after.ModTime().Equal(old) {
		t.Errorf("mtime changed to %v by second Put", after.ModTime())
	}
	if before.Sys().(*syscall.Stat_t).Ino != after.Sys().(*syscall.Stat_t).Ino {
		t.Error("inode changed: second Put replaced the file")
	}
}

func TestOpenFileChunksCleansStaleTempAndRecountsSize(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenFileChunks(dir)
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	for i := range 5 {
		data := bytes.Repeat([]byte("z"), 100+i)
		if err := s.Put(testCID(t, data), data); err != nil {
			t.Fatal(err)
		}
		want += int64(len(data))
	}
	// what a crash in the middle of Put leaves behind
	stale := filepath.Join(dir, chunkTmpDir, "chunk-123456")
	if err := os.WriteFile(stale, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenFileChunks(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temp file still there after open (stat err %v)", err)
	}
	if n, _ := s2.Size(); n != want {
		t.Errorf("Size after reopen = %d, want %d", n, want)
	}
	count := 0
	_ = s2.ForEach(func(cid.Cid, int64) error { count++; return nil })
	if count != 5 {
		t.Errorf("ForEach after reopen saw %d chunks, want 5", count)
	}
}

func BenchmarkFileChunksPut16KiB(b *testing.B) {
	s, err := OpenFileChunks(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 16<<10)
	b.SetBytes(int64(len(data)))
	i := 0
	for b.Loop() {
		i++
		copy(data, fmt.Sprintf("chunk-%d", i))
		if err := s.Put(testCID(b, data), data); err != nil {
			b.Fatal(err)
		}
	}
}
