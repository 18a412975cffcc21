package control

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
	"strconv"
	"sync"
	"time"

	"github.com/vigil-mesh/vigil/node/history"
	"github.com/vigil-mesh/vigil/node/restore"
)

// ErrNotRunning is returned by the control client when no node answers.
var ErrNotRunning = errors.New("control: node not running")

// Client talks to a running node's control endpoint.
type Client struct {
	tcp       bool
	addr      string
	hc        *http.Client
	tokenFile string // TCP: where the token is read from ("": none)

	tokenOnce sync.Once
	token     string // "" when none could be read
	tokenErr  error
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithTokenFile makes the client send the token in the file at path (the
// node home's TokenFile) to a TCP endpoint. It is read at the first
// request; a unix socket needs none.
func WithTokenFile(path string) ClientOption { return func(c *Client) { c.tokenFile = path } }

// NewClient returns a client for the control endpoint at
// (network, addr), as given by Config.ControlAddr.
func NewClient(network, addr string, opts ...ClientOption) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	c := &Client{tcp: network != "unix", addr: addr, hc: &http.Client{Transport: tr}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// newRequest makes a request to the endpoint. On TCP it names the
// endpoint's address as its Host and carries the token; every POST says
// its body is JSON (the endpoint refuses other POSTs).
func (c *Client) newRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://vigil"+path, body)
	if err != nil {
		return nil, err
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.tcp {
		req.Host = c.addr
		c.tokenOnce.Do(func() {
			if c.tokenFile == "" {
				c.tokenErr = errors.New("no token file given")
				return
			}
			c.token, c.tokenErr = readToken(c.tokenFile)
		})
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
	}
	return req, nil
}

// RefusedError is the error of a request the endpoint refused for its
// token. It matches ErrUnauthorized.
type RefusedError struct {
	Addr      string
	TokenFile string
	Sent      bool  // a token was sent (and was not the node's)
	ReadErr   error // why no token was sent
}

func (e *RefusedError) Error() string {
	switch {
	case e.Sent:
		return fmt.Sprintf("control endpoint %s refused the request: bad token; is %s the running node's?", e.Addr, e.TokenFile)
	case e.TokenFile != "" && errors.Is(e.ReadErr, fs.ErrNotExist):
		return fmt.Sprintf("control endpoint %s refused the request: no token: %s does not exist; is %s the running node's home?",
			e.Addr, e.TokenFile, filepath.Dir(e.TokenFile))
	case e.ReadErr != nil:
		return fmt.Sprintf("control endpoint %s refused the request: no token: %v", e.Addr, e.ReadErr)
	}
	return fmt.Sprintf("control endpoint %s refused the request: no token", e.Addr)
}

// Unwrap makes the error match ErrUnauthorized.
func (e *RefusedError) Unwrap() error { return ErrUnauthorized }

func (c *Client) refused() error {
	return &RefusedError{Addr: c.addr, TokenFile: c.tokenFile, Sent: c.token != "", ReadErr: c.tokenErr}
}

func (c *Client) do(ctx context.Context, method, path string, out any) error {
	req, err := c.newRequest(ctx, method, path, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ne *net.OpError
		if errors.As(err, &ne) && ne.Op == "dial" {
			return fmt.Errorf("%w: nothing answers on %s (is `vigil run` started?)", ErrNotRunning, c.addr)
		}
		return fmt.Errorf("control: endpoint %s: %w", c.addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return c.answerError(resp)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Lag fetches the node's lag report.
func (c *Client) Lag(ctx context.Context) (LagReport, error) {
	var r LagReport
	err := c.do(ctx, http.MethodGet, "/v1/lag", &r)
	return r, err
}

// WaitSynced asks the node to capture pending changes and wait up to d
// for every pair to be live with nothing left to apply.
func (c *Client) WaitSynced(ctx context.Context, d time.Duration) (LagReport, bool, error) {
	var r LagReport
	err := c.do(ctx, http.MethodPost, "/v1/wait-synced?timeout="+d.String(), &r)
	return r, r.Synced != nil && *r.Synced, err
}

// Status fetches the node's status report.
func (c *Client) Status(ctx context.Context) (StatusReport, error) {
	var r StatusReport
	err := c.do(ctx, http.MethodGet, "/v1/status", &r)
	return r, err
}

// send does a request with a JSON body (nil: none) and returns the answer
// when its status is 200; other answers become errors.
func (c *Client) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := c.newRequest(ctx, method, path, rd)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ne *net.OpError
		if errors.As(err, &ne) && ne.Op == "dial" {
			return nil, fmt.Errorf("%w: nothing answers on %s (is `vigil run` started?)", ErrNotRunning, c.addr)
		}
		return nil, fmt.Errorf("control: endpoint %s: %w", c.addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, c.answerError(resp)
	}
	return resp, nil
}

// answerError turns an answer other than 200 into an error: a refused
// token names the token file; an error the endpoint sent as JSON maps back
// to the sentinel its code names.
func (c *Client) answerError(resp *http.Response) error {
	if resp.StatusCode == http.StatusUnauthorized {
		return c.refused()
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var ce controlError
	if json.Unmarshal(b, &ce) == nil && ce.Error != "" {
		return remoteUserError(ce.Error, ce.Code)
	}
	return fmt.Errorf("control: endpoint %s: %s: %s", c.addr, resp.Status, bytes.TrimSpace(b))
}

// Restore asks the running node to restore; progress (if not nil) is
// called with the bytes written so far and the total. req.To is made
// absolute here. When the restore is incomplete (restore.ErrIncomplete),
// the result comes with the error.
func (c *Client) Restore(ctx context.Context, req restore.RestoreRequest, progress func(done, total int64)) (restore.RestoreResult, error) {
	if req.To != "" {
		abs, err := filepath.Abs(req.To)
		if err != nil {
			return restore.RestoreResult{}, err
		}
		req.To = abs
	}
	resp, err := c.send(ctx, http.MethodPost, "/v1/restore", req)
	if err != nil {
		return restore.RestoreResult{}, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l restoreLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return restore.RestoreResult{}, fmt.Errorf("control: endpoint %s: bad restore answer: %w", c.addr, err)
		}
		switch {
		case l.Error != "":
			var res restore.RestoreResult
			if l.Result != nil {
				res = *l.Result
			}
			return res, remoteUserError(l.Error, l.Code)
		case l.Result != nil:
			return *l.Result, nil
		case l.Done != nil && l.Total != nil && progress != nil:
			progress(*l.Done, *l.Total)
		}
	}
	if err := sc.Err(); err != nil {
		return restore.RestoreResult{}, fmt.Errorf("control: endpoint %s: restore: %w", c.addr, err)
	}
	return restore.RestoreResult{}, fmt.Errorf("control: endpoint %s: restore answer ended without a result", c.addr)
}

// Verify asks the running node to verify its replicas (all when source
// and folder are empty).
func (c *Client) Verify(ctx context.Context, source, folder string) ([]restore.VerifyReport, error) {
	q := url.Values{}
	q.Set("source", source)
	q.Set("folder", folder)
	resp, err := c.send(ctx, http.MethodPost, "/v1/verify?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []restore.VerifyReport
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("control: endpoint %s: verify: %w", c.addr, err)
	}
	return out, nil
}

// History asks the running node for the versions of path p.
func (c *Client) History(ctx context.Context, source, folder, p string) ([]history.Version, error) {
	q := url.Values{}
	q.Set("source", source)
	q.Set("folder", folder)
	q.Set("path", p)
	resp, err := c.send(ctx, http.MethodGet, "/v1/history?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []history.Version
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("control: endpoint %s: history: %w", c.addr, err)
	}
	return out, nil
}

// Points asks the running node for the restore points of a replica: those
// at or after since (zero: all), the newest limit of them (0: all).
func (c *Client) Points(ctx context.Context, source, folder string, since time.Time, limit int) (restore.PointsReport, error) {
	q := url.Values{}
	q.Set("source", source)
	q.Set("folder", folder)
	if !since.IsZero() {
		q.Set("since", since.Format(time.RFC3339Nano))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var rep restore.PointsReport
	resp, err := c.send(ctx, http.MethodGet, "/v1/points?"+q.Encode(), nil)
	if err != nil {
		return rep, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return rep, fmt.Errorf("control: endpoint %s: points: %w", c.addr, err)
	}
	return rep, nil
}
