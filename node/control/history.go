package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/vigil-mesh/vigil/node/restore"
)

var errorCodes = []struct {
	code string
	err  error
}{
	{"no-replica", restore.ErrNoReplica},
	{"not-empty", restore.ErrNotEmpty},
	{"before-first", restore.ErrBeforeFirst},
	{"after-newest", restore.ErrAfterNewest},
	{"no-such-path", restore.ErrNoSuchPath},
	{"bad-request", restore.ErrBadRequest},
	{"incomplete", restore.ErrIncomplete},
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
			return restore.UserError(c.err, msg)
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
	Done   *int64                 `json:"done,omitempty"`
	Total  *int64                 `json:"total,omitempty"`
	Result *restore.RestoreResult `json:"result,omitempty"`
	Error  string                 `json:"error,omitempty"`
	Code   string                 `json:"code,omitempty"`
}

// progressEvery throttles the progress lines of a restore.
const progressEvery = 200 * time.Millisecond

// PointsBackend is a Backend that lists the restore points of a replica
// (see restore.Points); the node is one.
type PointsBackend interface {
	Points(source, folder string, since time.Time, limit int) (restore.PointsReport, error)
}

func registerHistoryHandlers(mux *http.ServeMux, b Backend) {
	if pb, ok := b.(PointsBackend); ok {
		mux.HandleFunc("GET /v1/points", func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			var since time.Time
			if s := q.Get("since"); s != "" {
				t, err := time.Parse(time.RFC3339Nano, s)
				if err != nil {
					writeControlError(w, restore.UserError(restore.ErrBadRequest, fmt.Sprintf("points: since %q: want an RFC 3339 time", s)))
					return
				}
				since = t
			}
			limit := 0
			if s := q.Get("limit"); s != "" {
				n, err := strconv.Atoi(s)
				if err != nil || n < 0 {
					writeControlError(w, restore.UserError(restore.ErrBadRequest, fmt.Sprintf("points: limit %q: want a number >= 0", s)))
					return
				}
				limit = n
			}
			rep, err := pb.Points(q.Get("source"), q.Get("folder"), since, limit)
			if err != nil {
				writeControlError(w, err)
				return
			}
			writeJSON(w, rep)
		})
	}
	mux.HandleFunc("POST /v1/restore", func(w http.ResponseWriter, r *http.Request) {
		var req restore.RestoreRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeControlError(w, restore.UserError(restore.ErrBadRequest, fmt.Sprintf("restore request: %v", err)))
			return
		}
		if !filepath.IsAbs(req.To) {
			writeControlError(w, restore.UserError(restore.ErrBadRequest, fmt.Sprintf("restore request: to %q is not an absolute path", req.To)))
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
		res, err := b.Restore(r.Context(), req, func(done, total int64) {
			if now := time.Now(); now.Sub(last) >= progressEvery || done == total {
				last = now
				send(restoreLine{Done: &done, Total: &total})
			}
		})
		if err != nil {
			l := restoreLine{Error: err.Error(), Code: errorCode(err)}
			if errors.Is(err, restore.ErrIncomplete) {
				l.Result = &res // what was restored, and what was not
			}
			send(l)
			return
		}
		send(restoreLine{Result: &res})
	})
	mux.HandleFunc("POST /v1/verify", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		reps, err := b.Verify(r.Context(), q.Get("source"), q.Get("folder"))
		if err != nil {
			writeControlError(w, err)
			return
		}
		writeJSON(w, reps)
	})
	mux.HandleFunc("GET /v1/history", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		vs, err := b.History(q.Get("source"), q.Get("folder"), q.Get("path"))
		if err != nil {
			writeControlError(w, err)
			return
		}
		writeJSON(w, vs)
	})
}
