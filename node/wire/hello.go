package wire

import "encoding/binary"

// Frame types on the /vigil/hello stream: a source asks a peer whether it
// backs up the folders the source's config names it a backup of.
const (
	HelloReq   byte = 0x20 // count, folder...
	HelloReply byte = 0xA0 // count, {folder, accepted, reason}...
)

// MaxHelloFolders bounds the folders of one hello request; MaxHelloFrame
// bounds its frames.
const (
	MaxHelloFolders = 1024
	MaxHelloFrame   = 64 << 10
	maxHelloReason  = 512
)

// Consent is a peer's answer about one folder.
type Consent struct {
	Folder   string
	Accepted bool
	Reason   string // why not, when not accepted (at most 512 bytes)
}

// EncodeHelloReq encodes a hello request for folders.
func EncodeHelloReq(folders []string) []byte {
	b := binary.AppendUvarint(nil, uint64(len(folders)))
	for _, f := range folders {
		b = AppendString(b, f)
	}
	return b
}

// DecodeHelloReq decodes a hello request.
func DecodeHelloReq(b []byte) ([]string, error) {
	d := NewDecoder(b)
	n := d.Int()
	if d.Err() == nil && n > MaxHelloFolders {
		d.Fail("%d folders in a hello", n)
	}
	var out []string
	for i := 0; i < n && d.Err() == nil; i++ {
		f := d.String()
		if d.Err() == nil && (f == "" || len(f) > 255) {
			d.Fail("folder ID of %d bytes", len(f))
		}
		out = append(out, f)
	}
	return out, d.End()
}

// EncodeHelloReply encodes the answers to a hello request.
func EncodeHelloReply(cs []Consent) []byte {
	b := binary.AppendUvarint(nil, uint64(len(cs)))
	for _, c := range cs {
		reason := c.Reason
		if len(reason) > maxHelloReason {
			reason = reason[:maxHelloReason]
		}
		b = AppendBool(AppendString(b, c.Folder), c.Accepted)
		b = AppendString(b, reason)
	}
	return b
}

// DecodeHelloReply decodes the answers to a hello request.
func DecodeHelloReply(b []byte) ([]Consent, error) {
	d := NewDecoder(b)
	n := d.Int()
	if d.Err() == nil && n > MaxHelloFolders {
		d.Fail("%d answers in a hello reply", n)
	}
	var out []Consent
	for i := 0; i < n && d.Err() == nil; i++ {
		c := Consent{Folder: d.String(), Accepted: d.Bool(), Reason: d.String()}
		if d.Err() == nil && len(c.Reason) > maxHelloReason {
			d.Fail("reason of %d bytes", len(c.Reason))
		}
		out = append(out, c)
	}
	return out, d.End()
}
