package rate

import (
	"testing"
	"time"
)

func TestRateMeterUsesItsWindowAndStartsOverOnANewBaseline(t *testing.T) {
	r := New(10)
	t0 := time.Unix(1000, 0)
	if _, ok := r.Rate("p"); ok {
		t.Fatal("a rate with no samples")
	}
	r.Add("p", t0, 0)
	if _, ok := r.Rate("p"); ok {
		t.Fatal("a rate from one sample")
	}
	// 1 MB/s for 5 s, then 3 MB/s: the window (10 samples) ends up all fast
	done := int64(0)
	for i := 1; i <= 5; i++ {
		done += 1e6
		r.Add("p", t0.Add(time.Duration(i)*time.Second), done)
	}
	if got, _ := r.Rate("p"); got != 1e6 {
		t.Fatalf("rate %v, want 1e6", got)
	}
	for i := 6; i <= 20; i++ {
		done += 3e6
		r.Add("p", t0.Add(time.Duration(i)*time.Second), done)
	}
	if got, _ := r.Rate("p"); got != 3e6 {
		t.Fatalf("rate %v, want 3e6 over the last window", got)
	}
	r.Add("p", t0.Add(21*time.Second), 10) // a new baseline
	if _, ok := r.Rate("p"); ok {
		t.Fatal("the meter kept samples of the previous baseline")
	}
}

func TestRoundForgetsKeysNoLongerSampled(t *testing.T) {
	r := New(10)
	t0 := time.Unix(1000, 0)
	r.Round(t0, map[string]int64{"a": 0, "b": 0})
	r.Round(t0.Add(time.Second), map[string]int64{"a": 5, "b": 7})
	if got, ok := r.Rate("b"); !ok || got != 7 {
		t.Fatalf("rate of b %v %v, want 7", got, ok)
	}
	r.Round(t0.Add(2*time.Second), map[string]int64{"a": 10})
	if _, ok := r.Rate("b"); ok {
		t.Fatal("b is still measured after a round without it")
	}
	if got, _ := r.Rate("a"); got != 5 {
		t.Fatalf("rate of a %v, want 5", got)
	}
}
