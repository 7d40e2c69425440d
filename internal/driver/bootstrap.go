package driver

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// maxCredentialBytes bounds a bootstrap body: a credential is an API key or a
// JWT, a few KiB at most.
const maxCredentialBytes = 64 << 10

// adoptTimeout bounds the authentication that checks a handed-over credential.
const adoptTimeout = 20 * time.Second

// Bootstrap takes a credential handed over by the bootstrap agent: it parses
// it, lets the Conjur client authenticate with it (which accepts only the
// login pinned in CONJUR_AUTHN_LOGIN) and adopts it. The credential lives in
// memory only. The answer carries an HTTP status for the endpoint; the log
// line names the fingerprint, never the key.
func (d *Driver) Bootstrap(ctx context.Context, body io.Reader) (pluginapi.BootstrapAnswer, int) {
	data, err := io.ReadAll(io.LimitReader(body, maxCredentialBytes+1))
	if err != nil {
		return d.bootstrapFailed("", errcode.CredentialRejected, http.StatusBadRequest, "the credential could not be read", err)
	}
	if len(data) > maxCredentialBytes {
		return d.bootstrapFailed("", errcode.CredentialRejected, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("the credential is larger than %d bytes; hand over {\"login\":...,\"api_key\":...} or {\"jwt\":...}", maxCredentialBytes), nil)
	}
	h, err := pluginapi.ParseHandoff(data)
	clear(data)
	if err != nil {
		return d.bootstrapFailed("", errcode.CredentialRejected, http.StatusBadRequest,
			"the credential cannot be used: "+pluginapi.OneLine(err)+"; fix the bootstrap secret", nil)
	}
	cred := h.Credential
	fp := cred.Fingerprint()
	if d.notConfigured { // answer that before the Conjur checks below, which would fail for want of settings
		return d.bootstrapFailed(fp, errcode.NotConfigured, http.StatusServiceUnavailable,
			d.configProblem+"; "+errcode.NotConfigured.Fix(), nil)
	}
	// Before anything reaches Conjur: a credential for another Conjur
	// (another account, or none of this plugin's URLs) is not sent to ours.
	if why := h.ConjurMismatch(d.opts.Account, d.opts.ApplianceURLs); why != "" {
		return d.bootstrapFailed(fp, errcode.CredentialRejected, http.StatusBadRequest,
			"the credential belongs to another Conjur: "+why+" (CONJUR_ACCOUNT, CONJUR_APPLIANCE_URL); hand over this plugin's credential, or fix the bootstrap secret's account and appliance_url", nil)
	}
	ctx, cancel := context.WithTimeout(ctx, adoptTimeout)
	defer cancel()
	if err := d.opts.Conjur.Adopt(ctx, cred); err != nil {
		code, msg := conjurFailure(err)
		return d.bootstrapFailed(fp, code, code.HandoffStatus(), msg, err)
	}
	if d.pf != nil { // values fetched under the identity before are not handed out under this one
		d.pf.wipe()
	}
	d.log.Info("credential handoff accepted", zap.String("login", pluginapi.LogText(cred.Login)), zap.String("fingerprint", fp))
	d.handoff.note(pluginapi.HandoffState{At: d.opts.Now(), Accepted: true, Fingerprint: fp})
	return pluginapi.BootstrapAnswer{OK: true, Fingerprint: fp}, http.StatusOK
}

func (d *Driver) bootstrapFailed(fp string, code errcode.Code, status int, msg string, cause error) (pluginapi.BootstrapAnswer, int) {
	text := fmt.Sprintf("conjur-swarm [%s] credential handoff", code)
	if fp != "" {
		text += fmt.Sprintf(" (fingerprint %s)", fp)
	}
	text += ": " + msg
	logFields := []zap.Field{zap.String("code", string(code)), zap.String("fingerprint", fp), zap.String("err", text)}
	if cause != nil {
		logFields = append(logFields, zap.String("cause", causeText(cause)))
	}
	d.log.Warn("credential handoff rejected", logFields...)
	d.handoff.note(pluginapi.HandoffState{At: d.opts.Now(), Code: code, Fingerprint: fp, Err: text})
	return pluginapi.BootstrapAnswer{Err: text}, status
}
