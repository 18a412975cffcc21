package node

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/mesh"
)

// Frame types on the /vigil/sync stream (requests from a target, answers
// from the source) and on the /vigil/ack stream. See doc.go.
const (
	msgSnapshotReq byte = 0x01 // folder
	msgChunksReq   byte = 0x02 // folder, count, CIDs
	msgJournalReq  byte = 0x03 // folder, from seq
	msgPathReq     byte = 0x04 // folder, path

	msgSnapshotHead byte = 0x81 // seq, entry count, total file bytes, snapshot root
	msgEntries      byte = 0x82 // count, entries (baseline entry codec)
	msgChunks       byte = 0x83 // answers one chunks request: per CID in order, 1 + uvarint length + bytes, or 0 (not available)
	msgRecord       byte = 0x85 // seq, unix nanos, payload
	msgCompacted    byte = 0x86 // first retained seq: the range asked for is gone
	msgPathHead     byte = 0x87 // seq at which the following entries are current
	msgEnd          byte = 0x8E // head seq
	msgError        byte = 0x8F // message

	msgAck byte = 0x10 // folder, applied seq, state, baseline done, baseline total, applied unix nanos

	// pubsub messages on a folder topic
	pubRecord    byte = 0x01 // seq, unix nanos, payload
	pubAnnounce  byte = 0x02 // seq, unix nanos: record too large for pubsub, pull it
	pubHeartbeat byte = 0x03 // head seq
	pubRecords   byte = 0x04 // consecutive records: each uvarint length + (seq, unix nanos, payload)
)

const (
	maxFrame        = 80 << 20 // largest frame accepted on a stream
	maxPubInline    = 256 << 10
	chunksPerReq    = 256
	entriesPerFrame = 512
)

func writeFrame(w io.Writer, typ byte, payload []byte) error { return mesh.WriteFrame(w, typ, payload) }

func readFrame(r *bufio.Reader) (byte, []byte, error) { return mesh.ReadFrame(r, maxFrame) }

// ack is what a target tells the source about a replica after making it
// durable.
type ack struct {
	Folder       string
	Applied      uint64
	Baseline     bool // still in its baseline
	DoneBytes    int64
	TotalBytes   int64
	AppliedAt    time.Time // when the target applied Applied
	RecordedTime time.Time // source time of record Applied (zero for a snapshot)
}

func (a *ack) encode() []byte {
	b := appendString(nil, a.Folder)
	b = binary.AppendUvarint(b, a.Applied)
	if a.Baseline {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(a.DoneBytes))
	b = binary.AppendUvarint(b, uint64(a.TotalBytes))
	b = binary.AppendVarint(b, nanos(a.AppliedAt))
	return b
}

func decodeAck(b []byte) (*ack, error) {
	d := decoder{b: b}
	a := &ack{Folder: d.string(), Applied: d.uvarint(), Baseline: d.byte() == 1,
		DoneBytes: int64(d.uvarint() & (1<<62 - 1)), TotalBytes: int64(d.uvarint() & (1<<62 - 1))}
	a.AppliedAt = fromNanos(d.varint())
	if d.err != nil {
		return nil, d.fail()
	}
	return a, nil
}

type wireRecord struct {
	Seq     uint64
	Time    time.Time
	Payload []byte
}

func appendRecord(dst []byte, r wireRecord) []byte {
	dst = binary.AppendUvarint(dst, r.Seq)
	dst = binary.AppendVarint(dst, r.Time.UnixNano())
	return append(dst, r.Payload...)
}

func decodeRecord(b []byte) (wireRecord, error) {
	d := decoder{b: b}
	r := wireRecord{Seq: d.uvarint(), Time: time.Unix(0, d.varint())}
	if d.err != nil {
		return r, d.fail()
	}
	r.Payload = d.b
	return r, nil
}

func encodeEntries(es []*baseline.Entry) []byte {
	b := binary.AppendUvarint(nil, uint64(len(es)))
	for _, e := range es {
		b = baseline.AppendEntry(b, e)
	}
	return b
}

func decodeEntries(b []byte) ([]baseline.Entry, error) {
	d := decoder{b: b}
	n := d.int()
	if d.err != nil {
		return nil, d.fail()
	}
	if n > len(d.b) {
		return nil, fmt.Errorf("%w: %d entries in %d bytes", ErrBadRecord, n, len(d.b))
	}
	out := make([]baseline.Entry, 0, n)
	for i := 0; i < n; i++ {
		e, m, err := baseline.DecodeEntry(d.b)
		if err != nil {
			return nil, err
		}
		d.b = d.b[m:]
		out = append(out, e)
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: trailing bytes after entries", ErrBadRecord)
	}
	return out, nil
}

func encodeCIDs(folder string, cids []cid.Cid) []byte {
	b := appendString(nil, folder)
	b = binary.AppendUvarint(b, uint64(len(cids)))
	for _, c := range cids {
		b = appendBytes(b, c.Bytes())
	}
	return b
}

func decodeCIDs(b []byte) (string, []cid.Cid, error) {
	d := decoder{b: b}
	folder := d.string()
	n := d.int()
	if d.err == nil && n > chunksPerReq*4 {
		return "", nil, fmt.Errorf("%w: %d CIDs in one request", ErrBadRecord, n)
	}
	out := make([]cid.Cid, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		out = append(out, d.cid(false))
	}
	if d.err != nil {
		return "", nil, d.fail()
	}
	return folder, out, nil
}

func u64(v uint64) []byte { return binary.AppendUvarint(nil, v) }

func folderSeq(folder string, seq uint64) []byte {
	return binary.AppendUvarint(appendString(nil, folder), seq)
}

func decodeFolderSeq(b []byte) (string, uint64, error) {
	d := decoder{b: b}
	f, s := d.string(), d.uvarint()
	if d.err != nil {
		return "", 0, d.fail()
	}
	return f, s, nil
}

// remoteError is an error frame sent by the other side.
type remoteError struct{ msg string }

func (e *remoteError) Error() string { return "remote: " + e.msg }

// nanos is t in unix nanoseconds, 0 for the zero time.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromNanos inverts nanos.
func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
