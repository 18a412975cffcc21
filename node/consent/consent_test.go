package consent

import (
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/vigil-mesh/vigil/node/wire"
)

func TestConsentAsksAgainUnansweredBackupsWithBackoffAndRefusalsEvery30s(t *testing.T) {
	c := New()
	a, b := peer.ID("a"), peer.ID("b")
	t0 := time.Unix(1000, 0)
	c.Asking(a, t0, false) // no answer: retried after 2 s, then 4 s...
	c.Asking(b, t0, true)
	c.Note(b, wire.Consent{Folder: "docs", Reason: "no backup_for entry"}, t0)
	if due := c.Due(t0.Add(time.Second)); len(due) != 0 {
		t.Fatalf("due after 1s: %v", due)
	}
	if due := c.Due(t0.Add(2 * time.Second)); !slices.Equal(due, []peer.ID{a}) {
		t.Fatalf("due after 2s: %v, want [a]", due)
	}
	c.Asking(a, t0.Add(2*time.Second), false)
	if due := c.Due(t0.Add(5 * time.Second)); len(due) != 0 {
		t.Fatalf("a asked again 3s after its second failure: %v", due)
	}
	if due := c.Due(t0.Add(30 * time.Second)); !slices.Contains(due, b) || !slices.Contains(due, a) {
		t.Fatalf("due after 30s: %v, want a and b", due)
	}
	// a refusal stands until an ack after it
	if _, refused := c.Refusal(b, "docs", time.Time{}); !refused {
		t.Fatal("refusal not reported")
	}
	if _, refused := c.Refusal(b, "docs", t0.Add(time.Second)); refused {
		t.Fatal("an ack after the refusal did not clear it")
	}
}

func TestRefusedRequestsAreKeptUntilAccepted(t *testing.T) {
	src := peer.ID("src")
	c := New()
	t0 := time.Unix(1000, 0)
	first := c.Asked(src, []wire.Consent{{Folder: "docs", Reason: "no"}, {Folder: "pics", Accepted: true}}, t0)
	if !slices.Equal(first, []string{"docs"}) {
		t.Fatalf("first refusals %v, want [docs]", first)
	}
	if again := c.Asked(src, []wire.Consent{{Folder: "docs", Reason: "no"}}, t0.Add(time.Second)); len(again) != 0 {
		t.Fatalf("a refusal known before reported again: %v", again)
	}
	c.Asked(src, []wire.Consent{{Folder: "docs", Accepted: true}}, t0.Add(2*time.Second))
	if len(c.refused) != 0 {
		t.Fatalf("an accepted folder is still refused: %v", c.refused)
	}
}
