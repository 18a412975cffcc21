package control

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strings"
)

// tcpGuard wraps the handler of a TCP control endpoint. Any local user,
// and any web page a local browser shows, can reach a loopback port, so
// every request must:
//
//   - name one of hosts in its Host header: a page whose own name was made
//     to resolve to 127.0.0.1 (DNS rebinding) sends that name (403);
//   - carry no Origin header: browsers add one to what pages send, and no
//     client of this endpoint is a page (403);
//   - carry "Authorization: Bearer <token>", the token of the node's home
//     (compared in constant time) (401);
//   - if it is a POST, be "Content-Type: application/json": an HTML form
//     can POST text/plain or a form encoding without asking the endpoint
//     first, never JSON (415).
func tcpGuard(next http.Handler, hosts []string, token string) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hostAllowed(r.Host, hosts) {
			refuse(w, http.StatusForbidden, fmt.Sprintf("control: request for host %q refused: this endpoint answers only to %s", r.Host, strings.Join(hosts, " or ")))
			return
		}
		if _, ok := r.Header["Origin"]; ok {
			refuse(w, http.StatusForbidden, "control: request from a web page (Origin header) refused")
			return
		}
		auth := r.Header.Get("Authorization")
		if auth == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
			refuse(w, http.StatusUnauthorized, "control: no token: send Authorization: Bearer <the token in the node's "+TokenFile+">")
			return
		}
		if subtle.ConstantTimeCompare([]byte(auth), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="vigil", error="invalid_token"`)
			refuse(w, http.StatusUnauthorized, "control: bad token: not the one in the node's "+TokenFile)
			return
		}
		if r.Method == http.MethodPost {
			mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || mt != "application/json" {
				refuse(w, http.StatusUnsupportedMediaType, "control: a POST must be Content-Type: application/json")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func hostAllowed(host string, hosts []string) bool {
	for _, h := range hosts {
		if strings.EqualFold(host, h) {
			return true
		}
	}
	return false
}

func refuse(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(controlError{Error: msg})
}
