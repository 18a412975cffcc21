package baseline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/ipfs/go-cid"
	"github.com/jotfs/fastcdc-go"
	"github.com/multiformats/go-multihash"
	"github.com/zeebo/blake3"
)

func chunkAll(t testing.TB, data []byte) []Chunk {
	t.Helper()
	chunks, err := ChunkReader(context.Background(), bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	return chunks
}

func sizesOf(chunks []Chunk) []int {
	s := make([]int, len(chunks))
	for i, c := range chunks {
		s[i] = int(c.Size)
	}
	return s
}

// shortReader returns reads of varying short lengths, to exercise the
// carry-over between segments.
type shortReader struct {
	r io.Reader
	n uint32
}

func (s *shortReader) Read(p []byte) (int, error) {
	s.n = s.n*7 + 13
	lim := 1 + int(s.n%5000)
	if len(p) > lim {
		p = p[:lim]
	}
	return s.r.Read(p)
}

func TestCutPointsMatchFastCDCLibrary(t *testing.T) {
	data := pseudoRandom(1, 6<<20)
	for _, p := range []struct{ min, avg, max int }{
		{MinChunk, AvgChunk, MaxChunk}, {4 << 10, 16 << 10, 64 << 10}, {16 << 10, 64 << 10, 256 << 10},
	} {
		// The library is only used here, single-threaded: its NewChunker
		// rewrites a package-global table.
		lib, err := fastcdc.NewChunker(bytes.NewReader(data), fastcdc.Options{
			MinSize: p.min, AverageSize: p.avg, MaxSize: p.max, Normalization: 2,
		})
		if err != nil {
			t.Fatal(err)
		}
		var want []int
		for {
			c, err := lib.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, c.Length)
		}
		c := newCDC(p.min, p.avg, p.max)
		for name, r := range map[string]io.Reader{
			"full reads":  bytes.NewReader(data),
			"short reads": &shortReader{r: bytes.NewReader(data)},
		} {
			chunks, err := chunkStream(context.Background(), r, &c, 3, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := sizesOf(chunks); !slicesEqual(got, want) {
				t.Errorf("%d/%d/%d %s: %d chunks differ from fastcdc-go's %d", p.min, p.avg, p.max, name, len(got), len(want))
			}
		}
	}
}

func slicesEqual(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The chunking of a fixed input is pinned: if a dependency or a constant
// changes cut points or CIDs, this fails instead of silently splitting every
// file differently from the copies already stored.
func TestChunkingKnownAnswer(t *testing.T) {
	data := pseudoRandom(42, 1<<20)
	chunks := chunkAll(t, data)
	const (
		wantCount = 116
		wantFirst = "bafkr4ibxgvez7eehh26oagtz5btttgahjsayucjbk6oe33r4bzjnfxa53q"
		wantRoot  = "bafkr4igmkvu4rk2lgne4cpilzpr45ywljrkbn6266fsv6n3dupgoz4ckoy"
	)
	wantSizes := []int{10368, 4031, 8617, 11509, 8940, 8314, 8961, 10978}
	if got := sizesOf(chunks); len(got) < 8 || !slicesEqual(got[:8], wantSizes) {
		t.Errorf("first chunk sizes = %v, want %v", got[:min(8, len(got))], wantSizes)
	}
	// The first CID is plain BLAKE3-256 of the first chunk's bytes.
	b3 := blake3.Sum256(data[:wantSizes[0]])
	if !chunks[0].CID.Equals(cid.NewCidV1(cid.Raw, must(multihash.Encode(b3[:], multihash.BLAKE3)))) {
		t.Errorf("first chunk CID is not BLAKE3-256 of its bytes")
	}
	if len(chunks) != wantCount {
		t.Errorf("chunk count = %d, want %d", len(chunks), wantCount)
	}
	if got := chunks[0].CID.String(); got != wantFirst {
		t.Errorf("first chunk CID = %s, want %s", got, wantFirst)
	}
	if got := ContentRoot(chunks).String(); got != wantRoot {
		t.Errorf("content root = %s, want %s", got, wantRoot)
	}
}

func TestChunkingIsStableAndCoversInput(t *testing.T) {
	data := pseudoRandom(7, 3<<20+12345)
	var got bytes.Buffer
	first, err := ChunkReader(context.Background(), bytes.NewReader(data), func(b []byte, c Chunk) error {
		if int(c.Size) != len(b) {
			t.Errorf("chunk size %d, data %d bytes", c.Size, len(b))
		}
		if !c.CID.Equals(ChunkCID(b)) {
			t.Errorf("chunk at %d: CID does not match its bytes", got.Len())
		}
		got.Write(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatal("chunks delivered to fn do not reassemble the input in order")
	}
	second := chunkAll(t, data)
	if d := Diff(first, second); d.Removed != 0 || len(d.Added) != 0 {
		t.Fatalf("second run differs: %+v", d)
	}
	for i, c := range first {
		if c.Size > MaxChunk || (c.Size < MinChunk && i != len(first)-1) {
			t.Errorf("chunk %d: size %d out of %d..%d", i, c.Size, MinChunk, MaxChunk)
		}
	}
	if mean := len(data) / len(first); mean < AvgChunk/2 || mean > AvgChunk*2 {
		t.Errorf("mean chunk size %d far from %d", mean, AvgChunk)
	}
}

func TestChunkReaderSmallInputs(t *testing.T) {
	if chunks := chunkAll(t, nil); len(chunks) != 0 {
		t.Fatalf("empty input: %d chunks", len(chunks))
	}
	for _, n := range []int{1, MinChunk, MinChunk + 1, MaxChunk, MaxChunk + 1} {
		data := pseudoRandom(uint64(n), n)
		chunks := chunkAll(t, data)
		if sumSizes(chunks) != int64(n) {
			t.Errorf("%d bytes: chunks hold %d", n, sumSizes(chunks))
		}
		if n <= MinChunk && (len(chunks) != 1 || !chunks[0].CID.Equals(ChunkCID(data))) {
			t.Errorf("%d bytes: want one chunk with the CID of the data, got %d", n, len(chunks))
		}
	}
}

func TestChunkReaderStopsOnCallbackError(t *testing.T) {
	data := pseudoRandom(3, 4<<20)
	boom := errors.New("boom")
	calls := 0
	_, err := ChunkReader(context.Background(), bytes.NewReader(data), func([]byte, Chunk) error {
		calls++
		if calls == 10 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the callback's error", err)
	}
	if calls != 10 {
		t.Fatalf("fn called %d times after returning an error at call 10", calls)
	}
}

func TestChunkReaderHonoursCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	data := pseudoRandom(4, 4<<20)
	calls := 0
	_, err := ChunkReader(ctx, bytes.NewReader(data), func([]byte, Chunk) error {
		calls++
		if calls == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestChunkReaderReturnsReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	r := io.MultiReader(bytes.NewReader(pseudoRandom(5, 2<<20)), iotest.ErrReader(boom))
	if _, err := ChunkReader(context.Background(), r, nil); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the read error", err)
	}
	if _, err := ChunkReader(context.Background(), iotest.ErrReader(boom), nil); !errors.Is(err, boom) {
		t.Fatalf("first read: err = %v, want the read error", err)
	}
}

func TestChunkFile(t *testing.T) {
	dir := t.TempDir()
	data := pseudoRandom(6, 1<<20+3)
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	chunks, size, err := ChunkFile(context.Background(), p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(len(data)) || !ContentRoot(chunks).Equals(ContentRoot(chunkAll(t, data))) {
		t.Fatalf("ChunkFile: size %d, root differs from ChunkReader's", size)
	}
	if _, _, err := ChunkFile(context.Background(), filepath.Join(dir, "missing"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: err = %v", err)
	}
}

// changedBytes is the size of the chunks in new that a peer holding old
// lacks: what a change costs on the wire.
func changedBytes(old, new []Chunk) (int, Splice) {
	d := Diff(old, new)
	n := 0
	for _, c := range d.Added {
		n += int(c.Size)
	}
	return n, d
}

func TestSmallEditsChangeFewChunks(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB")
	}
	data := pseudoRandom(9, 64<<20)
	base := chunkAll(t, data)

	inserted := make([]byte, 0, len(data)+100)
	inserted = append(inserted, data[:1000]...)
	inserted = append(inserted, pseudoRandom(10, 100)...)
	inserted = append(inserted, data[1000:]...)
	n, d := changedBytes(base, chunkAll(t, inserted))
	t.Logf("insert 100 B near start: removed %d, added %d chunks (%d bytes)", d.Removed, len(d.Added), n)
	if d.Removed > 3 || len(d.Added) > 3 {
		t.Errorf("100-byte insert near the start: splice removed %d, added %d chunks; want <= 3", d.Removed, len(d.Added))
	}

	overwritten := bytes.Clone(data)
	copy(overwritten[len(data)/2:], pseudoRandom(11, 4096))
	n, d = changedBytes(base, chunkAll(t, overwritten))
	t.Logf("overwrite 4 KiB in the middle: removed %d, added %d chunks (%d bytes)", d.Removed, len(d.Added), n)
	if d.Removed > 3 || len(d.Added) > 3 || len(d.Added) == 0 {
		t.Errorf("4 KiB overwrite: splice removed %d, added %d chunks; want 1..3", d.Removed, len(d.Added))
	}
}

func TestVerifyChunk(t *testing.T) {
	data := []byte("some chunk bytes")
	if err := VerifyChunk(ChunkCID(data), data); err != nil {
		t.Fatalf("own CID rejected: %v", err)
	}
	sum := sha256.Sum256(data)
	mh, _ := multihash.Encode(sum[:], multihash.SHA2_256)
	shaCID := cid.NewCidV1(cid.Raw, mh)
	if err := VerifyChunk(shaCID, data); err != nil {
		t.Fatalf("SHA2-256 CID rejected: %v", err)
	}
	c := ChunkCID(data)
	err := VerifyChunk(c, []byte("some chunk bytez"))
	if !errors.Is(err, ErrChunkMismatch) || !strings.Contains(err.Error(), c.String()) {
		t.Fatalf("mismatch: err = %v, want ErrChunkMismatch naming %s", err, c)
	}
	if err := VerifyChunk(shaCID, []byte("other")); !errors.Is(err, ErrChunkMismatch) {
		t.Fatalf("SHA2-256 mismatch: err = %v", err)
	}
	b3 := blake3.Sum256(data)
	sha1mh, _ := multihash.Sum(data, multihash.SHA1, -1)
	b3mh, _ := multihash.Encode(b3[:], multihash.BLAKE3)
	for name, bad := range map[string]cid.Cid{
		"sha1":       cid.NewCidV1(cid.Raw, sha1mh),
		"dag-pb":     cid.NewCidV1(cid.DagProtobuf, b3mh),
		"cidv0":      cid.NewCidV0(mh),
		"undefined":  cid.Undef,
		"blake3-16B": cid.NewCidV1(cid.Raw, must(multihash.Encode(b3[:16], multihash.BLAKE3))),
	} {
		if err := VerifyChunk(bad, data); !errors.Is(err, ErrUnsupportedCID) {
			t.Errorf("%s: err = %v, want ErrUnsupportedCID", name, err)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
