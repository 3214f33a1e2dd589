package authserver

import "github.com/tenantauth/tenantauth/authserver/session"

// requireRecentSignIn answers 403 reauthentication_required unless the
// principal's family signed in within session.ReauthWindow.
func (s *Server) requireRecentSignIn(p *Principal) error {
	if p.AuthTime.IsZero() || s.cfg.Now().Sub(p.AuthTime) > session.ReauthWindow {
		return session.ErrReauth
	}
	return nil
}
