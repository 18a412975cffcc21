package journal

import (
	"errors"
	"syscall"
	"testing"
)

func TestFaultyFailsAppendsUntilHealedAndCountsCalls(t *testing.T) {
	f := NewFaulty(NewMem())
	defer f.Close()
	appendN(t, f, 1)
	f.Fail(syscall.ENOSPC)
	_, err := f.Append(payloadFor(2))
	requireNotWritable(t, "Append while failing", err, syscall.ENOSPC)
	_, err = f.AppendBatch([][]byte{payloadFor(2), payloadFor(3)})
	requireNotWritable(t, "AppendBatch while failing", err, syscall.ENOSPC)
	requireNotWritable(t, "Err while failing", f.Err(), syscall.ENOSPC)
	if f.Last() != 1 || f.Unwrap().Last() != 1 {
		t.Fatalf("Last = %d: a failed append stored something", f.Last())
	}
	f.Heal()
	if err := f.Err(); err != nil {
		t.Fatalf("Err after Heal = %v", err)
	}
	appendN(t, f, 2)
	checkRecords(t, readAll(t, f, 1), 1, 3)
	if f.Calls() != 5 || f.Failures() != 2 {
		t.Fatalf("Calls, Failures = %d, %d; want 5, 2", f.Calls(), f.Failures())
	}
}

func TestFaultyFailsTheNextNCallsOnly(t *testing.T) {
	f := NewFaulty(NewMem())
	defer f.Close()
	boom := errors.New("disk gone")
	f.FailNext(2, boom)
	for i := range 2 {
		if _, err := f.Append(payloadFor(1)); !errors.Is(err, boom) || !errors.Is(err, ErrNotWritable) {
			t.Fatalf("call %d = %v, want the injected error", i, err)
		}
	}
	if err := f.Err(); err != nil {
		t.Fatalf("Err after the failures ran out = %v", err)
	}
	appendN(t, f, 1)
	if f.Calls() != 3 || f.Failures() != 2 || f.Last() != 1 {
		t.Fatalf("Calls, Failures, Last = %d, %d, %d; want 3, 2, 1", f.Calls(), f.Failures(), f.Last())
	}
	f.FailNext(0, boom)
	appendN(t, f, 1)
}
