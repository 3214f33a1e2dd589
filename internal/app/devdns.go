package app

import (
	"context"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/domains"
	"github.com/tenantauth/tenantauth/internal/testenv"
)

// devDomainRetry is how often `tenantauth dev`'s operator looks up a
// domain not verified yet: its own DNS server answers at once, so a
// domain listed in spec.domains verifies within seconds, not a minute.
const devDomainRetry = 2 * time.Second

// publishDevChallenges plays, for `tenantauth dev` without
// --dns-resolver, the administrator of every domain: each `every`, it
// publishes every Organization's status.domains[].verificationToken as
// the TXT record _tenantauth-challenge.<name> in dev's own DNS server,
// which the operator asks instead of the system resolver. So a domain
// listed in spec.domains (the samples' acme.com among them) is verified
// and claimed as in production, and self-signup and SSO, which speak only
// for verified domains, can be tried on one machine. Reading status is
// what an administrator does too; the auth server still trusts only the
// operator's claims. Two Organizations listing one domain both get their
// token published, and the first to claim it keeps it.
func publishDevChallenges(ctx context.Context, c client.Reader, srv *testenv.DNSServer, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	published := map[string]bool{}
	for {
		var orgs tav1.OrganizationList
		if err := c.List(ctx, &orgs); err == nil {
			tokens := map[string][]string{}
			for _, o := range orgs.Items {
				for _, d := range o.Status.Domains {
					if d.VerificationToken != "" {
						name := domains.ChallengeName(d.Name)
						tokens[name] = append(tokens[name], d.VerificationToken)
					}
				}
			}
			for name := range published {
				if _, ok := tokens[name]; !ok {
					srv.SetTXT(name)
					delete(published, name)
				}
			}
			for name, values := range tokens {
				srv.SetTXT(name, values...)
				published[name] = true
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
