package control

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

//	POST /v1/repair?source=&folder=   []RepairReport

func registerRepairHandlers(mux *http.ServeMux, b Backend) {
	mux.HandleFunc("POST /v1/repair", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		reps, err := b.Repair(r.Context(), q.Get("source"), q.Get("folder"))
		if err != nil {
			writeControlError(w, err)
			return
		}
		writeJSON(w, reps)
	})
}

// Repair asks the running node to verify its replicas (all when source and
// folder are empty) and fetch again from the sources what verify finds
// wrong.
func (c *Client) Repair(ctx context.Context, source, folder string) ([]RepairReport, error) {
	q := url.Values{}
	q.Set("source", source)
	q.Set("folder", folder)
	resp, err := c.send(ctx, http.MethodPost, "/v1/repair?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []RepairReport
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("control: endpoint %s: repair: %w", c.addr, err)
	}
	return out, nil
}
