package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

func openTestDB(t *testing.T) *DB {
	t.Helper()
	db, err := OpenDB(filepath.Join(t.TempDir(), "sub", "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestDBNestedBucketsAreCreatedOnPutAndIsolated(t *testing.T) {
	db := openTestDB(t)
	fi, err := os.Stat(db.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("index file mode = %v, want 0600", fi.Mode().Perm())
	}
	ab := []string{"a", "b"}
	abc := []string{"a", "b", "c"}
	err = db.Update(func(tx *Tx) error {
		if err := tx.Put(abc, []byte("k"), []byte("deep")); err != nil {
			return err
		}
		if err := tx.Put(ab, []byte("k"), []byte("mid")); err != nil {
			return err
		}
		return tx.Put([]string{"other"}, []byte("k"), []byte("x"))
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *Tx) error {
		if got := tx.Get(abc, []byte("k")); string(got) != "deep" {
			t.Errorf("Get a/b/c k = %q, want deep", got)
		}
		if got := tx.Get(ab, []byte("k")); string(got) != "mid" {
			t.Errorf("Get a/b k = %q, want mid", got)
		}
		if got := tx.Get(ab, []byte("c")); got != nil {
			t.Errorf("Get of a nested bucket name = %q, want nil", got)
		}
		if got := tx.Get([]string{"a", "missing"}, []byte("k")); got != nil {
			t.Errorf("Get in missing bucket = %q, want nil", got)
		}
		if n := tx.Count(ab); n != 2 { // key "k" and bucket "c"
			t.Errorf("Count a/b = %d, want 2", n)
		}
		if n := tx.Count([]string{"nope"}); n != 0 {
			t.Errorf("Count missing = %d, want 0", n)
		}
		calls := 0
		if err := tx.ForEach([]string{"nope", "x"}, func(k, v []byte) error { calls++; return nil }); err != nil {
			return err
		}
		if calls != 0 {
			t.Errorf("ForEach on missing bucket made %d calls", calls)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *Tx) error {
		if err := tx.Delete(abc, []byte("k")); err != nil {
			return err
		}
		if err := tx.Delete([]string{"missing"}, []byte("k")); err != nil {
			return fmt.Errorf("Delete in missing bucket: %w", err)
		}
		if err := tx.DeleteBucket(ab); err != nil {
			return err
		}
		if err := tx.DeleteBucket([]string{"x", "y", "z"}); err != nil {
			return fmt.Errorf("DeleteBucket missing: %w", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.View(func(tx *Tx) error {
		if tx.Get(abc, []byte("k")) != nil || tx.Count([]string{"a"}) != 0 {
			t.Errorf("a/b survived DeleteBucket")
		}
		if string(tx.Get([]string{"other"}, []byte("k"))) != "x" {
			t.Errorf("unrelated bucket lost its key")
		}
		return nil
	})
}

func TestDBEmptyBucketPathIsRejected(t *testing.T) {
	db := openTestDB(t)
	for _, path := range [][]string{nil, {"a", ""}} {
		err := db.Update(func(tx *Tx) error { return tx.Put(path, []byte("k"), []byte("v")) })
		if !errors.Is(err, ErrNoBucket) {
			t.Errorf("Put(%q) error = %v, want ErrNoBucket", path, err)
		}
	}
}

func TestDBViewRefusesWrites(t *testing.T) {
	db := openTestDB(t)
	err := db.View(func(tx *Tx) error { return tx.Put([]string{"b"}, []byte("k"), []byte("v")) })
	if err == nil {
		t.Fatal("Put inside View succeeded")
	}
}

func TestDBSeekVisitsOnlyKeysWithPrefixInOrder(t *testing.T) {
	db := openTestDB(t)
	b := []string{"seq"}
	keys := []string{"a/1", "b/1", "b/3", "b/2", "b", "ba", "c/1"}
	err := db.Update(func(tx *Tx) error {
		for _, k := range keys {
			if err := tx.Put(b, []byte(k), []byte("v"+k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	seek := func(prefix string) (got []string) {
		_ = db.View(func(tx *Tx) error {
			return tx.Seek(b, []byte(prefix), func(k, v []byte) error {
				if string(v) != "v"+string(k) {
					t.Errorf("value of %q = %q", k, v)
				}
				got = append(got, string(k))
				return nil
			})
		})
		return got
	}
	if got, want := seek("b/"), []string{"b/1", "b/2", "b/3"}; !slices.Equal(got, want) {
		t.Errorf("Seek b/ = %q, want %q", got, want)
	}
	if got := seek("zz"); len(got) != 0 {
		t.Errorf("Seek zz = %q, want none", got)
	}
	if got := seek(""); len(got) != len(keys) {
		t.Errorf("Seek with empty prefix visited %d keys, want %d", len(got), len(keys))
	}
	stop := errors.New("stop")
	n := 0
	err = db.View(func(tx *Tx) error {
		return tx.Seek(b, []byte("b"), func(k, v []byte) error { n++; return stop })
	})
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("Seek with failing fn: err=%v calls=%d, want stop after 1", err, n)
	}
}

func TestDBSeekOrdersU64KeysNumerically(t *testing.T) {
	db := openTestDB(t)
	b := []string{"log"}
	vals := []uint64{300, 2, 1 << 40, 256, 1}
	_ = db.Update(func(tx *Tx) error {
		for _, v := range vals {
			if err := tx.Put(b, U64(v), nil); err != nil {
				return err
			}
		}
		return nil
	})
	var got []uint64
	_ = db.View(func(tx *Tx) error {
		return tx.ForEach(b, func(k, _ []byte) error { got = append(got, FromU64(k)); return nil })
	})
	want := slices.Clone(vals)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("keys in order = %v, want %v", got, want)
	}
	if FromU64([]byte{1, 2}) != 0 {
		t.Error("FromU64 of a short slice is not 0")
	}
}

func TestDBBatchFromManyGoroutinesKeepsEveryWrite(t *testing.T) {
	db := openTestDB(t)
	const workers, perWorker = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				err := db.Batch(func(tx *Tx) error {
					key := fmt.Appendf(nil, "w%02d-%03d", w, i)
					if err := tx.Put([]string{"batch", "keys"}, key, key); err != nil {
						return err
					}
					// read-modify-write: correct only if retries see their own rollback
					n := FromU64(tx.Get([]string{"batch"}, []byte("count")))
					return tx.Put([]string{"batch"}, []byte("count"), U64(n+1))
				})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	_ = db.View(func(tx *Tx) error {
		if n := tx.Count([]string{"batch", "keys"}); n != workers*perWorker {
			t.Errorf("keys written = %d, want %d", n, workers*perWorker)
		}
		if n := FromU64(tx.Get([]string{"batch"}, []byte("count"))); n != workers*perWorker {
			t.Errorf("counter = %d, want %d", n, workers*perWorker)
		}
		return nil
	})
}

func TestDBReopenKeepsCommittedData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	db, err := OpenDB(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *Tx) error { return tx.Put([]string{"b"}, []byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = OpenDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *Tx) error {
		if got := tx.Get([]string{"b"}, []byte("k")); !bytes.Equal(got, []byte("v")) {
			t.Errorf("after reopen Get = %q, want v", got)
		}
		return nil
	})
}

func TestOpenDBWhileOpenFailsNamingPathAndLock(t *testing.T) {
	db := openTestDB(t)
	_, err := OpenDB(db.Path())
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second OpenDB error = %v, want ErrLocked", err)
	}
	var pe *PathError
	if !errors.As(err, &pe) || pe.Path != db.Path() {
		t.Errorf("error %v does not name path %s", err, db.Path())
	}
}
