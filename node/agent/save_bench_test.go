package agent

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/node/index"
	"github.com/vigil-mesh/vigil/store"
)

// benchEntries makes n file entries of one chunk each, 20 to a directory.
func benchEntries(n int) []*baseline.Entry {
	out := make([]*baseline.Entry, 0, n)
	for i := range n {
		data := fmt.Appendf(nil, "file %d", i)
		out = append(out, &baseline.Entry{Path: fmt.Sprintf("d%03d/e%03d/f%07d.txt", i/20000, (i/20)%1000, i),
			Kind: baseline.KindFile, Mode: 0o644, Size: int64(len(data)), MTime: time.Unix(1700000000, 0),
			Chunks: []baseline.Chunk{{CID: baseline.ChunkCID(data), Size: uint32(len(data))}}})
	}
	return out
}

// BenchmarkSaveIndex writes the index of a first scan of n files: the
// cost per row (ns/op is per row) stays flat from 20k to 100k rows. The
// "one-tx-map-order" variant is how it was written before (one
// transaction, rows in map order), for the ratio in the same run.
func BenchmarkSaveIndex(b *testing.B) {
	for _, n := range []int{20000, 100000} {
		ents := benchEntries(n)
		b.Run(fmt.Sprintf("sorted-batched/rows=%d", n), func(b *testing.B) {
			for range b.N / n {
				a := benchAgent(b)
				if err := a.saveIndex(context.Background(), ents, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("one-tx-map-order/rows=%d", n), func(b *testing.B) {
			t := index.NewTree()
			for _, e := range ents {
				t.Put(e)
			}
			for range b.N / n {
				a := benchAgent(b)
				err := a.db.Update(func(tx *store.Tx) error {
					for e := range t.All() {
						if err := a.rows.Files().Put(tx, e); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchAgent(b *testing.B) *Agent {
	b.Helper()
	b.StopTimer()
	defer b.StartTimer()
	db, err := store.OpenDB(filepath.Join(b.TempDir(), "index.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return &Agent{id: "docs", db: db, rows: index.Agent("docs"), log: slog.New(slog.DiscardHandler)}
}
