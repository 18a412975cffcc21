package wire

import (
	"encoding/binary"
	"fmt"
)

// Pubsub message types on a folder topic; the first byte of a message.
const (
	PubRecord    byte = 0x01 // one record
	PubAnnounce  byte = 0x02 // seq and time of a record too large for pubsub: pull it
	PubHeartbeat byte = 0x03 // the source's head seq
	PubRecords   byte = 0x04 // consecutive records, each with a uvarint length
)

// MaxPubInline is the most bytes of records one pubsub message carries; a
// larger record is announced and pulled over a stream.
const MaxPubInline = 256 << 10

// Pub is a decoded pubsub message.
type Pub struct {
	Type    byte
	Records []Record // PubRecord, PubRecords; PubAnnounce (one record, no payload)
	Head    uint64   // PubHeartbeat
}

// EncodeHeartbeat is a heartbeat message carrying the head seq.
func EncodeHeartbeat(head uint64) []byte {
	return binary.AppendUvarint([]byte{PubHeartbeat}, head)
}

// EncodeAnnounce is the announcement of record r (its payload is not sent).
func EncodeAnnounce(r Record) []byte {
	r.Payload = nil
	return AppendRecord([]byte{PubAnnounce}, r)
}

// RecordPacker packs consecutive records into PubRecords messages of at
// most MaxPubInline bytes.
type RecordPacker struct {
	msg []byte
}

// Add appends r to the message being built; when r does not fit, the
// message so far is returned (to publish) and r starts the next one.
// A record larger than MaxPubInline must be announced instead (see Fits).
func (p *RecordPacker) Add(r Record) (full []byte) {
	enc := AppendRecord(nil, r)
	if len(p.msg) > 0 && len(p.msg)+len(enc)+binary.MaxVarintLen64 > MaxPubInline {
		full = p.Flush()
	}
	if p.msg == nil {
		p.msg = []byte{PubRecords}
	}
	p.msg = AppendBytes(p.msg, enc)
	return full
}

// Flush returns the message being built (nil if empty) and starts anew.
func (p *RecordPacker) Flush() []byte {
	m := p.msg
	p.msg = nil
	return m
}

// Fits reports whether a record with this payload can travel inline.
func Fits(payload []byte) bool { return len(payload) <= MaxPubInline }

// DecodePub decodes a pubsub message. Record payloads alias msg.
func DecodePub(msg []byte) (Pub, error) {
	if len(msg) == 0 {
		return Pub{}, fmt.Errorf("%w: empty pubsub message", ErrMalformed)
	}
	p := Pub{Type: msg[0]}
	body := msg[1:]
	switch p.Type {
	case PubHeartbeat:
		h, err := DecodeSeq(body)
		p.Head = h
		return p, err
	case PubRecord, PubAnnounce:
		r, err := DecodeRecord(body)
		if err != nil {
			return p, err
		}
		if p.Type == PubAnnounce && len(r.Payload) != 0 {
			return p, fmt.Errorf("%w: announcement with a payload", ErrMalformed)
		}
		p.Records = []Record{r}
		return p, nil
	case PubRecords:
		d := NewDecoder(body)
		for d.Len() > 0 {
			b := d.Bytes(MaxPubInline + 64)
			if err := d.Err(); err != nil {
				return p, err
			}
			r, err := DecodeRecord(b)
			if err != nil {
				return p, err
			}
			if n := len(p.Records); n > 0 && r.Seq != p.Records[n-1].Seq+1 {
				return p, fmt.Errorf("%w: records %d and %d are not consecutive", ErrMalformed, p.Records[n-1].Seq, r.Seq)
			}
			p.Records = append(p.Records, r)
		}
		if len(p.Records) == 0 {
			return p, fmt.Errorf("%w: empty records message", ErrMalformed)
		}
		return p, nil
	}
	return p, fmt.Errorf("%w: unknown pubsub message type 0x%02x", ErrMalformed, p.Type)
}
