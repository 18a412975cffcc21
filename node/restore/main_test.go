package restore

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: the
// workers of a restore end before Restore returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
