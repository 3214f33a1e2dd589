package authserver

import (
	"net/http"

	"github.com/tenantauth/tenantauth/authserver/problem"
)

// acceptedBody is the one answer of send-magic-link, register and
// forgot-password.
var acceptedBody = map[string]string{"status": "accepted",
	"message": "if the address can receive this mail, it is on its way"}

func writeAccepted(w http.ResponseWriter) {
	writeJSON(w, http.StatusAccepted, acceptedBody)
}

// emailRequest is the body of forgot-password.
type emailRequest struct {
	Email string `json:"email"`
}

// readEmail decodes and checks the email field of an account-flow body.
func readEmail(raw, field string) (string, error) {
	email := normalizeEmail(raw)
	if !validEmail(email) {
		return "", problem.InvalidEmail.Because(field + " must be an email address")
	}
	return email, nil
}
