package control

import (
	"context"
	"errors"
	"net/http"
)

//	POST /v1/reload   ReloadReport; 422 {"error": ...} when the new config is refused

// ReloadBackend is a Backend that can read its config file again.
type ReloadBackend interface {
	Reload(ctx context.Context) (ReloadReport, error)
}

// reloadResponse is the body of POST /v1/reload: the report, and the error
// when the reload was refused or some part could not be started.
type reloadResponse struct {
	ReloadReport
	Error   string `json:"error,omitempty"`
	Refused bool   `json:"refused,omitempty"`
}

// ErrReloadRefused wraps the reason a new config was not applied; the
// node goes on with the config it runs.
var ErrReloadRefused = errors.New("reload refused; the node keeps its running config")

// ErrReloadFailed matches the error of Client.Reload when the node refused
// the new config or could not start part of it.
var ErrReloadFailed = errors.New("reload failed")

// ReloadError is the node's answer to a reload that did not fully apply.
type ReloadError struct {
	Msg     string
	Refused bool // nothing was applied
}

func (e *ReloadError) Error() string { return e.Msg }

// Is matches ErrReloadFailed, and ErrReloadRefused when nothing was applied.
func (e *ReloadError) Is(target error) bool {
	return target == ErrReloadFailed || (e.Refused && target == ErrReloadRefused)
}

func registerReloadHandlers(mux *http.ServeMux, b Backend) {
	rb, ok := b.(ReloadBackend)
	if !ok {
		return
	}
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		rep, err := rb.Reload(r.Context())
		resp := reloadResponse{ReloadReport: rep}
		if err != nil {
			resp.Error = err.Error()
			resp.Refused = errors.Is(err, ErrReloadRefused) // nothing was applied
		}
		writeJSON(w, resp)
	})
}

// Reload asks the running node to read its config file again and apply it.
// A refused config (nothing applied) or parts that could not start give an
// error wrapping ErrReloadFailed, with the report of what was applied.
func (c *Client) Reload(ctx context.Context) (ReloadReport, error) {
	var resp reloadResponse
	if err := c.do(ctx, http.MethodPost, "/v1/reload", &resp); err != nil {
		return ReloadReport{}, err
	}
	if resp.Error != "" {
		return resp.ReloadReport, &ReloadError{Msg: resp.Error, Refused: resp.Refused}
	}
	return resp.ReloadReport, nil
}
