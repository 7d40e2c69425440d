package conjur

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
)

// caPollInterval is how often the CA file (CONJUR_CERT_FILE) is looked at,
// as the mapping file is.
const caPollInterval = time.Second

// newTransport is the HTTP transport to Conjur trusting caPEM (the public
// CAs when it is empty). A changed CA file gets a new transport, so that no
// connection verified against the old CA is reused.
func newTransport(cfg Config, caPEM []byte) *http.Transport {
	var pool *x509.CertPool
	if len(caPEM) > 0 {
		pool = x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
	}
	tr := &http.Transport{
		Proxy:                  nil, // never the ambient HTTPS_PROXY: only CONJUR_SWARM_PROXY (useProxy)
		DialContext:            (&net.Dialer{Timeout: cfg.FetchTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool},
		TLSHandshakeTimeout:    cfg.FetchTimeout,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    32,
		IdleConnTimeout:        90 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: maxHeaderBytes,
	}
	if cfg.Proxy != "" {
		useProxy(tr, cfg, caPEM) // CONNECT tunnels; TLS inside them as without a proxy
	}
	return tr
}

// caFile is the CA certificate file the session trusts, re-read when it
// changes (its size, modification time or inode) and after a TLS failure.
// A file that cannot be read or holds no certificate is logged once per
// version and the CA in use stays.
type caFile struct {
	path string
	log  *zap.Logger

	mu    sync.Mutex // guards the fields below; a leaf
	pem   []byte     // the CA in use
	stamp fileStamp  // of the version last looked at
}

// fileStamp tells file versions apart without reading them.
type fileStamp struct {
	size  int64
	mtime time.Time
	ino   uint64
}

func stampOf(fi os.FileInfo) fileStamp {
	st := fileStamp{size: fi.Size(), mtime: fi.ModTime()}
	if sys, ok := fi.Sys().(interface{ Ino() uint64 }); ok {
		st.ino = sys.Ino()
	}
	return st
}

func newCAFile(path string, pem []byte, log *zap.Logger) *caFile {
	f := &caFile{path: path, log: log, pem: pem}
	if fi, err := os.Stat(path); err == nil {
		f.stamp = stampOf(fi)
	}
	return f
}

// changed re-reads the file when force is set or its stamp changed, and
// returns its content when it is a usable CA different from the one in use.
func (f *caFile) changed(force bool) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fi, err := os.Stat(f.path)
	if err != nil {
		if f.stamp != (fileStamp{}) {
			f.stamp = fileStamp{}
			f.log.Error("the Conjur CA file (CONJUR_CERT_FILE) cannot be read; keeping the CA in use",
				zap.String("path", f.path), zap.Error(err))
		}
		return nil, false
	}
	stamp := stampOf(fi)
	if stamp == f.stamp && !force {
		return nil, false
	}
	f.stamp = stamp
	data, err := readSmallFile(f.path)
	switch {
	case err != nil:
		f.log.Error("the Conjur CA file (CONJUR_CERT_FILE) cannot be read; keeping the CA in use",
			zap.String("path", f.path), zap.Error(err))
		return nil, false
	case bytes.Equal(data, f.pem):
		return nil, false
	case !x509.NewCertPool().AppendCertsFromPEM(data):
		f.log.Error("the Conjur CA file (CONJUR_CERT_FILE) holds no PEM certificate; keeping the CA in use: put the CA that signed Conjur's certificate in it",
			zap.String("path", f.path))
		return nil, false
	}
	f.pem = data
	return data, true
}

// caDigest names a CA version in the log.
func caDigest(pem []byte) string {
	sum := sha256.Sum256(pem)
	return hex.EncodeToString(sum[:8])
}

// reloadCA re-reads the CA file (always when force is set, else only when
// it changed) and, for a new usable CA, swaps in a transport that trusts it
// and lets every URL be tried again at once. It reports whether it did.
func (s *session) reloadCA(force bool, why string) bool {
	if s.ca == nil {
		return false
	}
	pem, ok := s.ca.changed(force)
	if !ok {
		return false
	}
	old := s.transport.Swap(newTransport(s.cfg, pem))
	old.CloseIdleConnections()
	for _, ep := range s.eps {
		ep.mu.Lock()
		ep.retryAt = time.Time{}
		ep.mu.Unlock()
	}
	s.log.Info("Conjur CA certificate reloaded", zap.String("path", s.ca.path), zap.String("why", why),
		zap.String("ca_sha256", caDigest(pem)))
	return true
}

// watchCA looks at the CA file every caPollInterval until the client closes.
func (s *session) watchCA() {
	t := time.NewTicker(caPollInterval)
	defer t.Stop()
	for {
		select {
		case <-s.life.ctx.Done():
			return
		case <-t.C:
			s.reloadCA(false, "the file changed")
		}
	}
}
