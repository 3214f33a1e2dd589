package domains

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/tenantauth/tenantauth/internal/testenv"
)

func TestIsPublicMail(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"gmail.com", true},
		{"googlemail.com", true},
		{"outlook.com", true},
		{"outlook.fr", true},
		{"hotmail.co.uk", true},
		{"yahoo.com", true},
		{"yahoo.com.br", true},
		{"icloud.com", true},
		{"proton.me", true},
		{"gmx.de", true},
		{"gmx.net", true},
		{"yandex.ru", true},
		{"yandex.com.tr", true},
		{"mail.ru", true},
		{"qq.com", true},
		{"163.com", true},
		{"GMail.COM.", true},
		{"eu.gmail.com", true},
		{"mail.yahoo.co.uk", true},
		{"acme.com", false},
		{"outlook.acme.com", false},
		{"gmx.acme.co", false},
		{"notgmail.com", false},
		{"gmail.com.acme.com", false},
		{"mymail.ru", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsPublicMail(tt.name); got != tt.want {
				t.Fatalf("IsPublicMail(%q) = %v, want %v", tt.name, got, tt.want)
			}
		})
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"acme.com", true},
		{"eu.acme.co.uk", true},
		{"xn--bcher-kva.example", true},
		{"Acme.com", false},
		{"acme.com.", false},
		{"localhost", false},
		{"-acme.com", false},
		{"acme_x.com", false},
		{"*.acme.com", false},
		{strings.Repeat("a", 64) + ".com", false},
		{strings.Repeat("a.", 120) + "com", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ValidName(tt.name); (err == nil) != tt.ok {
				t.Fatalf("ValidName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
			}
		})
	}
}

func TestTokenIsStableAndPerOrganization(t *testing.T) {
	key := []byte("installation key")
	a := Token(key, "uid-a", "acme.com")
	if a != Token(key, "uid-a", "acme.com") || len(a) != 32 {
		t.Fatalf("token %q is not stable or not 32 characters", a)
	}
	for _, other := range []string{Token(key, "uid-b", "acme.com"), Token(key, "uid-a", "acme.org"), Token([]byte("other"), "uid-a", "acme.com")} {
		if other == a {
			t.Fatal("two organizations, domains or installations share a token")
		}
	}
}

// fakeResolver answers one name; a unit test of Check's reading of
// answers (the envtest suites run a real DNS server).
type fakeResolver struct {
	txt []string
	err error
}

func (f fakeResolver) LookupTXT(context.Context, string) ([]string, error) { return f.txt, f.err }

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		r       fakeResolver
		want    Result
		wantErr bool
	}{
		{"the token", fakeResolver{txt: []string{"v=spf1 -all", "tok"}}, Verified, false},
		{"the token with spaces", fakeResolver{txt: []string{" tok "}}, Verified, false},
		{"another value", fakeResolver{txt: []string{"tok2"}}, Missing, false},
		{"no such name", fakeResolver{err: &net.DNSError{Err: "no such host", IsNotFound: true}}, Missing, false},
		{"a timeout", fakeResolver{err: &net.DNSError{Err: "i/o timeout", IsTimeout: true}}, Missing, true},
		{"a server failure", fakeResolver{err: errors.New("server misbehaving")}, Missing, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Check(context.Background(), tt.r, "acme.com", "tok")
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Fatalf("Check = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// TestCheckAgainstADNSServer sends real queries through NewResolver to a
// DNS server on 127.0.0.1, as --dns-resolver does.
func TestCheckAgainstADNSServer(t *testing.T) {
	srv := testenv.StartDNS(t)
	r, err := NewResolver(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetTXT(ChallengeName("acme.com"), "unrelated", "tok")
	srv.SetTXT(ChallengeName("long.com"), strings.Repeat("x", 300)+"tok")
	srv.SetTXT(ChallengeName("other.com"), "not-the-token")
	srv.SetFailing(ChallengeName("broken.com"), true)
	tests := []struct {
		domain, token string
		want          Result
		wantErr       bool
	}{
		{"acme.com", "tok", Verified, false},
		{"long.com", strings.Repeat("x", 300) + "tok", Verified, false},
		{"other.com", "tok", Missing, false},
		{"absent.com", "tok", Missing, false},
		{"broken.com", "tok", Missing, true},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			got, err := Check(context.Background(), r, tt.domain, tt.token)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Fatalf("Check = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
	if srv.Queries(ChallengeName("acme.com")) == 0 {
		t.Fatal("the resolver did not ask the server")
	}
	if _, err := NewResolver("127.0.0.1"); err == nil {
		t.Fatal("an address without a port was accepted")
	}
}
