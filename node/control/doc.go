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
// Errors of verify, history and points are {"error":"...","code":"..."} with a 4xx
// or 5xx status. code is "no-replica", "not-empty", "before-first",
// "after-newest", "no-such-path", "bad-request", "incomplete" or "" and
// maps back to restore's sentinel errors.
package control
