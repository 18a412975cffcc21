package wire

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/vigil-mesh/vigil/baseline"
)

// Every decoder of bytes from the network is fuzzed: it must not panic,
// must fail only with ErrMalformed, and what it accepts must re-encode to
// bytes that decode to the same value.

func fuzzErr(t *testing.T, err error) bool {
	t.Helper()
	if err == nil {
		return false
	}
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("error %v does not wrap ErrMalformed", err)
	}
	return true
}

func FuzzDecodeFolder(f *testing.F) {
	f.Add(EncodeFolder("docs"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeFolder(b)
		if fuzzErr(t, err) {
			return
		}
		if !bytes.Equal(EncodeFolder(s), b) {
			t.Fatal("round trip")
		}
	})
}

func FuzzDecodeChunksReq(f *testing.F) {
	f.Add(EncodeChunksReq("docs", sampleCIDs()))
	f.Fuzz(func(t *testing.T, b []byte) {
		folder, cids, err := DecodeChunksReq(b)
		if fuzzErr(t, err) {
			return
		}
		f2, c2, err := DecodeChunksReq(EncodeChunksReq(folder, cids))
		if err != nil || f2 != folder || len(c2) != len(cids) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzDecodeFolderSeq(f *testing.F) {
	f.Add(EncodeFolderSeq("docs", 12))
	f.Fuzz(func(t *testing.T, b []byte) {
		folder, seq, err := DecodeFolderSeq(b)
		if fuzzErr(t, err) {
			return
		}
		if f2, s2, err := DecodeFolderSeq(EncodeFolderSeq(folder, seq)); err != nil || f2 != folder || s2 != seq {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzDecodePathReq(f *testing.F) {
	f.Add(EncodePathReq("docs", "a/b"))
	f.Fuzz(func(t *testing.T, b []byte) {
		folder, p, err := DecodePathReq(b)
		if fuzzErr(t, err) {
			return
		}
		if f2, p2, err := DecodePathReq(EncodePathReq(folder, p)); err != nil || f2 != folder || p2 != p {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzDecodeHead(f *testing.F) {
	f.Add(EncodeHead(Head{Seq: 1, Entries: 2, Total: 3}))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := DecodeHead(b)
		if fuzzErr(t, err) {
			return
		}
		if h2, err := DecodeHead(EncodeHead(h)); err != nil || h2 != h {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzDecodeSeq(f *testing.F) {
	f.Add(EncodeSeq(99))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSeq(b)
		if fuzzErr(t, err) {
			return
		}
		if s2, err := DecodeSeq(EncodeSeq(s)); err != nil || s2 != s {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzDecodeEntries(f *testing.F) {
	f.Add(EncodeEntries(sampleEntries()))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := DecodeEntries(b)
		if fuzzErr(t, err) {
			return
		}
		ps := make([]*baseline.Entry, len(es))
		for i := range es {
			ps[i] = &es[i]
		}
		es2, err := DecodeEntries(EncodeEntries(ps))
		if err != nil || len(es2) != len(es) {
			t.Fatalf("round trip: %v", err)
		}
		for i := range es {
			if es2[i].Path != es[i].Path || !es2[i].SameContent(&es[i]) {
				t.Fatalf("entry %d changed", i)
			}
		}
	})
}

func FuzzDecodeChunks(f *testing.F) {
	f.Add(AppendMissing(AppendChunk(nil, []byte("abc"))), 2)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		if n < 0 || n > 4096 {
			return
		}
		got, err := DecodeChunks(b, n)
		if fuzzErr(t, err) {
			return
		}
		var enc []byte
		for _, c := range got {
			if c == nil {
				enc = AppendMissing(enc)
			} else {
				enc = AppendChunk(enc, c)
			}
		}
		if !bytes.Equal(enc, b) {
			t.Fatal("round trip")
		}
	})
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(AppendRecord(nil, Record{Seq: 1, Time: time.Unix(1, 1), Payload: []byte("x")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRecord(b)
		if fuzzErr(t, err) {
			return
		}
		r2, err := DecodeRecord(AppendRecord(nil, r))
		if err != nil || r2.Seq != r.Seq || !r2.Time.Equal(r.Time) || !bytes.Equal(r2.Payload, r.Payload) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzDecodeAck(f *testing.F) {
	f.Add(EncodeAck(Ack{Folder: "docs", Applied: 3, Baseline: true, DoneBytes: 1, TotalBytes: 2, AppliedAt: time.Unix(9, 0)}))
	f.Add(EncodeAck(Ack{Folder: "docs", Errors: []AckError{{Path: "a", Err: "no space", Since: time.Unix(1, 0)}, {Err: "disk full"}}, MoreErrors: 3}))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := DecodeAck(b)
		if fuzzErr(t, err) {
			return
		}
		a2, err := DecodeAck(EncodeAck(a))
		if err != nil || a2.Folder != a.Folder || a2.Applied != a.Applied || a2.Baseline != a.Baseline ||
			a2.DoneBytes != a.DoneBytes || a2.TotalBytes != a.TotalBytes || !a2.AppliedAt.Equal(a.AppliedAt) ||
			len(a2.Errors)+int(a2.MoreErrors-a.MoreErrors) != len(a.Errors) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzDecodePub(f *testing.F) {
	f.Add(EncodeHeartbeat(5))
	f.Add(EncodeAnnounce(Record{Seq: 2, Time: time.Unix(2, 0)}))
	var pk RecordPacker
	pk.Add(Record{Seq: 1, Time: time.Unix(1, 0), Payload: []byte("a")})
	pk.Add(Record{Seq: 2, Time: time.Unix(1, 0), Payload: []byte("bb")})
	f.Add(pk.Flush())
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePub(b)
		if fuzzErr(t, err) {
			return
		}
		var enc []byte
		switch p.Type {
		case PubHeartbeat:
			enc = EncodeHeartbeat(p.Head)
		case PubAnnounce:
			enc = EncodeAnnounce(p.Records[0])
		case PubRecord:
			enc = AppendRecord([]byte{PubRecord}, p.Records[0])
		case PubRecords:
			var pk RecordPacker
			for _, r := range p.Records {
				if m := pk.Add(r); m != nil {
					enc = m // more than one message: compare the records only
				}
			}
			if enc == nil {
				enc = pk.Flush()
			} else {
				return
			}
		}
		p2, err := DecodePub(enc)
		if err != nil || p2.Type != p.Type || p2.Head != p.Head || len(p2.Records) != len(p.Records) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzDecodeHelloReq(f *testing.F) {
	f.Add(EncodeHelloReq([]string{"docs", "photos"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		fs, err := DecodeHelloReq(b)
		if fuzzErr(t, err) {
			return
		}
		fs2, err := DecodeHelloReq(EncodeHelloReq(fs))
		if err != nil || len(fs2) != len(fs) {
			t.Fatalf("round trip: %v", err)
		}
		for i := range fs {
			if fs[i] != fs2[i] {
				t.Fatal("round trip")
			}
		}
	})
}

func FuzzDecodeHelloReply(f *testing.F) {
	f.Add(EncodeHelloReply([]Consent{{Folder: "docs", Accepted: true}, {Folder: "photos", Reason: "no backup_for entry"}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		cs, err := DecodeHelloReply(b)
		if fuzzErr(t, err) {
			return
		}
		cs2, err := DecodeHelloReply(EncodeHelloReply(cs))
		if err != nil || len(cs2) != len(cs) {
			t.Fatalf("round trip: %v", err)
		}
		for i := range cs {
			if cs[i] != cs2[i] {
				t.Fatal("round trip")
			}
		}
	})
}
