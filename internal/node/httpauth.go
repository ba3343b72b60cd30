package node

import (
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"strings"
	"unicode"
)

// MinMetricsTokenLen is the shortest accepted --metrics-token: the token is
// the only thing between the network and /metrics and pprof, so it must not
// be guessable.
const MinMetricsTokenLen = 16

// validateMetrics checks --metrics-addr and --metrics-token. A loopback
// listener may run without a token (only this host can reach it); any other
// address needs one.
func (c *Config) validateMetrics() error {
	if c.MetricsToken != "" {
		if len(c.MetricsToken) < MinMetricsTokenLen {
			return fmt.Errorf("--metrics-token must be at least %d characters", MinMetricsTokenLen)
		}
		if strings.IndexFunc(c.MetricsToken, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0 {
			return fmt.Errorf("--metrics-token must be printable and contain no spaces")
		}
	}
	if c.MetricsAddr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(c.MetricsAddr)
	if err != nil {
		return fmt.Errorf("--metrics-addr %q: %w", c.MetricsAddr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) && c.MetricsToken == "" {
		return fmt.Errorf("--metrics-addr %q is not a loopback address: set --metrics-token (or ELASTICKV_METRICS_TOKEN) so that scrapers must send \"Authorization: Bearer <token>\"", c.MetricsAddr)
	}
	return nil
}

// requireToken wraps the metrics listener's handler: with a token
// configured, every path except the health probes needs it. /healthz and
// /readyz stay open because load balancers and orchestrators probe them,
// and they reveal no more than whether the node serves.
func (n *Node) requireToken(h http.Handler) http.Handler {
	if n.cfg.MetricsToken == "" {
		return h
	}
	want := []byte("Bearer " + n.cfg.MetricsToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			h.ServeHTTP(w, r)
			return
		}
		// Constant-time compare: the token must not leak through timing.
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="elastickv"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// MetricsAddr is the address the metrics listener is bound to ("" when
// disabled).
func (n *Node) MetricsAddr() string {
	if n.httpLn == nil {
		return ""
	}
	return n.httpLn.Addr().String()
}
