package authserver

import (
	"net/http"
	"slices"
	"testing"
)

// TestSignupNeedsAVerifiedDomain plays issue 13's signup attack. Eve's
// organization evil lists acme.com in selfSignup.allowedEmailDomains
// without holding the operator's claim of it: a cluster admin admitted
// the entry with a warning, it predates the admission rule, or the domain
// lost its verification since. Eve registers bob@acme.com into evil, to
// mail him a genuine "confirm your email" link under her organization's
// name. Whether acme.com is verified for nobody or for the real company
// acme, the answer is the same 202 as any register, bob gets no mail, and
// a link minted while evil still held the domain creates no Membership
// once it does not. acme, with acme.com verified, keeps its own
// self-signup working end to end.
func TestSignupNeedsAVerifiedDomain(t *testing.T) {
	tests := []struct {
		name string
		// claim is the organization acme.com is verified for; "" none.
		claim string
	}{
		{"acme.com verified for nobody", ""},
		{"acme.com verified for acme", "demo/acme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFlowHarness(t)
			evil := h.addOrg("eve/evil", "org_evil", "evil", "Acme IT", "ES256")
			evil.SignupDomain = []string{"acme.com"}
			h.org("demo/acme").SignupDomain = []string{"acme.com"}
			h.dir.PutVerifiedDomain("acme.com", tt.claim)

			register := func(email, org string) response {
				t.Helper()
				r := h.do("POST", "/auth/register", map[string]string{"email": email, "password": goodPassword, "organization": org})
				if r.status != http.StatusAccepted {
					t.Fatalf("register %s into %s: %d %s", email, org, r.status, r.raw)
				}
				signupCookieOf(t, r) // set whatever the outcome
				return r
			}
			attack := register("bob@acme.com", "evil")
			closed := register("bob@acme.com", "globex") // no self-signup at all
			if attack.raw != closed.raw {
				t.Fatalf("the answer tells an unverified domain apart: %q vs %q", attack.raw, closed.raw)
			}
			if ms := h.mailsTo("bob@acme.com"); len(ms) != 0 {
				t.Fatalf("evil mailed bob through a domain it has not verified: %+v", ms)
			}

			// A link from while evil held acme.com's claim, which it has
			// lost (or acme won) since.
			h.dir.PutVerifiedDomain("acme.com", "eve/evil")
			carol := register("carol@acme.com", "evil")
			tok := h.tokenFromMail("carol@acme.com")
			h.dir.PutVerifiedDomain("acme.com", tt.claim)
			v := h.do("POST", "/auth/verify-email", map[string]string{"token": tok}, "Cookie", signupCookieOf(t, carol))
			if v.status != http.StatusForbidden || v.errCode() != "signup_closed" || v.str("access_token") != "" {
				t.Fatalf("verify-email into evil after it lost acme.com: %d %s", v.status, v.raw)
			}
			if got := h.members.list(); len(got) != 0 {
				t.Fatalf("memberships created through an unverified domain: %v", got)
			}
			if _, ok := h.dir.MemberAnyState("carol@acme.com", "eve/evil"); ok {
				t.Fatal("carol is in evil's directory")
			}

			// The victim signs its own people up only with the domain verified.
			dan := register("dan@acme.com", "acme")
			if tt.claim == "" {
				if ms := h.mailsTo("dan@acme.com"); len(ms) != 0 {
					t.Fatalf("acme has not verified acme.com either, yet mailed: %+v", ms)
				}
				return
			}
			v = h.do("POST", "/auth/verify-email", map[string]string{"token": h.tokenFromMail("dan@acme.com")}, "Cookie", signupCookieOf(t, dan))
			if v.status != http.StatusOK || v.str("organization.slug") != "acme" || v.str("access_token") == "" {
				t.Fatalf("acme's own signup: %d %s", v.status, v.raw)
			}
			if got := h.members.list(); !slices.Equal(got, []string{"demo/acme|dan@acme.com|member"}) {
				t.Fatalf("memberships created: %v", got)
			}
			h.login("dan@acme.com", goodPassword, "acme")
		})
	}
}
