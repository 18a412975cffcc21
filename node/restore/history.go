package restore

import (
	"github.com/vigil-mesh/vigil/node/history"
	"github.com/vigil-mesh/vigil/store"
)

// History returns the versions of path p (oldest first) in replica d.
func History(d *Replica, p string) ([]history.Version, error) {
	ps, err := cleanPaths([]string{p})
	if err != nil {
		return nil, err
	}
	if len(ps) != 1 {
		return nil, userErrorf(ErrBadRequest, "history: a path inside the folder is required")
	}
	p = ps[0]
	var vs []history.Version
	var current bool
	err = d.DB.View(func(tx *store.Tx) error {
		var err error
		vs, err = d.History.Versions(tx, p)
		current = d.Rows.Files().Has(tx, p)
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(vs) == 0 {
		if current && !d.Retained {
			return nil, userErrorf(ErrNoSuchPath, "no history of %q is kept (retention of %s is 0)", p, d.label())
		}
		return nil, userErrorf(ErrNoSuchPath, "path %q has no history in the backup of %s", p, d.label())
	}
	return vs, nil
}
