package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"time"

	"github.com/vigil-mesh/vigil/node/config"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/store"
)

// Control endpoint, history part:
//
//	POST /v1/restore                           body: RestoreRequest (JSON; "to" absolute)
//	     answer: NDJSON, {"done":N,"total":N} progress lines, then one
//	     {"result":RestoreResult} or {"error":"...","code":"..."} line
//	POST /v1/verify?source=&folder=            []VerifyReport
//	GET  /v1/history?source=&folder=&path=     []Version
//
// Errors of verify and history are {"error":"...","code":"..."} with a 4xx
// or 5xx status. code is "no-replica", "not-empty", "before-first",
// "no-such-path", "bad-request" or "" and maps back to the sentinel errors.

var errorCodes = []struct {
	code string
	err  error
}{
	{"no-replica", ErrNoReplica},
	{"not-empty", ErrNotEmpty},
	{"before-first", ErrBeforeFirst},
	{"no-such-path", ErrNoSuchPath},
	{"bad-request", ErrBadRequest},
}

func errorCode(err error) string {
	for _, c := range errorCodes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return ""
}

// remoteUserError turns an error line of the control endpoint back into
// an error matching the sentinel its code names.
func remoteUserError(msg, code string) error {
	for _, c := range errorCodes {
		if c.code == code {
			return &userError{kind: c.err, msg: msg}
		}
	}
	return errors.New(msg)
}

type controlError struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"`
}

func writeControlError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	code := errorCode(err)
	switch code {
	case "no-replica", "no-such-path":
		status = http.StatusNotFound
	case "":
	default:
		status = http.StatusBadRequest
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(controlError{Error: err.Error(), Code: code})
}

type restoreLine struct {
	Done   *int64         `json:"done,omitempty"`
	Total  *int64         `json:"total,omitempty"`
	Result *RestoreResult `json:"result,omitempty"`
	Error  string         `json:"error,omitempty"`
	Code   string         `json:"code,omitempty"`
}

// progressEvery throttles the progress lines of a restore.
const progressEvery = 200 * time.Millisecond

func (n *Node) registerHistoryHandlers(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/restore", func(w http.ResponseWriter, r *http.Request) {
		var req RestoreRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeControlError(w, userErrorf(ErrBadRequest, "restore request: %v", err))
			return
		}
		if !filepath.IsAbs(req.To) {
			writeControlError(w, userErrorf(ErrBadRequest, "restore request: to %q is not an absolute path", req.To))
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		fl, _ := w.(http.Flusher)
		var mu sync.Mutex
		enc := json.NewEncoder(w)
		send := func(l restoreLine) {
			mu.Lock()
			defer mu.Unlock()
			enc.Encode(l)
			if fl != nil {
				fl.Flush()
			}
		}
		var last time.Time
		res, err := n.Restore(r.Context(), req, func(done, total int64) {
			if now := time.Now(); now.Sub(last) >= progressEvery || done == total {
				last = now
				send(restoreLine{Done: &done, Total: &total})
			}
		})
		if err != nil {
			send(restoreLine{Error: err.Error(), Code: errorCode(err)})
			return
		}
		send(restoreLine{Result: &res})
	})
	mux.HandleFunc("POST /v1/verify", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		reps, err := n.Verify(r.Context(), q.Get("source"), q.Get("folder"))
		if err != nil {
			writeControlError(w, err)
			return
		}
		writeJSON(w, reps)
	})
	mux.HandleFunc("GET /v1/history", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		vs, err := n.History(q.Get("source"), q.Get("folder"), q.Get("path"))
		if err != nil {
			writeControlError(w, err)
			return
		}
		writeJSON(w, vs)
	})
}

// History returns the versions of path p (oldest first) of a replica this
// running node holds.
func (n *Node) History(source, folder, p string) ([]Version, error) {
	r, err := n.findReplica(source, folder)
	if err != nil {
		return nil, err
	}
	return historyOf(r.data(), p)
}

// HistoryOffline is History for a node that is not running.
func HistoryOffline(cfg *config.Config, source, folder, p string) ([]Version, error) {
	if source == "" || folder == "" {
		return nil, userErrorf(ErrBadRequest, "history: source and folder are required")
	}
	var vs []Version
	err := eachOfflineReplica(cfg, source, folder, func(d *replicaData) (err error) {
		vs, err = historyOf(d, p)
		return err
	})
	return vs, err
}

func historyOf(d *replicaData, p string) ([]Version, error) {
	ps, err := cleanPaths([]string{p})
	if err != nil {
		return nil, err
	}
	if len(ps) != 1 {
		return nil, userErrorf(ErrBadRequest, "history: a path inside the folder is required")
	}
	p = ps[0]
	var vs []Version
	var current bool
	err = d.db.View(func(tx *store.Tx) error {
		var err error
		vs, err = d.hist.versions(tx, p)
		current = tx.Get(d.bucket, []byte(p)) != nil
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(vs) == 0 {
		if current && !d.retained {
			return nil, userErrorf(ErrNoSuchPath, "no history of %q is kept (retention of %s is 0)", p, d.label())
		}
		return nil, userErrorf(ErrNoSuchPath, "path %q has no history in the backup of %s", p, d.label())
	}
	return vs, nil
}

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
		if !e.MTime.IsZero() {
			j.MTime = e.MTime.UTC()
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes; the entry comes back
// without its chunks.
func (v *Version) UnmarshalJSON(b []byte) error {
	var j versionJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*v = Version{Path: j.Path, Seq: j.Seq, Time: j.Time}
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

// send does a request with a JSON body (nil: none) and returns the answer
// when its status is 200; other answers become errors.
func (c *ControlClient) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://vigil"+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ne *net.OpError
		if errors.As(err, &ne) && ne.Op == "dial" {
			return nil, fmt.Errorf("%w: nothing answers on %s (is `vigil run` started?)", ErrNotRunning, c.addr)
		}
		return nil, fmt.Errorf("node: control endpoint %s: %w", c.addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var ce controlError
		if json.Unmarshal(b, &ce) == nil && ce.Error != "" {
			return nil, remoteUserError(ce.Error, ce.Code)
		}
		return nil, fmt.Errorf("node: control endpoint %s: %s: %s", c.addr, resp.Status, bytes.TrimSpace(b))
	}
	return resp, nil
}

// Restore asks the running node to restore; progress (if not nil) is
// called with the bytes written so far and the total. req.To is made
// absolute here.
func (c *ControlClient) Restore(ctx context.Context, req RestoreRequest, progress func(done, total int64)) (RestoreResult, error) {
	if req.To != "" {
		abs, err := filepath.Abs(req.To)
		if err != nil {
			return RestoreResult{}, err
		}
		req.To = abs
	}
	resp, err := c.send(ctx, http.MethodPost, "/v1/restore", req)
	if err != nil {
		return RestoreResult{}, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l restoreLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return RestoreResult{}, fmt.Errorf("node: control endpoint %s: bad restore answer: %w", c.addr, err)
		}
		switch {
		case l.Error != "":
			return RestoreResult{}, remoteUserError(l.Error, l.Code)
		case l.Result != nil:
			return *l.Result, nil
		case l.Done != nil && l.Total != nil && progress != nil:
			progress(*l.Done, *l.Total)
		}
	}
	if err := sc.Err(); err != nil {
		return RestoreResult{}, fmt.Errorf("node: control endpoint %s: restore: %w", c.addr, err)
	}
	return RestoreResult{}, fmt.Errorf("node: control endpoint %s: restore answer ended without a result", c.addr)
}

// Verify asks the running node to verify its replicas (all when source
// and folder are empty).
func (c *ControlClient) Verify(ctx context.Context, source, folder string) ([]VerifyReport, error) {
	q := url.Values{}
	q.Set("source", source)
	q.Set("folder", folder)
	resp, err := c.send(ctx, http.MethodPost, "/v1/verify?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []VerifyReport
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("node: control endpoint %s: verify: %w", c.addr, err)
	}
	return out, nil
}

// History asks the running node for the versions of path p.
func (c *ControlClient) History(ctx context.Context, source, folder, p string) ([]Version, error) {
	q := url.Values{}
	q.Set("source", source)
	q.Set("folder", folder)
	q.Set("path", p)
	resp, err := c.send(ctx, http.MethodGet, "/v1/history?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []Version
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("node: control endpoint %s: history: %w", c.addr, err)
	}
	return out, nil
}
