package journal

import (
	"fmt"
	"sync"
	"testing"
)

func BenchmarkAppend4KiB(b *testing.B) {
	for _, goroutines := range []int{1, 8} {
		b.Run(fmt.Sprintf("goroutines=%d", goroutines), func(b *testing.B) {
			j, err := Open(b.TempDir(), WithSync(SyncGroup), WithLogger(discardLogger()))
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			payload := make([]byte, 4096)
			b.SetBytes(int64(len(payload)))
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N/goroutines + 1
			for range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range per {
						if _, err := j.Append(payload); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(j.fsyncs.Load())/float64(per*goroutines), "fsyncs/op")
		})
	}
}

func BenchmarkRead(b *testing.B) {
	const records = 4096
	j, err := Open(b.TempDir(), WithSync(SyncNone), WithSegmentSize(4<<20), WithLogger(discardLogger()))
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	payload := make([]byte, 4096)
	for range records {
		if _, err := j.Append(payload); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(records * int64(len(payload)))
	for b.Loop() {
		n := 0
		if err := j.Read(1, func(Record) error { n++; return nil }); err != nil || n != records {
			b.Fatalf("read %d records: %v", n, err)
		}
	}
}
