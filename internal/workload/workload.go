// Package workload changes a folder the way people and programs do, at
// random but reproducibly from a seed, for vigil's replication tests.
package workload

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// Bytes returns n bytes from rng.
func Bytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := rng.Uint64()
		for k := 0; k < 8; k++ {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	for i := n - n%8; i < n; i++ {
		b[i] = byte(rng.UintN(256))
	}
	return b
}

// Random applies seeded random operations to dir: create, modify in place,
// append, truncate, insert in the middle, delete, rename a file, rename a
// whole directory, chmod, set mtime, symlink, mkdir and rmdir. Many follow
// each other within microseconds; a quarter are followed by a pause of up to
// 25ms, so several hundred operations take a few seconds. It counts the
// operations done in done (may be nil) and stops early when stop is closed.
// It uses no *testing.T so that it can run in its own goroutine; an
// operation that fails (e.g. on a path a concurrent rename moved) is simply
// skipped: the comparison of the trees is what the tests check.
func Random(dir string, seed uint64, ops int, done *atomic.Int64, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	files := listFiles(dir)
	dirs := []string{""}
	abs := func(rel string) string { return filepath.Join(dir, filepath.FromSlash(rel)) }
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	write := func(rel string, data []byte, perm fs.FileMode) bool {
		p := abs(rel)
		if os.MkdirAll(filepath.Dir(p), 0o755) != nil {
			return false
		}
		return os.WriteFile(p, data, perm) == nil
	}
	for i := 0; i < ops; i++ {
		select {
		case <-stop:
			return
		default:
		}
		switch op := rng.IntN(14); {
		case op < 3 || len(files) == 0: // create
			p := path.Join(pick(dirs), fmt.Sprintf("f%d.bin", i))
			if write(p, Bytes(rng, rng.IntN(70000)), 0o644) {
				files = append(files, p)
			}
		case op == 3: // modify in place
			if f, err := os.OpenFile(abs(pick(files)), os.O_WRONLY, 0); err == nil {
				f.WriteAt(Bytes(rng, 100+rng.IntN(5000)), int64(rng.IntN(20000)))
				f.Close()
			}
		case op == 4: // append
			if f, err := os.OpenFile(abs(pick(files)), os.O_WRONLY|os.O_APPEND, 0); err == nil {
				f.Write(Bytes(rng, rng.IntN(9000)))
				f.Close()
			}
		case op == 5: // truncate
			os.Truncate(abs(pick(files)), int64(rng.IntN(3000)))
		case op == 6: // insert in the middle: rewrite the file
			p := pick(files)
			if b, err := os.ReadFile(abs(p)); err == nil {
				at := rng.IntN(len(b) + 1)
				nb := append(append(append([]byte{}, b[:at]...), Bytes(rng, 1+rng.IntN(300))...), b[at:]...)
				os.WriteFile(abs(p), nb, 0o644)
			}
		case op == 7: // delete
			k := rng.IntN(len(files))
			os.Remove(abs(files[k]))
			files = append(files[:k], files[k+1:]...)
		case op == 8: // rename a file
			k := rng.IntN(len(files))
			np := path.Join(pick(dirs), fmt.Sprintf("r%d.bin", i))
			if os.Rename(abs(files[k]), abs(np)) == nil {
				files[k] = np
			}
		case op == 9: // chmod or set mtime
			p := abs(pick(files))
			if rng.IntN(2) == 0 {
				os.Chmod(p, []fs.FileMode{0o600, 0o644, 0o755}[rng.IntN(3)])
			} else {
				ts := time.Unix(1600000000+int64(rng.IntN(100000000)), int64(rng.IntN(1e9)))
				os.Chtimes(p, ts, ts)
			}
		case op == 10: // mkdir
			d := path.Join(pick(dirs), fmt.Sprintf("d%d", i))
			if os.Mkdir(abs(d), 0o755) == nil {
				dirs = append(dirs, d)
			}
		case op == 11: // symlink, relative (dangling or not)
			target := fmt.Sprintf("target-%d", i)
			if len(files) > 0 && rng.IntN(2) == 0 {
				target = "../" + path.Base(pick(files))
			}
			os.Symlink(target, abs(path.Join(pick(dirs), fmt.Sprintf("l%d", i))))
		case op == 12: // rmdir: remove an empty directory, or a tree
			if len(dirs) < 2 {
				continue
			}
			k := 1 + rng.IntN(len(dirs)-1)
			old := dirs[k]
			if os.Remove(abs(old)) != nil { // not empty
				if rng.IntN(3) != 0 {
					continue
				}
				os.RemoveAll(abs(old))
			}
			files = dropUnder(files, old)
			dirs = dropUnder(dirs, old)
		case op == 13: // rename a whole directory
			if len(dirs) < 2 {
				continue
			}
			old := dirs[1+rng.IntN(len(dirs)-1)]
			nd := path.Join(pick(dirs), fmt.Sprintf("moved%d", i))
			if nd == old || strings.HasPrefix(nd, old+"/") || os.Rename(abs(old), abs(nd)) != nil {
				continue
			}
			for j := range files {
				if strings.HasPrefix(files[j], old+"/") {
					files[j] = nd + strings.TrimPrefix(files[j], old)
				}
			}
			for j := range dirs {
				if dirs[j] == old || strings.HasPrefix(dirs[j], old+"/") {
					dirs[j] = nd + strings.TrimPrefix(dirs[j], old)
				}
			}
		}
		if done != nil {
			done.Add(1)
		}
		if rng.IntN(4) == 0 {
			time.Sleep(time.Duration(rng.IntN(25)) * time.Millisecond) // spreads the workload in time; not a synchronisation
		}
	}
}

// dropUnder returns the paths of s that are neither dir nor under it.
func dropUnder(s []string, dir string) []string {
	var keep []string
	for _, p := range s {
		if p != dir && !strings.HasPrefix(p, dir+"/") {
			keep = append(keep, p)
		}
	}
	return keep
}

// listFiles returns the regular files under dir as slash-separated relative paths.
func listFiles(dir string) []string {
	var files []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	return files
}
