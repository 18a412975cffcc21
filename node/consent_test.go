package node

import (
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/vigil-mesh/vigil/node/wire"
)

func TestConsentAsksAgainUnansweredBackupsWithBackoffAndRefusalsEvery30s(t *testing.T) {
	c := newConsents()
	a, b := peer.ID("a"), peer.ID("b")
	t0 := time.Unix(1000, 0)
	c.asking(a, t0, false) // no answer: retried after 2 s, then 4 s...
	c.asking(b, t0, true)
	c.note(b, wire.Consent{Folder: "docs", Reason: "no backup_for entry"}, t0)
	if due := c.due(t0.Add(time.Second)); len(due) != 0 {
		t.Fatalf("due after 1s: %v", due)
	}
	if due := c.due(t0.Add(2 * time.Second)); !slices.Equal(due, []peer.ID{a}) {
		t.Fatalf("due after 2s: %v, want [a]", due)
	}
	c.asking(a, t0.Add(2*time.Second), false)
	if due := c.due(t0.Add(5 * time.Second)); len(due) != 0 {
		t.Fatalf("a asked again 3s after its second failure: %v", due)
	}
	if due := c.due(t0.Add(30 * time.Second)); !slices.Contains(due, b) || !slices.Contains(due, a) {
		t.Fatalf("due after 30s: %v, want a and b", due)
	}
	// a refusal stands until an ack after it
	if _, refused := c.refusal(b, "docs", time.Time{}); !refused {
		t.Fatal("refusal not reported")
	}
	if _, refused := c.refusal(b, "docs", t0.Add(time.Second)); refused {
		t.Fatal("an ack after the refusal did not clear it")
	}
}
