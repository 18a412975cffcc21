package main

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-mesh/vigil/node/control"

	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"github.com/vigil-mesh/vigil/node"
)

// Unit tests of the table formatting of status and lag and of the baseline
// progress bar of `vigil run`; lag_test.go runs them against real nodes.

func TestHumanFormatsReadLikeAPerson(t *testing.T) {
	now := time.Date(2026, 11, 25, 16, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) *time.Time { t := now.Add(-d); return &t }
	for _, c := range []struct{ got, want string }{
		{humanBytes(0), "0 B"},
		{humanBytes(1023), "1023 B"},
		{humanBytes(1536), "1.50 KiB"},
		{humanBytes(30000), "29.3 KiB"},
		{humanBytes(200 << 20), "200 MiB"},
		{humanBytes(3 << 30), "3.00 GiB"},
		{humanSeconds(0), "0"},
		{humanSeconds(0.354), "0.35"},
		{humanSeconds(12.44), "12.4"},
		{humanSeconds(305.2), "305"},
		{humanDuration(350 * time.Millisecond), "350ms"},
		{humanDuration(185 * time.Second), "3m05s"},
		{humanDuration(2*time.Hour + 7*time.Minute), "2h07m"},
		{humanDuration(76 * time.Hour), "3d04h"},
		{relativeTime(nil, now), "never"},
		{relativeTime(ago(300*time.Millisecond), now), "now"},
		{relativeTime(ago(2*time.Second), now), "2s ago"},
		{relativeTime(ago(185*time.Second), now), "3m05s ago"},
		{relativeTime(ago(-3*time.Second), now), "in 3s"},
		{shortID("12D3KooWLRPJAA5o6ypy9EcJwZNzVtrrTqYcaHZCmb8DjCWD9P5Q"), "12D3KooW...WD9P5Q"},
		{percent(1, 3), "33%"},
		{percent(5, 0), "-"},
		{textBar(5, 10, 10), "[=====>    ]"},
		{textBar(0, 10, 4), "[    ]"},
		{textBar(10, 10, 4), "[====]"},
		{cellText("a\tb\x1b[2Jc"), "a b?[2Jc"},
		{cellText(""), "-"},
		{cellText("x\u009b2Jy\xff"), "x?2Jy?"},
		{quotePath("notes/plain name.txt"), "notes/plain name.txt"},
		{quotePath("a\x1b[2J\nb"), `"a\x1b[2J\nb"`},
		{quotePath("c\u009bd"), `"c\u009bd"`},
		{quotePath("bad\xffutf8"), `"bad\xffutf8"`},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestLagTableSortsPairsAndDrawsBaselineProgress(t *testing.T) {
	now := time.Date(2026, 11, 25, 16, 0, 0, 0, time.UTC)
	applied := now.Add(-2 * time.Second)
	eta := 64.2
	pairs := []control.LagPair{
		{Source: "S2", SourceName: "laptop", Folder: "photos", Target: "T1", TargetName: "nas", State: control.StateBaseline,
			BaselineDoneBytes: 512 << 20, BaselineTotalBytes: 1 << 30, LagBytes: 512 << 20, LagSeconds: 61,
			BaselineBytesPerSecond: 8 << 20, BaselineETASeconds: &eta},
		{Source: "S3", SourceName: "phone", Folder: "dcim", Target: "T1", TargetName: "nas", State: control.StateBaseline,
			BaselineTotalBytes: 1 << 20, LagBytes: 1 << 20},
		{Source: "S2", SourceName: "laptop", Folder: "docs", Target: "T2", TargetName: "nas", State: control.StateCatchingUp,
			HeadSeq: 120, AppliedSeq: 118, LagSeq: 2, LagBytes: 8192, LagSeconds: 0.35, LastApplied: &applied},
		{Source: "S1", SourceName: "desk", Folder: "docs", Target: "T3", TargetName: "", State: control.StateLive,
			HeadSeq: 7, AppliedSeq: 7, LastApplied: &applied},
		{Source: "S2", SourceName: "laptop", Folder: "docs", Target: "T1", TargetName: "cloud", State: control.StateOffline,
			HeadSeq: 120, AppliedSeq: 100, LagSeq: 20, LagBytes: 3 << 20, LagSeconds: 4000},
	}
	var b bytes.Buffer
	writeLagTable(&b, pairs, now)
	want := `SOURCE  FOLDER  BACKUP  STATE        SEQ LAG       BYTES     SECONDS  LAST APPLIED
desk    docs    T3      live         0 (7/7)       0 B       0        2s ago
laptop  docs    cloud   offline      20 (100/120)  3.00 MiB  4000     never
laptop  docs    nas     catching-up  2 (118/120)   8.00 KiB  0.35     2s ago
laptop  photos  nas     baseline     0 (0/0)       512 MiB   61.0     never
phone   dcim    nas     baseline     0 (0/0)       1.00 MiB  0        never

BASELINE              PROGRESS                              DONE                 RATE        ETA
laptop/photos -> nas  [===============>              ] 50%  512 MiB of 1.00 GiB  8.00 MiB/s  1m04s
phone/dcim -> nas     [                              ] 0%   0 B of 1.00 MiB      -           -
`
	if b.String() != want {
		t.Errorf("lag table:\n%s\nwant:\n%s", b.String(), want)
	}
	if got := len(pairsBehind(pairs)); got != 4 {
		t.Errorf("pairsBehind = %d pairs, want 4", got)
	}
}

func TestLagTableSaysWhenThereAreNoPairs(t *testing.T) {
	var b bytes.Buffer
	writeLagTable(&b, nil, time.Now())
	if !strings.HasPrefix(b.String(), "no pairs:") || strings.Count(b.String(), "\n") != 1 {
		t.Errorf("got %q", b.String())
	}
}

func TestWatchFrameRedrawsInPlace(t *testing.T) {
	var b bytes.Buffer
	writeWatchFrame(&b, true, "12D3KooWLRPJAA5o6ypy9EcJwZNzVtrrTqYcaHZCmb8DjCWD9P5Q", time.Now(), []byte("A\nB\n"))
	s := b.String()
	if !strings.HasPrefix(s, "\x1b[2J\x1b[H") || !strings.HasSuffix(s, "A\x1b[K\nB\x1b[K\n\x1b[J") {
		t.Errorf("first frame = %q", s)
	}
	b.Reset()
	writeWatchFrame(&b, false, "x", time.Now(), []byte("A\n"))
	if strings.Contains(b.String(), "\x1b[2J") || !strings.HasPrefix(b.String(), "\x1b[H") {
		t.Errorf("later frame clears the screen instead of overwriting: %q", b.String())
	}
}

func TestStatusTableListsNodePeersFoldersAndReplicas(t *testing.T) {
	now := time.Date(2026, 11, 25, 16, 0, 0, 0, time.UTC)
	st := control.StatusReport{
		ID: "12D3KooWLRPJAA5o6ypy9EcJwZNzVtrrTqYcaHZCmb8DjCWD9P5Q", Name: "laptop",
		Addrs: []string{"/ip4/127.0.0.1/tcp/4001"}, Started: now.Add(-185 * time.Second), JournalBytes: 4096,
		Peers: []control.PeerReport{
			{ID: "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo", Name: "nas", Connected: true,
				Addrs: []string{"/ip4/10.0.0.2/tcp/4001", "/ip4/10.0.0.2/tcp/4001"}, RTTMillis: 0.42},
			{ID: "12D3KooWBhMbLvQGgqByteXqZMuN7ZN3DZ7vPz1cbMbEnJXBz9wW", Name: "cloud", Addrs: []string{}},
		},
		Folders: []control.FolderReport{{ID: "docs", Path: "/home/me/Documents", Entries: 12, Bytes: 30000,
			BackupTo: []string{"nas", "cloud"}, JournalFirst: 3, JournalLast: 9, JournalBytes: 4096}},
		Replicas: []control.ReplicaReport{{Source: "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo", SourceName: "nas",
			Folder: "music", State: control.StateBaseline, Files: 3, Bytes: 1 << 20, AppliedSeq: 0, HeadSeq: 4,
			BaselineDoneBytes: 1 << 20, BaselineTotalBytes: 4 << 20, ChunksFetched: 64, LastError: "fetch: stream reset\nretrying"},
			{Source: "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo", SourceName: "nas", Folder: "notes",
				State: control.StateLive, Files: 2, Bytes: 319000, AppliedSeq: 1, HeadSeq: 1}},
	}
	var b bytes.Buffer
	writeStatus(&b, st, now)
	out := b.String()
	for _, re := range []string{
		`(?m)^node +laptop \(12D3KooWLRPJAA5o6ypy9EcJwZNzVtrrTqYcaHZCmb8DjCWD9P5Q\)$`,
		`(?m)^addrs +/ip4/127\.0\.0\.1/tcp/4001$`,
		`(?m)^up since +.* \(3m05s\)$`,
		`(?m)^journal +4\.00 KiB$`,
		`(?m)^PEERS\nNAME +ID +CONNECTED +ADDRS +RTT\ncloud +12D3KooW\.\.\.XBz9wW +no +- +-\nnas +12D3KooW\.\.\.CVe2Xo +yes +/ip4/10\.0\.0\.2/tcp/4001 +0\.4ms$`,
		`(?m)^FOLDERS\nID +PATH +ENTRIES +SIZE +JOURNAL SEQS +JOURNAL SIZE +BACKUPS\ndocs +/home/me/Documents +12 +29\.3 KiB +3\.\.9 +4\.00 KiB +nas, cloud$`,
		`(?m)^REPLICAS\nSOURCE +FOLDER +STATE +FILES +SIZE +APPLIED/HEAD +BASELINE +CHUNKS FETCHED +LAST ERROR\nnas +music +baseline +3 +1\.00 MiB +0/4 +25% +64 +fetch: stream reset retrying\nnas +notes +live +2 +312 KiB +1/1 +100% +0 +-$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("status output does not match %s:\n%s", re, out)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached after 10s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

func TestBaselineProgressDrawsBarKeepsLogsAboveAndErasesWhenDone(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	out := &syncBuffer{}
	src := peer.ID("source-1")
	p := newBaselineProgress(out, func(id peer.ID) string { return "laptop" })
	p.Event(node.BaselineEvent{Source: src, Folder: "docs", DoneBytes: 3 << 20, TotalBytes: 10 << 20})
	waitFor(t, "bar drawn", func() bool { return strings.Contains(out.String(), "baseline laptop/docs") })
	if !strings.Contains(out.String(), "30%") {
		t.Errorf("bar does not show 30%%: %q", out.String())
	}

	fmt.Fprint(p, "level=INFO msg=hello\n")
	s := out.String()
	i := strings.LastIndex(s, "level=INFO msg=hello\n")
	if i < 0 || !strings.HasSuffix(s[:i], "\r\x1b[2K") || !strings.Contains(s[i:], "baseline laptop/docs") {
		t.Errorf("log line not written above a redrawn bar: %q", s)
	}

	p.Event(node.BaselineEvent{Source: src, Folder: "docs", DoneBytes: 10 << 20, TotalBytes: 10 << 20, Finished: true})
	waitFor(t, "bar erased", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.bar == nil
	})
	if !strings.HasSuffix(out.String(), "\r\x1b[2K") {
		t.Errorf("bar not erased at the end: %q", out.String())
	}
	p.Close()
	var nilProgress *baselineProgress
	if err := nilProgress.Close(); err != nil {
		t.Errorf("Close of a nil progress: %v", err)
	}
}

func TestBaselineProgressEventNeverBlocksAndDropsOldest(t *testing.T) {
	// No drawing goroutine: the queue fills up.
	p := &baselineProgress{events: make(chan node.BaselineEvent, progressQueue)}
	const n = progressQueue + 36
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			p.Event(node.BaselineEvent{DoneBytes: int64(i)})
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Event blocked on a full queue")
	}
	if len(p.events) != progressQueue {
		t.Fatalf("queue holds %d events, want %d", len(p.events), progressQueue)
	}
	if first := (<-p.events).DoneBytes; first != n-progressQueue {
		t.Errorf("oldest kept event is #%d, want #%d (the oldest ones dropped)", first, n-progressQueue)
	}
}

func TestLagTableShowsTheSourceScanOncePerFolder(t *testing.T) {
	now := time.Date(2026, 11, 25, 16, 0, 0, 0, time.UTC)
	eta := 9.6
	listing := &control.ScanReport{First: true, Started: now.Add(-4 * time.Second), Files: 1200, Bytes: 40 << 20,
		FoundFiles: 3000, FoundBytes: 100 << 20, BytesPerSecond: 10 << 20}
	listed := &control.ScanReport{Started: now.Add(-4 * time.Second), Files: 1200, Bytes: 40 << 20,
		FoundFiles: 5000, FoundBytes: 160 << 20, Listed: true, BytesPerSecond: 12 << 20, ETASeconds: &eta}
	pairs := []control.LagPair{
		{Source: "S", SourceName: "laptop", Folder: "docs", Target: "T1", TargetName: "nas", State: control.StateBaseline, SourceScan: listing},
		{Source: "S", SourceName: "laptop", Folder: "docs", Target: "T2", TargetName: "cloud", State: control.StateBaseline, SourceScan: listing},
		{Source: "S", SourceName: "laptop", Folder: "photos", Target: "T1", TargetName: "nas", State: control.StateLive, SourceScan: listed},
	}
	var b bytes.Buffer
	writeLagTable(&b, pairs, now)
	want := `
SCANNING
  laptop/docs  first scan: 1200 of 3000+ files read (40.0 MiB of 100 MiB+), still listing, 10.0 MiB/s
  laptop/photos  scan: 1200 of 5000 files read (40.0 MiB of 160 MiB), 12.0 MiB/s, ETA 10s
`
	if !strings.Contains(b.String(), want) {
		t.Errorf("lag table:\n%s\nwant it to hold:\n%s", b.String(), want)
	}
}
