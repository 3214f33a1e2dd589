// Package problem is the auth server's error catalog: every error code
// the API answers with is declared here once, with its HTTP status and its
// default message. Code that finds a fault returns one of these, with
// context added where the case needs it; only the HTTP layer turns them
// into responses. Statuses are plain numbers so that nothing below the
// HTTP layer needs net/http.
package problem

import "time"

// Error is an answer in the contract's error shape:
// {"error": {"code": "...", "message": "..."}}. Messages are written for
// the client and never carry a credential.
type Error struct {
	Status  int
	Code    string
	Message string
	// RetryAfter sets the Retry-After header on 429 and 503 answers.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// After returns a copy of e that asks the client to retry after d.
func (e *Error) After(d time.Duration) *Error {
	c := *e
	c.RetryAfter = d
	return &c
}

// A Code is one entry of the catalog.
type Code struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
}

// New returns the error with the catalog's message.
func (c Code) New() *Error {
	return &Error{Status: c.Status, Code: c.Code, Message: c.Message, RetryAfter: c.RetryAfter}
}

// Because returns the error with a message for this case.
func (c Code) Because(message string) *Error {
	e := c.New()
	e.Message = message
	return e
}

// The catalog, by code.
var (
	AccountLocked      = Code{Status: 403, Code: "account_locked", Message: "too many failed sign-in attempts: reset the password (POST /auth/forgot-password) to unlock the account"}
	AlreadyMember      = Code{Status: 409, Code: "already_member", Message: "you are already a member of this organization; sign in instead"}
	APIKeyExpired      = Code{Status: 401, Code: "api_key_expired", Message: "the API key has expired"}
	APIKeyRevoked      = Code{Status: 401, Code: "api_key_revoked", Message: "the API key was revoked"}
	AuthMethodDisabled = Code{Status: 403, Code: "auth_method_disabled", Message: "that organization does not allow this way of signing in"}
	BodyTooLarge       = Code{Status: 413, Code: "body_too_large", Message: "the body must be at most 1 MiB"}
	Busy               = Code{Status: 503, Code: "busy", Message: "too many requests are being processed; retry shortly"}
	Conflict           = Code{Status: 503, Code: "conflict", Message: "the record is being changed concurrently; retry", RetryAfter: time.Second}
	ConflictingFields  = Code{Status: 400, Code: "conflicting_fields", Message: "send either email or email_address, not both"}
	CSRFInvalid        = Code{Status: 403, Code: "csrf_invalid", Message: "a cookie-authenticated request that changes state needs the X-CSRF-Token header of its session"}
	InsufficientRole   = Code{Status: 403, Code: "insufficient_role", Message: "the credential's role is too low for this route"}
	InsufficientScope  = Code{Status: 403, Code: "insufficient_scope", Message: "the API key lacks the scope this route needs"}
	InvalidAPIKey      = Code{Status: 401, Code: "invalid_api_key", Message: "unknown API key"}
	InvalidBody        = Code{Status: 400, Code: "invalid_body", Message: "the body could not be read"}
	InvalidCode        = Code{Status: 400, Code: "invalid_code", Message: "code (or recovery_code) is required"}
	// WrongSignInCode is invalid_code where the code was to prove a
	// sign-in: 401, as for a wrong password.
	WrongSignInCode           = Code{Status: 401, Code: "invalid_code", Message: "the code is wrong or expired"}
	InvalidCredentials        = Code{Status: 401, Code: "invalid_credentials", Message: "the email or password is wrong"}
	InvalidEmail              = Code{Status: 400, Code: "invalid_email", Message: "email must be an email address"}
	InvalidForwardedMethod    = Code{Status: 400, Code: "invalid_forwarded_method", Message: "the original request's method is malformed"}
	InvalidForwardedURI       = Code{Status: 400, Code: "invalid_forwarded_uri", Message: "the original request's URI is malformed"}
	InvalidJSON               = Code{Status: 400, Code: "invalid_json", Message: "the body is not valid JSON for this endpoint"}
	InvalidOrganization       = Code{Status: 400, Code: "invalid_organization", Message: "organization is required (an organization ID or slug)"}
	InvalidPassword           = Code{Status: 400, Code: "invalid_password", Message: "password is required and at most 1024 bytes"}
	InvalidRefreshToken       = Code{Status: 401, Code: "invalid_refresh_token", Message: "the refresh token is malformed or unknown"}
	InvalidRole               = Code{Status: 400, Code: "invalid_role", Message: "the route's role names no role of this organization"}
	InvalidRouteParameters    = Code{Status: 400, Code: "invalid_route_parameters", Message: "the route's org, role or scope is malformed or given twice"}
	InvalidToken              = Code{Status: 401, Code: "invalid_token", Message: "the token is malformed, expired, revoked or unknown"}
	MembershipDisabled        = Code{Status: 403, Code: "membership_disabled", Message: "your membership of this organization is disabled"}
	MembershipInactive        = Code{Status: 401, Code: "membership_inactive", Message: "the membership behind this token was disabled or removed"}
	MethodNotAllowed          = Code{Status: 405, Code: "method_not_allowed", Message: "this method is not allowed for this endpoint"}
	MFARequiredByOrganization = Code{Status: 403, Code: "mfa_required_by_organization", Message: "this organization requires two-factor authentication"}
	MFASetupNotAllowed        = Code{Status: 403, Code: "mfa_setup_not_allowed", Message: "before a session exists, two-factor authentication can be set up only for an organization that requires it"}
	MFAVerifyRequired         = Code{Status: 403, Code: "mfa_verify_required", Message: "two-factor authentication is already on: verify a code with /auth/2fa/verify"}
	NotAMember                = Code{Status: 403, Code: "not_a_member", Message: "you are not a member of that organization"}
	NotFound                  = Code{Status: 404, Code: "not_found", Message: "no such endpoint"}
	OrganizationNotFound      = Code{Status: 404, Code: "organization_not_found", Message: "no such organization"}
	OrganizationNotReady      = Code{Status: 503, Code: "organization_not_ready", Message: "the organization has no signing key yet; retry shortly", RetryAfter: 2 * time.Second}
	RateLimited               = Code{Status: 429, Code: "rate_limited", Message: "too many requests; retry after the time in Retry-After"}
	ReauthenticationRequired  = Code{Status: 403, Code: "reauthentication_required", Message: "this change needs a sign-in within the last 10 minutes: sign in again, then retry"}
	RefreshTokenExpired       = Code{Status: 401, Code: "refresh_token_expired", Message: "the session expired; log in again"}
	RefreshTokenReused        = Code{Status: 401, Code: "refresh_token_reused", Message: "a used refresh token was presented again; the session is revoked"}
	RefreshTokenSpent         = Code{Status: 401, Code: "refresh_token_spent", Message: "this refresh token was just used; use the newest one"}
	SessionExpired            = Code{Status: 401, Code: "session_expired", Message: "the session expired; sign in again"}
	SessionRevoked            = Code{Status: 401, Code: "session_revoked", Message: "the session of this token has ended"}
	SignupClosed              = Code{Status: 403, Code: "signup_closed", Message: "the organization no longer accepts signups from this email domain"}
	SignupRefused             = Code{Status: 409, Code: "signup_refused", Message: "the organization refused the membership; ask an administrator"}
	SignupUnavailable         = Code{Status: 503, Code: "signup_unavailable", Message: "this server cannot create memberships; ask an administrator"}
	SAMLAssertionReplayed     = Code{Status: 401, Code: "saml_assertion_replayed", Message: "this SAML assertion was already used; sign in again"}
	SAMLResponseInvalid       = Code{Status: 401, Code: "saml_response_invalid", Message: "the SAML response is not valid for this service provider"}
	SAMLResponseMalformed     = Code{Status: 400, Code: "saml_response_malformed", Message: "SAMLResponse must be a base64-encoded SAML response without a DTD"}
	SSODenied                 = Code{Status: 401, Code: "sso_denied", Message: "the identity provider did not sign you in"}
	SSOEmailUnverified        = Code{Status: 403, Code: "sso_email_unverified", Message: "the identity provider did not verify your email, and its domain is not verified for this organization"}
	SSOFailed                 = Code{Status: 401, Code: "sso_failed", Message: "the identity provider's answer could not be verified; start the sign-in again"}
	SSONotConfigured          = Code{Status: 404, Code: "sso_not_configured", Message: "no single sign-on connection matches"}
	SSOStateInvalid           = Code{Status: 400, Code: "sso_state_invalid", Message: "this sign-in was not started in this browser, or it expired; start it again"}
	SSOUnavailable            = Code{Status: 503, Code: "sso_unavailable", Message: "the organization's identity provider cannot be reached; retry shortly", RetryAfter: 5 * time.Second}
	SSORequired               = Code{Status: 403, Code: "sso_required", Message: "this organization signs in through its identity provider; use single sign-on"}
	StoreUnavailable          = Code{Status: 503, Code: "store_unavailable", Message: "the session store cannot be reached; retry the request", RetryAfter: 2 * time.Second}
	TokenExpired              = Code{Status: 401, Code: "token_expired", Message: "the access token has expired; refresh it"}
	TokenInvalid              = Code{Status: 401, Code: "token_invalid", Message: "the intermediate session token is malformed or unknown"}
	TokenUsed                 = Code{Status: 401, Code: "token_used", Message: "the intermediate session token was already used"}
	TooManyFailures           = Code{Status: 429, Code: "too_many_failures", Message: "too many failed attempts on this account; retry after the time in Retry-After"}
	TOTPAlreadyEnabled        = Code{Status: 409, Code: "totp_already_enabled", Message: "two-factor authentication is already on; disable it first to set it up again"}
	TOTPNotEnabled            = Code{Status: 400, Code: "totp_not_enabled", Message: "two-factor authentication is not turned on for this user"}
	TOTPNotSetUp              = Code{Status: 400, Code: "totp_not_set_up", Message: "call /auth/2fa/setup first"}
	Unauthenticated           = Code{Status: 401, Code: "unauthenticated", Message: "this endpoint needs a session token or API key"}
	UnsupportedMediaType      = Code{Status: 415, Code: "unsupported_media_type", Message: "the body must be application/json"}
	UserSessionRequired       = Code{Status: 403, Code: "user_session_required", Message: "only a user session can change two-factor authentication"}
	WeakPassword              = Code{Status: 400, Code: "weak_password", Message: "the password is too weak"}
	WrongOrganization         = Code{Status: 403, Code: "wrong_organization", Message: "the credential belongs to another organization"}
)
