package wire

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/vigil-mesh/vigil/baseline"
)

func sampleCIDs() []cid.Cid {
	return []cid.Cid{baseline.ChunkCID([]byte("a")), baseline.ChunkCID([]byte("b")), baseline.ChunkCID(bytes.Repeat([]byte{1}, 100))}
}

func sampleEntries() []*baseline.Entry {
	mt := time.Unix(1700000000, 5)
	d := []byte("hello")
	return []*baseline.Entry{
		{Path: "d", Kind: baseline.KindDir, Mode: 0o755, MTime: mt},
		{Path: "d/f", Kind: baseline.KindFile, Mode: 0o644, MTime: mt, Size: int64(len(d)),
			Chunks: []baseline.Chunk{{CID: baseline.ChunkCID(d), Size: uint32(len(d))}}},
		{Path: "d/l", Kind: baseline.KindSymlink, Mode: 0o777, MTime: mt, Target: "f", Size: 1},
	}
}

func mustMalformed(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("%s: err = %v, want ErrMalformed", what, err)
	}
}

func TestStreamRequestsRoundTripAndRefuseTrailingBytes(t *testing.T) {
	f, cids, err := DecodeChunksReq(EncodeChunksReq("docs", sampleCIDs()))
	if err != nil || f != "docs" || len(cids) != 3 || !cids[2].Equals(sampleCIDs()[2]) {
		t.Fatalf("chunks request: %q %v %v", f, cids, err)
	}
	_, _, err = DecodeChunksReq(append(EncodeChunksReq("docs", sampleCIDs()), 0))
	mustMalformed(t, "chunks request with a trailing byte", err)
	many := make([]cid.Cid, MaxCIDsPerRequest+1)
	for i := range many {
		many[i] = sampleCIDs()[0]
	}
	_, _, err = DecodeChunksReq(EncodeChunksReq("docs", many))
	mustMalformed(t, "too many CIDs", err)

	f, s, err := DecodeFolderSeq(EncodeFolderSeq("docs", 1<<40))
	if err != nil || f != "docs" || s != 1<<40 {
		t.Fatalf("journal request: %q %d %v", f, s, err)
	}
	f, p, err := DecodePathReq(EncodePathReq("docs", "a/b c"))
	if err != nil || f != "docs" || p != "a/b c" {
		t.Fatalf("path request: %q %q %v", f, p, err)
	}
	for _, bad := range []string{"../x", "/etc", "a//b", ""} {
		_, _, err := DecodePathReq(EncodePathReq("docs", bad))
		mustMalformed(t, "path request "+bad, err)
	}
	if f, err := DecodeFolder(EncodeFolder("docs")); err != nil || f != "docs" {
		t.Fatalf("snapshot request: %q %v", f, err)
	}
	_, err = DecodeFolder(nil)
	mustMalformed(t, "empty snapshot request", err)
}

func TestStreamAnswersRoundTrip(t *testing.T) {
	h := Head{Seq: 7, Entries: 3, Total: 1 << 40}
	if got, err := DecodeHead(EncodeHead(h)); err != nil || got != h {
		t.Fatalf("head %+v %v", got, err)
	}
	_, err := DecodeHead(append(EncodeHead(h), 1))
	mustMalformed(t, "head with trailing byte", err)
	if s, err := DecodeSeq(EncodeSeq(42)); err != nil || s != 42 {
		t.Fatalf("seq %d %v", s, err)
	}
	es, err := DecodeEntries(EncodeEntries(sampleEntries()))
	if err != nil || len(es) != 3 || es[1].Path != "d/f" || !es[1].Root().Equals(sampleEntries()[1].Root()) {
		t.Fatalf("entries %+v %v", es, err)
	}
	body := AppendChunk(nil, []byte("abc"))
	body = AppendMissing(body)
	body = AppendChunk(body, []byte("z"))
	got, err := DecodeChunks(body, 3)
	if err != nil || string(got[0]) != "abc" || got[1] != nil || string(got[2]) != "z" {
		t.Fatalf("chunks %q %v", got, err)
	}
	_, err = DecodeChunks(body, 2)
	mustMalformed(t, "chunks frame with an extra answer", err)
	_, err = DecodeChunks(body, 4)
	mustMalformed(t, "chunks frame one answer short", err)

	r := Record{Seq: 9, Time: time.Unix(1, 2), Payload: []byte("payload")}
	rr, err := DecodeRecord(AppendRecord(nil, r))
	if err != nil || rr.Seq != 9 || !rr.Time.Equal(r.Time) || string(rr.Payload) != "payload" {
		t.Fatalf("record %+v %v", rr, err)
	}
	_, err = DecodeRecord(AppendRecord(nil, Record{Seq: 0, Time: time.Unix(1, 0)}))
	mustMalformed(t, "record seq 0", err)

	a := Ack{Folder: "docs", Applied: 5, Baseline: true, DoneBytes: 10, TotalBytes: 20, AppliedAt: time.Unix(3, 4)}
	ga, err := DecodeAck(EncodeAck(a))
	if err != nil || ga.Folder != a.Folder || ga.Applied != 5 || !ga.Baseline || ga.DoneBytes != 10 || ga.TotalBytes != 20 || !ga.AppliedAt.Equal(a.AppliedAt) {
		t.Fatalf("ack %+v %v", ga, err)
	}
	a.Errors = []AckError{{Path: "x", Err: "permission denied", Since: time.Unix(5, 0)}, {Err: "no space left on device"}}
	ga, err = DecodeAck(EncodeAck(a))
	if err != nil || len(ga.Errors) != 2 || ga.Errors[0].Path != "x" || ga.Errors[1].Err != "no space left on device" || ga.MoreErrors != 0 {
		t.Fatalf("ack errors %+v %v", ga, err)
	}
	long := strings.Repeat("e", 2000)
	a.Errors = nil
	for i := range 200 {
		a.Errors = append(a.Errors, AckError{Path: strings.Repeat("p", 1000) + string(rune('a'+i%26)), Err: long})
	}
	enc := EncodeAck(a)
	ga, err = DecodeAck(enc)
	if err != nil || len(enc) > MaxAckFrame || len(ga.Errors)+int(ga.MoreErrors) != 200 || len(ga.Errors[0].Err) != 512 {
		t.Fatalf("an ack with 200 long errors: %d bytes, %d errors + %d more, %v", len(enc), len(ga.Errors), ga.MoreErrors, err)
	}
	a.Errors = nil
	// pending paths; an ack of an older node ends before the field
	a.Pending = 3
	enc = EncodeAck(a)
	if ga, err = DecodeAck(enc); err != nil || ga.Pending != 3 {
		t.Fatalf("ack with 3 pending paths: %+v %v", ga, err)
	}
	if ga, err = DecodeAck(enc[:len(enc)-1]); err != nil || ga.Pending != 0 || ga.Applied != 5 {
		t.Fatalf("ack of an older node (no pending field): %+v %v", ga, err)
	}
	a.Pending = 0
	bad := EncodeAck(a)
	bad[len("docs")+2] = 7 // the baseline flag
	_, err = DecodeAck(bad)
	mustMalformed(t, "ack with flag 7", err)
}

func TestPubsubMessagesRoundTripAndRecordsMustBeConsecutive(t *testing.T) {
	p, err := DecodePub(EncodeHeartbeat(77))
	if err != nil || p.Type != PubHeartbeat || p.Head != 77 {
		t.Fatalf("heartbeat %+v %v", p, err)
	}
	p, err = DecodePub(EncodeAnnounce(Record{Seq: 3, Time: time.Unix(5, 0), Payload: []byte("dropped")}))
	if err != nil || p.Type != PubAnnounce || p.Records[0].Seq != 3 || len(p.Records[0].Payload) != 0 {
		t.Fatalf("announce %+v %v", p, err)
	}
	var pk RecordPacker
	var msgs [][]byte
	big := bytes.Repeat([]byte{1}, 100<<10)
	for s := uint64(1); s <= 6; s++ {
		if m := pk.Add(Record{Seq: s, Time: time.Unix(int64(s), 0), Payload: big}); m != nil {
			msgs = append(msgs, m)
		}
	}
	msgs = append(msgs, pk.Flush())
	var seqs []uint64
	for _, m := range msgs {
		if len(m) > MaxPubInline+64 {
			t.Fatalf("message of %d bytes", len(m))
		}
		p, err := DecodePub(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Records {
			seqs = append(seqs, r.Seq)
			if !bytes.Equal(r.Payload, big) {
				t.Fatal("payload changed")
			}
		}
	}
	if !reflect.DeepEqual(seqs, []uint64{1, 2, 3, 4, 5, 6}) || len(msgs) < 3 {
		t.Fatalf("seqs %v in %d messages", seqs, len(msgs))
	}
	gap := []byte{PubRecords}
	gap = AppendBytes(gap, AppendRecord(nil, Record{Seq: 1, Time: time.Unix(1, 0), Payload: []byte{1}}))
	gap = AppendBytes(gap, AppendRecord(nil, Record{Seq: 3, Time: time.Unix(1, 0), Payload: []byte{1}}))
	_, err = DecodePub(gap)
	mustMalformed(t, "records 1 and 3 in one message", err)
	for _, bad := range [][]byte{nil, {0x7f}, {PubRecords}, {PubHeartbeat}} {
		_, err := DecodePub(bad)
		mustMalformed(t, "bad pubsub message", err)
	}
}

func TestRemoteErrorIsCutTo4KiB(t *testing.T) {
	err := DecodeError(bytes.Repeat([]byte("x"), 10000))
	var re *RemoteError
	if !errors.As(err, &re) || len(re.Msg) != 4096 || !IsRemote(err) {
		t.Fatalf("%T %d", err, len(re.Msg))
	}
}
