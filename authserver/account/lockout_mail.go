package account

import (
	"context"
	"strings"
	texttemplate "text/template"

	"github.com/tenantauth/tenantauth/authserver/mail"
)

// The mail that tells a user their account is being slowed down.

var lockoutText = texttemplate.Must(texttemplate.New("lockout").Parse(`Hello,

Someone has entered a wrong {{.Factor}} for your account several times in a row, so further sign-in attempts are slowed down for a while.

If this was you, wait a little and try again, or choose a new password at {{.ResetURL}}.
If it was not you, your account is still safe: the attempts failed. Choosing a new password is a good idea all the same.
`))

// mailLockout queues the slow-down notice to email. It never fails the
// request: the notice is a courtesy, the slow-down is the protection.
func (s *Service) mailLockout(ctx context.Context, email, factor string) {
	var text strings.Builder
	_ = lockoutText.Execute(&text, map[string]string{"Factor": factor,
		"ResetURL": s.cfg.PublicURL + s.cfg.PathPrefix + "/auth/forgot-password"})
	m := mail.Message{To: email, Subject: "Failed sign-in attempts on your account", Text: text.String(), Lane: mail.LaneNotice}
	if err := s.deliver(ctx, m); err != nil {
		s.log.Info("lockout notice not queued", "reason", err.Error())
	}
}
