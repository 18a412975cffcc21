// Package treediff compares a replica tree with its source the way vigil
// promises to reproduce it: entry kinds, file content, permission bits,
// modification times (files, directories and symlinks themselves), symlink
// targets, empty directories, and nothing extra. The demo uses it to show
// that replicas match; the tests use it to check them.
package treediff

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Diff compares the tree under dst with the one under src (the roots
// themselves are not compared). It returns one line per difference, each
// naming the path at fault, and the number of source entries compared.
// visit, if not nil, is called with every source entry. err reports a
// source that could not be read; what cannot be read in dst is a
// difference.
func Diff(src, dst string, visit func(rel string, fi fs.FileInfo)) (diffs []string, n int, err error) {
	seen := make(map[string]bool)
	err = filepath.WalkDir(src, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		seen[rel] = true
		n++
		a, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if visit != nil {
			visit(rel, a)
		}
		q := filepath.Join(dst, rel)
		b, err := os.Lstat(q)
		if err != nil {
			diffs = append(diffs, "missing in replica: "+rel)
			if a.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if a.Mode().Type() != b.Mode().Type() {
			diffs = append(diffs, fmt.Sprintf("%s: type %v in source, %v in replica", rel, a.Mode().Type(), b.Mode().Type()))
			if a.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if a.Mode()&fs.ModeSymlink == 0 && a.Mode().Perm() != b.Mode().Perm() {
			diffs = append(diffs, fmt.Sprintf("%s: mode %v in source, %v in replica", rel, a.Mode().Perm(), b.Mode().Perm()))
		}
		if !a.ModTime().Equal(b.ModTime()) {
			diffs = append(diffs, fmt.Sprintf("%s: mtime %s in source, %s in replica", rel,
				a.ModTime().Format(time.RFC3339Nano), b.ModTime().Format(time.RFC3339Nano)))
		}
		switch {
		case a.Mode()&fs.ModeSymlink != 0:
			ta, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if tb, err := os.Readlink(q); err != nil || ta != tb {
				diffs = append(diffs, fmt.Sprintf("%s: symlink to %q in source, %q in replica", rel, ta, tb))
			}
		case a.Mode().IsRegular():
			ha, err := fileHash(p)
			if err != nil {
				return err
			}
			if hb, err := fileHash(q); err != nil {
				diffs = append(diffs, fmt.Sprintf("%s: unreadable in replica: %v", rel, err))
			} else if !bytes.Equal(ha, hb) {
				diffs = append(diffs, rel+": content differs")
			}
		}
		return nil
	})
	if err != nil {
		return diffs, n, fmt.Errorf("read source %s: %w", src, err)
	}
	filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dst && errors.Is(err, fs.ErrNotExist) {
				diffs = append(diffs, "replica directory "+dst+" does not exist")
			} else {
				diffs = append(diffs, fmt.Sprintf("replica unreadable: %v", err))
			}
			return nil
		}
		rel, _ := filepath.Rel(dst, p)
		if rel != "." && !seen[rel] {
			diffs = append(diffs, "extra in replica: "+rel)
			if d.IsDir() {
				return filepath.SkipDir
			}
		}
		return nil
	})
	return diffs, n, nil
}

func fileHash(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}
