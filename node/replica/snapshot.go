package replica

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-mesh/vigil/baseline"
)

// SourceSnapshot returns the source's current entries and the journal seq
// they are current at, when the source is online and this replica is live
// with nothing left to apply (so that verify can compare them with the
// replica's index); otherwise an error says why not.
func (r *Replica) SourceSnapshot(ctx context.Context) (uint64, []baseline.Entry, error) {
	if !r.net.Connected(r.source) {
		return 0, nil, errors.New("source offline")
	}
	if !r.Status().BaselineOK {
		return 0, nil, errors.New("baseline not done")
	}
	// let the replica handle what it has received first
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := r.Sync(sctx)
	cancel()
	if err != nil {
		return 0, nil, err
	}
	if st := r.Status(); st.Head > st.Applied {
		return 0, nil, fmt.Errorf("replica behind the source (seq %d of %d)", st.Applied, st.Head)
	}
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	snap, err := r.src.Snapshot(fctx)
	if err != nil {
		return 0, nil, err
	}
	return snap.Seq, snap.Ents, nil
}
