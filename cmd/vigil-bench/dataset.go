package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// dataset is a generated tree of random files.
type dataset struct {
	name  string
	desc  string
	dir   string
	files int
	bytes int64
}

// newRand returns a fast deterministic generator of incompressible bytes.
func newRand(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return rand.NewChaCha8(s)
}

// genSmallFiles writes dataset A: files of 1-64 KiB of random data in a
// 10x10x10 tree of directories, ~20 files per leaf directory (20,000 files
// at scale 1).
func genSmallFiles(ctx context.Context, dir string, scale float64) (dataset, error) {
	return genFiles(ctx, dir, "A", scale, 1024, 64<<10)
}

// genTinyFiles writes dataset C: files of 100 B-4 KiB, laid out as
// dataset A (20,000 files at scale 1): what costs per file, not per byte.
func genTinyFiles(ctx context.Context, dir string, scale float64) (dataset, error) {
	return genFiles(ctx, dir, "C", scale, 100, 4<<10)
}

// genFiles writes 20,000*scale files of minSize-maxSize random bytes, ~20
// per leaf directory of a 10x10xN tree.
func genFiles(ctx context.Context, dir, name string, scale float64, minSize, maxSize int) (dataset, error) {
	nfiles := max(int(20000*scale+0.5), 1)
	ds := dataset{name: name, dir: dir}
	r := newRand(1)
	pick := rand.New(newRand(2))
	buf := make([]byte, maxSize)
	const perDir = 20
	ndirs := (nfiles + perDir - 1) / perDir
	for i := 0; i < nfiles; i++ {
		if i%500 == 0 && ctx.Err() != nil {
			return ds, ctx.Err()
		}
		d := i / perDir
		sub := filepath.Join(dir, fmt.Sprintf("d%d", d%10), fmt.Sprintf("d%d", (d/10)%10), fmt.Sprintf("d%d", d/100))
		if i%perDir == 0 {
			if err := os.MkdirAll(sub, 0o755); err != nil {
				return ds, err
			}
		}
		size := minSize + pick.IntN(maxSize-minSize+1)
		r.Read(buf[:size])
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%05d.bin", i)), buf[:size], 0o644); err != nil {
			return ds, err
		}
		ds.files++
		ds.bytes += int64(size)
	}
	ds.desc = fmt.Sprintf("%d files of %s-%s in %d directories (3 levels)", ds.files, fmtBytes(int64(minSize)), fmtBytes(int64(maxSize)), ndirs)
	return ds, nil
}

// genLargeFiles writes dataset B: 4 files of 256 MiB (times scale) of
// random data.
func genLargeFiles(ctx context.Context, dir string, scale float64) (dataset, error) {
	size := max(int64(256*(1<<20)*scale), 1<<20)
	ds := dataset{name: "B", dir: dir}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ds, err
	}
	for i := 0; i < 4; i++ {
		if err := writeRandomFile(ctx, filepath.Join(dir, fmt.Sprintf("large%d.bin", i)), size, uint64(100+i)); err != nil {
			return ds, err
		}
		ds.files++
		ds.bytes += size
	}
	ds.desc = fmt.Sprintf("4 files of %s", fmtBytes(size))
	return ds, nil
}

// writeRandomFile writes size random bytes to path.
func writeRandomFile(ctx context.Context, path string, size int64, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	r := newRand(seed)
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		if err := ctx.Err(); err != nil {
			f.Close()
			return err
		}
		n := int(min(left, int64(len(buf))))
		r.Read(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		left -= int64(n)
	}
	return f.Close()
}

// warm reads every file under dir once so that both tools start from the
// page cache; it returns the bytes read.
func warm(ctx context.Context, dir string) (int64, error) {
	var total int64
	buf := make([]byte, 1<<20)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := io.CopyBuffer(io.Discard, f, buf)
		total += n
		return err
	})
	return total, err
}

// compareTrees checks that every regular file under src exists under dst
// with the same content, and that dst has no extra regular files. It
// returns the number of files compared.
func compareTrees(ctx context.Context, src, dst string) (int, error) {
	seen := map[string]bool{}
	n := 0
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(src, p)
		seen[rel] = true
		n++
		return sameFile(p, filepath.Join(dst, rel))
	})
	if err != nil {
		return n, err
	}
	err = filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(dst, p)
		if !seen[rel] {
			return fmt.Errorf("%s: extra file in the copy", p)
		}
		return nil
	})
	return n, err
}

// errDiffer reports two files with different content.
var errDiffer = errors.New("content differs")

// sameFile compares two files byte by byte.
func sameFile(a, b string) error {
	fa, err := os.Open(a)
	if err != nil {
		return err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return err
	}
	defer fb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	var off int64
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return fmt.Errorf("%s vs %s at offset ~%d: %w", a, b, off, errDiffer)
		}
		off += int64(na)
		aEnd := ea == io.EOF || ea == io.ErrUnexpectedEOF
		bEnd := eb == io.EOF || eb == io.ErrUnexpectedEOF
		switch {
		case aEnd && bEnd:
			return nil
		case ea != nil && !aEnd:
			return ea
		case eb != nil && !bEnd:
			return eb
		case aEnd != bEnd:
			return fmt.Errorf("%s vs %s: sizes differ: %w", a, b, errDiffer)
		}
	}
}
