package history

import (
	"encoding/json"
	"io/fs"
	"time"

	"github.com/vigil-mesh/vigil/baseline"
)

// versionJSON is the JSON form of a Version: the entry's metadata and
// content root, not its chunk list.
type versionJSON struct {
	Path    string      `json:"path"`
	Seq     uint64      `json:"seq"`
	Time    time.Time   `json:"time"`
	Deleted bool        `json:"deleted"`
	Kind    string      `json:"kind,omitempty"`
	Size    int64       `json:"size"`
	Mode    fs.FileMode `json:"mode,omitempty"`
	MTime   time.Time   `json:"mtime,omitzero"`
	Target  string      `json:"target,omitempty"`
	Root    string      `json:"root,omitempty"`
}

// MarshalJSON writes a version without its chunk list: path, seq, time,
// deleted, and the entry's kind, size, mode, mtime, target and content root.
func (v Version) MarshalJSON() ([]byte, error) {
	j := versionJSON{Path: v.Path, Seq: v.Seq, Time: v.Time.UTC(), Deleted: v.Entry == nil}
	if e := v.Entry; e != nil {
		j.Kind, j.Size, j.Mode, j.Target, j.Root = e.Kind.String(), e.Size, e.Mode, e.Target, e.Root().String()
		if len(e.Chunks) == 0 && v.root != "" {
			j.Root = v.root // decoded from JSON: the chunks did not come along
		}
		if !e.MTime.IsZero() {
			j.MTime = e.MTime.UTC()
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes; the entry comes back
// without its chunks, and the version keeps the content root, which
// MarshalJSON writes again.
func (v *Version) UnmarshalJSON(b []byte) error {
	var j versionJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*v = Version{Path: j.Path, Seq: j.Seq, Time: j.Time, root: j.Root}
	if !j.Deleted {
		e := &baseline.Entry{Path: j.Path, Size: j.Size, Mode: j.Mode, MTime: j.MTime, Target: j.Target}
		switch j.Kind {
		case "file":
			e.Kind = baseline.KindFile
		case "dir":
			e.Kind = baseline.KindDir
		case "symlink":
			e.Kind = baseline.KindSymlink
		}
		v.Entry = e
	}
	return nil
}
