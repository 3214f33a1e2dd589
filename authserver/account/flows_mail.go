package account

import (
	htmltemplate "html/template"
	"net/url"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/tenantauth/tenantauth/authserver/directory"

	"github.com/tenantauth/tenantauth/authserver/mail"
)

// mailContent is what the account mail templates fill in.
type mailContent struct {
	Intro   string // what the link does, one sentence
	Action  string // the button text
	Link    string
	Expires string // "15 minutes"
	Outro   string // what to do if the mail was not expected
}

var mailText = texttemplate.Must(texttemplate.New("text").Parse(`Hello,

{{.Intro}}

{{.Link}}

The link works once and expires in {{.Expires}}.
{{.Outro}}
`))

var mailHTML = htmltemplate.Must(htmltemplate.New("html").Parse(`<!DOCTYPE html>
<html><body style="font-family: sans-serif; line-height: 1.5">
<p>Hello,</p>
<p>{{.Intro}}</p>
<p><a href="{{.Link}}" style="display: inline-block; padding: 10px 18px; background: #1a56db; color: #ffffff; text-decoration: none; border-radius: 4px">{{.Action}}</a></p>
<p style="color: #555555; font-size: 13px">Or paste this address into your browser: {{.Link}}</p>
<p style="color: #555555; font-size: 13px">The link works once and expires in {{.Expires}}. {{.Outro}}</p>
</body></html>
`))

// link builds a link to path on the server's public URL, under its path
// prefix, carrying the token as a query parameter.
func (s *Service) link(path, raw string) string {
	return s.cfg.PublicURL + s.cfg.PathPrefix + path + "?token=" + url.QueryEscape(raw)
}

// buildMail renders a message; templates cannot fail on these values.
func buildMail(to, subject string, c mailContent, expires time.Time) mail.Message {
	var text, html strings.Builder
	_ = mailText.Execute(&text, c)
	_ = mailHTML.Execute(&html, c)
	return mail.Message{To: to, Subject: subject, Text: text.String(), HTML: html.String(), Expires: expires}
}

func magicLinkMail(s *Service, to, raw string, org *directory.Org, expires time.Time) mail.Message {
	subject, intro := "Your sign-in link", "Use this link to sign in:"
	if org != nil {
		subject, intro = "Your sign-in link for "+org.Name, "Use this link to sign in to "+org.Name+":"
	}
	return buildMail(to, subject, mailContent{Intro: intro, Action: "Sign in",
		Link: s.link("/users/authenticate-magic-link", raw), Expires: "15 minutes",
		Outro: "If you did not ask to sign in, ignore this mail."}, expires)
}

func verifyEmailMail(s *Service, to, raw string, org *directory.Org, expires time.Time) mail.Message {
	return buildMail(to, "Confirm your email to join "+org.Name, mailContent{
		Intro: "Confirm your email address to finish joining " + org.Name + ":", Action: "Confirm email",
		Link: s.link("/auth/verify-email", raw), Expires: "24 hours",
		Outro: "If you did not sign up, ignore this mail: no account is made without it."}, expires)
}

func ResetMail(s *Service, to, raw string, expires time.Time) mail.Message {
	return buildMail(to, "Reset your password", mailContent{
		Intro: "Use this link to choose a new password. Choosing one signs you out everywhere.", Action: "Choose a new password",
		Link: s.link("/auth/reset-password", raw), Expires: "1 hour",
		Outro: "If you did not ask for this, ignore this mail: your password stays as it is."}, expires)
}

// noticeContent is what the added-to-organization notice fills in. Name is
// the organization's displayName, which that organization's
// administrators choose: it is quoted as data, never made the subject or
// an instruction.
type noticeContent struct {
	Email string
	Name  string // quoted, control characters escaped
	Slug  string
	ID    string
}

var noticeText = texttemplate.Must(texttemplate.New("notice").Parse(`Hello,

Your account {{.Email}} was added to another organization.

  Organization name (as its administrators wrote it): {{.Name}}
  Organization slug: {{.Slug}}
  Organization ID: {{.ID}}

Your password and your other ways of signing in did not change, and your
other organizations are not affected. This notice needs nothing from you.

The organization's name above is chosen by that organization, not by us:
do not follow instructions in it. We never ask for your password or your
codes by mail. If you did not expect to join it, tell your administrator.
`))

var noticeHTML = htmltemplate.Must(htmltemplate.New("notice").Parse(`<!DOCTYPE html>
<html><body style="font-family: sans-serif; line-height: 1.5">
<p>Hello,</p>
<p>Your account {{.Email}} was added to another organization.</p>
<table style="font-size: 14px">
<tr><td>Organization name (as its administrators wrote it):</td><td><code>{{.Name}}</code></td></tr>
<tr><td>Organization slug:</td><td><code>{{.Slug}}</code></td></tr>
<tr><td>Organization ID:</td><td><code>{{.ID}}</code></td></tr>
</table>
<p>Your password and your other ways of signing in did not change, and your other organizations are not affected. This notice needs nothing from you.</p>
<p style="color: #555555; font-size: 13px">The organization's name above is chosen by that organization, not by us: do not follow instructions in it. We never ask for your password or your codes by mail. If you did not expect to join it, tell your administrator.</p>
</body></html>
`))

// maxNoticeName bounds how much of a displayName a notice quotes.
const maxNoticeName = 100

// quoteName renders an attacker-controlled name as one quoted line: at
// most maxNoticeName runes, with newlines and other control or invisible
// characters escaped, so it cannot pose as the mail's own text.
func quoteName(name string) string {
	if r := []rune(name); len(r) > maxNoticeName {
		name = string(r[:maxNoticeName]) + "…"
	}
	return strconv.QuoteToGraphic(name)
}

// addedToOrgMail tells an existing user that a signup added them to org.
func addedToOrgMail(_ *Service, to string, org *directory.Org) mail.Message {
	c := noticeContent{Email: to, Name: quoteName(org.Name), Slug: org.Slug, ID: org.ID}
	var text, html strings.Builder
	_ = noticeText.Execute(&text, c)
	_ = noticeHTML.Execute(&html, c)
	return mail.Message{To: to, Subject: "You were added to an organization", Text: text.String(), HTML: html.String()}
}
