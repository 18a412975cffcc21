// Package control is a running node's control endpoint: HTTP + JSON on the
// node's `control:` address (a unix socket of mode 0600 by default, or a
// loopback TCP port), what `vigil lag`, `status`, `restore`, `verify` and
// `history` talk to. It holds the server (over a Backend, the node), the
// client and the report types, and links no libp2p code.
//
//	GET  /v1/lag                               LagReport
//	POST /v1/wait-synced?timeout=60s           LagReport with "synced"
//	GET  /v1/status                            StatusReport
//	POST /v1/restore                           body: restore.RestoreRequest (JSON; "to" absolute)
//	     answer: NDJSON, {"done":N,"total":N} progress lines, then one
//	     {"result":RestoreResult} or {"error":"...","code":"..."} line
//	     (code "incomplete": with the result, naming the files left out)
//	POST /v1/verify?source=&folder=            []restore.VerifyReport
//	GET  /v1/history?source=&folder=&path=     []history.Version
//	POST /v1/repair?source=&folder=            []RepairReport (verify, fetch what is wrong, verify)
//	GET  /v1/points?source=&folder=&since=RFC3339&limit=N
//	                                           restore.PointsReport
//
// # Who may ask
//
// The unix socket is mode 0600: only the node's user can connect, and no
// more is asked. A TCP endpoint (loopback only) can be reached by every
// local user and by the pages a local browser shows, so every request must
// name the configured address as its Host (DNS rebinding sends another
// name), carry no Origin header (browsers add one), carry
// "Authorization: Bearer <token>" with the token of the node home's
// control.token (TokenFile: 32 random bytes in hex, mode 0600, made once
// by `vigil run` with LoadOrCreateToken, which refuses a file others may
// read), and, for a POST, be Content-Type application/json (an HTML form
// cannot send that without asking first). Refusals are 403, 401 and 415
// with {"error":"..."}; Serve refuses to listen on TCP without a token
// (ContextWithToken). The Client sends the Host, the token
// (WithTokenFile) and the JSON type; a refused token is a *RefusedError
// naming the token file (errors.Is ErrUnauthorized).
//
// Errors of verify, history and points are {"error":"...","code":"..."} with a 4xx
// or 5xx status. code is "no-replica", "not-empty", "before-first",
// "after-newest", "no-such-path", "bad-request", "incomplete" or "" and
// maps back to restore's sentinel errors.
package control
