package baseline

import (
	"bytes"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A write that lands while a file is read makes the read start again: the
// entry is the file as it is after the write, never a mix.
func TestReadAgainAfterAWriteRacedTheRead(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "f")
	if err := os.WriteFile(p, bytes.Repeat([]byte("a"), 300<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	var faults Faults
	writes := 0
	faults.DuringRead("f", func() {
		if writes == 0 {
			writes++
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				t.Error(err)
				return
			}
			f.WriteAt(bytes.Repeat([]byte("b"), 1000), 5000) // same size: only the ctime tells
			f.Close()
		}
	})
	st, err := Read(root, "f", nil, nil, nil, WithFaults(&faults))
	if err != nil {
		t.Fatal(err)
	}
	if st.Retries != 1 {
		t.Fatalf("retries = %d, want 1", st.Retries)
	}
	want, _ := os.ReadFile(p)
	chunks, err := ChunkReader(t.Context(), bytes.NewReader(want), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(st.Entry.Chunks, chunks, chunkEqual) {
		t.Fatal("entry is not the file as it was after the write")
	}
	fi, _ := os.Stat(p)
	if st.Stamp != StampOf(fi) {
		t.Fatalf("stamp %+v, the file's is %+v", st.Stamp, StampOf(fi))
	}
}

// A file written during every read is reported torn (it exists: not
// absent), and no entry is made of it.
func TestReadOfAFileChangedDuringEveryReadIsTornNeverMixedOrAbsent(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "busy")
	if err := os.WriteFile(p, make([]byte, 100<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	var faults Faults
	n := 0
	faults.DuringRead("busy", func() {
		n++
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Error(err)
			return
		}
		f.Write([]byte{byte(n)})
		f.Close()
	})
	st, err := Read(root, "busy", nil, nil, nil, WithFaults(&faults))
	if !errors.Is(err, ErrTorn) || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want ErrTorn (and not absent)", err)
	}
	if st.Entry.Path != "" || st.Entry.Chunks != nil {
		t.Fatalf("an entry was made of a torn read: %+v", st.Entry)
	}
	if n < ReadAttempts || n > MaxReadAttempts {
		t.Fatalf("%d reads, want %d to %d", n, ReadAttempts, MaxReadAttempts)
	}
	// Scan reports it to OnError as torn, and leaves it out.
	var got error
	ents, err := Scan(t.Context(), root, ScanOptions{Faults: &faults, OnError: func(rel string, err error) { got = err }})
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 || !errors.Is(got, ErrTorn) {
		t.Fatalf("scan: %d entries, OnError %v; want none and ErrTorn", len(ents), got)
	}
}

// The bytes kept are those of the chunks hashed, within the budget.
func TestReadKeepsTheBytesOfTheChunksItHashedWithinTheBudget(t *testing.T) {
	root := t.TempDir()
	data := make([]byte, 200<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(filepath.Join(root, "f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	keep := &Keep{Budget: 1 << 30}
	st, err := Read(root, "f", nil, nil, keep)
	if err != nil {
		t.Fatal(err)
	}
	var off int64
	for _, c := range st.Entry.Chunks {
		d, ok := st.Data[c.CID]
		if !ok || !bytes.Equal(d, data[off:off+int64(c.Size)]) {
			t.Fatalf("chunk at %d not kept or not the file's bytes", off)
		}
		off += int64(c.Size)
	}
	if keep.Budget != 1<<30-int64(len(data)) {
		t.Fatalf("budget left %d, want %d", keep.Budget, 1<<30-int64(len(data)))
	}
	small := &Keep{Budget: 20 << 10}
	st, err = Read(root, "f", nil, nil, small)
	if err != nil {
		t.Fatal(err)
	}
	kept := 0
	for _, d := range st.Data {
		kept += len(d)
	}
	if kept > 20<<10 || kept == 0 || small.Budget != int64(20<<10-kept) {
		t.Fatalf("kept %d bytes with a 20 KiB budget (left %d)", kept, small.Budget)
	}
}

// Deferred: a small file comes back as one consistent copy, chunked only
// when Hash is called, to the same chunks and kept bytes as an immediate
// read; the budget of bytes held shrinks, and past it files are hashed at
// once.
func TestDeferredReadHashesLaterToTheSameEntry(t *testing.T) {
	root := t.TempDir()
	data := make([]byte, 150<<10)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(filepath.Join(root, "f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	now, err := Read(root, "f", nil, nil, &Keep{Budget: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	hold := int64(1 << 20)
	st, err := Read(root, "f", nil, nil, nil, Deferred(&hold))
	if err != nil {
		t.Fatal(err)
	}
	if !st.Unhashed() || st.Entry.Chunks != nil || hold != 1<<20-int64(len(data)) {
		t.Fatalf("deferred read: unhashed %v, %d chunks, hold left %d", st.Unhashed(), len(st.Entry.Chunks), hold)
	}
	if st.Stamp != now.Stamp {
		t.Fatalf("stamp %+v, immediate read's %+v", st.Stamp, now.Stamp)
	}
	if err := st.Hash(t.Context(), &Keep{Budget: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	if st.Unhashed() || !slices.EqualFunc(st.Entry.Chunks, now.Entry.Chunks, chunkEqual) || len(st.Data) != len(now.Data) {
		t.Fatal("hashed later, the entry differs from an immediate read")
	}
	small := int64(10)
	st, err = Read(root, "f", nil, nil, nil, Deferred(&small))
	if err != nil || st.Unhashed() || len(st.Entry.Chunks) == 0 || small != 10 {
		t.Fatalf("past the budget: unhashed %v, %d chunks, budget %d, %v", st.Unhashed(), len(st.Entry.Chunks), small, err)
	}
}
