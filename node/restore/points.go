package restore

import (
	"sort"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/node/history"
	"github.com/vigil-mesh/vigil/store"
)

// Point is a restore point of a replica: a journal seq (and its source
// time) at which something changed. `restore --seq Seq` (or --at Time)
// restores the state right after it.
type Point struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Files   int       `json:"files"`   // paths changed: written, created or deleted
	Deleted int       `json:"deleted"` // of which deleted
	Bytes   int64     `json:"bytes"`   // file content written that the path's previous version did not hold
}

// PointsReport lists the restore points of one replica, oldest first.
type PointsReport struct {
	Source     string    `json:"source"`
	SourceName string    `json:"source_name"`
	Folder     string    `json:"folder"`
	NewestSeq  uint64    `json:"newest_seq"` // the newest backed-up state
	NewestTime time.Time `json:"newest_time"`
	Retained   bool      `json:"retained"` // history is kept (retention > 0)
	Total      int       `json:"total"`    // points kept, before Since and Limit
	Points     []Point   `json:"points"`
}

// Points lists the restore points of replica d from its version rows:
// those at or after since (zero: all), the newest limit of them (0: all),
// oldest first.
func Points(d *Replica, since time.Time, limit int) (PointsReport, error) {
	rep := PointsReport{Source: d.Source, SourceName: d.SourceName, Folder: d.Folder, Retained: d.Retained, Points: []Point{}}
	bySeq := make(map[uint64]*Point)
	err := d.DB.View(func(tx *store.Tx) error {
		meta := d.Rows.Meta(tx)
		rep.NewestSeq = meta.Applied
		rep.NewestTime = meta.RecordTime
		if rep.NewestTime.IsZero() {
			rep.NewestTime = meta.AppliedAt
		}
		rep.NewestTime = rep.NewestTime.UTC()
		var path string
		prev := make(map[cid.Cid]struct{}) // the chunks of the path's previous version
		return d.History.ForEach(tx, func(v history.Version) error {
			if v.Path != path {
				path = v.Path
				clear(prev)
			}
			pt := bySeq[v.Seq]
			if pt == nil {
				pt = &Point{Seq: v.Seq, Time: v.Time.UTC()}
				bySeq[v.Seq] = pt
			}
			pt.Files++
			e := v.Entry
			switch {
			case e == nil:
				pt.Deleted++
			case e.Kind == baseline.KindFile:
				for _, c := range e.Chunks {
					if _, ok := prev[c.CID]; !ok {
						pt.Bytes += int64(c.Size)
						prev[c.CID] = struct{}{} // a chunk repeated within the file counts once
					}
				}
			}
			clear(prev)
			if e != nil && e.Kind == baseline.KindFile {
				for _, c := range e.Chunks {
					prev[c.CID] = struct{}{}
				}
			}
			return nil
		})
	})
	if err != nil {
		return rep, err
	}
	rep.Total = len(bySeq)
	for _, pt := range bySeq {
		if since.IsZero() || !pt.Time.Before(since) {
			rep.Points = append(rep.Points, *pt)
		}
	}
	sort.Slice(rep.Points, func(i, j int) bool { return rep.Points[i].Seq < rep.Points[j].Seq })
	if limit > 0 && len(rep.Points) > limit {
		rep.Points = rep.Points[len(rep.Points)-limit:]
	}
	return rep, nil
}
