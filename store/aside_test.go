package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHoldDBRefusesAnIndexOpenElsewhereAndSetAsideMovesItOutOfTheWay(t *testing.T) {
	p := filepath.Join(t.TempDir(), "index.db")
	db, err := OpenDB(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *Tx) error { return tx.Put([]string{"b"}, []byte("k"), []byte("old")) }); err != nil {
		t.Fatal(err)
	}
	if h, err := HoldDB(p); !errors.Is(err, ErrLocked) || !strings.Contains(fmt.Sprint(err), p) {
		if h != nil {
			h.Release()
		}
		t.Fatalf("HoldDB of an open index: %v; want ErrLocked naming %s", err, p)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	h, err := HoldDB(p)
	if err != nil {
		t.Fatal(err)
	}
	// While held, the node cannot open it.
	if db, err := OpenDB(p); !errors.Is(err, ErrLocked) {
		if err == nil {
			db.Close()
		}
		t.Fatalf("OpenDB of a held index: %v; want ErrLocked", err)
	}
	at := time.Date(2026, 12, 1, 3, 4, 5, 0, time.UTC)
	aside, err := h.SetAside(at)
	if err != nil {
		t.Fatal(err)
	}
	if want := p + ".damaged-20261201T030405Z"; aside != want {
		t.Errorf("set aside as %s, want %s", aside, want)
	}
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("index still at %s after SetAside: %v", p, err)
	}
	old, err := OpenDB(aside)
	if err != nil {
		t.Fatal(err)
	}
	old.View(func(tx *Tx) error {
		if got := string(tx.Get([]string{"b"}, []byte("k"))); got != "old" {
			t.Errorf("the file set aside holds %q, want what was written", got)
		}
		return nil
	})
	old.Close()

	// A second file set aside in the same second gets a name of its own.
	fresh, err := OpenDB(p)
	if err != nil {
		t.Fatal(err)
	}
	fresh.Close()
	h, err = HoldDB(p)
	if err != nil {
		t.Fatal(err)
	}
	again, err := h.SetAside(at)
	if err != nil {
		t.Fatal(err)
	}
	if again == aside || !strings.HasPrefix(again, aside) {
		t.Errorf("second SetAside in the same second: %s; want a name of its own next to %s", again, aside)
	}
	if _, err := HoldDB(filepath.Join(t.TempDir(), "none.db")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("HoldDB of a missing file: %v; want fs.ErrNotExist", err)
	}
}
