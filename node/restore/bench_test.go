package restore

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/node/history"
	"github.com/vigil-mesh/vigil/node/index"
	"github.com/vigil-mesh/vigil/store"
)

func randBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// BenchmarkRestoreLargeFiles restores 4 files of 32 MiB from a replica
// built by hand (no cluster): the local data path only. The index entries
// carry the files' mtimes, as the applier records them, so the restore
// takes the path it takes on a real replica.
func BenchmarkRestoreLargeFiles(b *testing.B) {
	dir := b.TempDir()
	db, err := store.OpenDB(filepath.Join(dir, "index.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	h, err := history.Open(dir, "src", "f")
	if err != nil {
		b.Fatal(err)
	}
	root := filepath.Join(dir, "replicas", "src", "f")
	os.MkdirAll(root, 0o700)
	d := &Replica{DB: db, History: h, Root: root, Source: "src", SourceName: "src", Folder: "f",
		Rows: index.Replica("src", "f"), DataDir: dir, Log: slog.New(slog.DiscardHandler)}
	var total int64
	for i := range 4 {
		p := filepath.Join(root, "large"+string(rune('0'+i)))
		os.WriteFile(p, randBytes(uint64(i), 32<<20), 0o644)
		chunks, n, err := baseline.ChunkFile(context.Background(), p, nil)
		if err != nil {
			b.Fatal(err)
		}
		total += n
		fi, err := os.Stat(p)
		if err != nil {
			b.Fatal(err)
		}
		e := &baseline.Entry{Path: filepath.Base(p), Kind: baseline.KindFile, Mode: 0o644, MTime: fi.ModTime(), Size: n, Chunks: chunks}
		db.Update(func(tx *store.Tx) error { return d.Rows.Files().Put(tx, e) })
	}
	db.Update(func(tx *store.Tx) error { return d.Rows.PutBaselineDone(tx, 1, time.Now()) })
	b.SetBytes(total)
	b.ResetTimer()
	var cpu time.Duration
	for i := 0; i < b.N; i++ {
		to := filepath.Join(b.TempDir(), "out")
		c0 := cpuTime()
		if _, err := Restore(context.Background(), d, RestoreRequest{Source: "src", Folder: "f", To: to}, nil); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - c0
		b.StopTimer()
		os.RemoveAll(to)
		b.StartTimer()
	}
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
}

// cpuTime is the CPU time (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
