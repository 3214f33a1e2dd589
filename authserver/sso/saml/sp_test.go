package saml

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/tenantauth/tenantauth/authserver/problem"
	"github.com/tenantauth/tenantauth/authserver/store"
)

const (
	testACS      = "https://auth.example.test/sso/saml/acs"
	testEntityA  = "https://auth.example.test/orgs/org-acme/saml/metadata"
	testEntityB  = "https://auth.example.test/orgs/org-globex/saml/metadata"
	testPassword = "correct horse battery staple"
)

// flow is one identity provider with one user, and an SP registered with
// it, sharing one store.
type flow struct {
	idp   *testIdP
	md    *IdPMetadata
	store *store.MemoryStore
	sp    *SP
}

func newFlow(t *testing.T) *flow {
	t.Helper()
	f := &flow{idp: newTestIdP(t), store: store.NewMemoryStore()}
	f.idp.AddUser(t, "alice", testPassword, "alice@acme.example", []string{"engineering", "admins"})
	md, err := ParseIdPMetadata(f.idp.Metadata(t), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f.md = md
	f.sp = f.newSP(t, testEntityA, testACS)
	spMetadata, err := f.sp.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	f.idp.Register(t, "acme", spMetadata)
	return f
}

// newSP is a service provider of entityID facing the flow's IdP, as a
// replica of the auth server would build it.
func (f *flow) newSP(t *testing.T, entityID, acs string) *SP {
	t.Helper()
	sp, err := New(Config{EntityID: entityID, ACSURL: acs, IdP: f.md, GroupsAttribute: "eduPersonAffiliation",
		Replay: StoreReplayCache{Store: f.store}})
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// signIn runs a real sign-in for alice at the IdP through sp, and returns
// the response the browser would post to the ACS and the request's ID.
func (f *flow) signIn(t *testing.T, sp *SP) (samlResponse, requestID string) {
	t.Helper()
	redirect, requestID, err := sp.AuthnRequest("relay-1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return f.idp.SignIn(t, redirect, "alice", testPassword), requestID
}

func problemOf(t *testing.T, err error) *problem.Error {
	t.Helper()
	var p *problem.Error
	if !errors.As(err, &p) {
		t.Fatalf("want a catalog error, got %v", err)
	}
	return p
}

func TestSignInThroughRealIdP(t *testing.T) {
	f := newFlow(t)
	resp, requestID := f.signIn(t, f.sp)
	now := time.Now()
	a, err := f.sp.ParseResponse(context.Background(), resp, []string{"id-stale", requestID}, now)
	if err != nil {
		t.Fatalf("ParseResponse: %v", err)
	}
	if a.Email != "alice@acme.example" || a.NameID != "alice@acme.example" || a.Issuer != f.md.EntityID {
		t.Errorf("identity: %+v", a)
	}
	if strings.Join(a.Groups, ",") != "engineering,admins" {
		t.Errorf("groups: %q", a.Groups)
	}
	if a.ID == "" || a.SessionIndex == "" || a.AuthnInstant.IsZero() {
		t.Errorf("ID, session index, authn instant: %+v", a)
	}
	if !a.NotOnOrAfter.After(now) || a.NotOnOrAfter.After(now.Add(10*time.Minute)) {
		t.Errorf("NotOnOrAfter %s is not shortly after %s", a.NotOnOrAfter, now)
	}
	rec, err := f.store.Get(context.Background(), store.KindToken, ReplayRecordID(a.Issuer, a.ID))
	if err != nil {
		t.Fatalf("the assertion was not recorded: %v", err)
	}
	if !rec.ExpiresAt.After(a.NotOnOrAfter.Add(-time.Second)) || strings.Contains(string(rec.Data), a.ID) {
		t.Errorf("replay record: expires %s (assertion until %s), data %s", rec.ExpiresAt, a.NotOnOrAfter, rec.Data)
	}
}

// TestEmailAttribute reads the email from claims.email's attribute, and
// refuses an assertion without it.
func TestEmailAttribute(t *testing.T) {
	f := newFlow(t)
	for _, tc := range []struct {
		attr, want, wantErr string
	}{
		{attr: "mail", want: "alice@acme.example"},
		{attr: "urn:oid:0.9.2342.19200300.100.1.3", want: "alice@acme.example"},
		{attr: "uid", wantErr: "not an email address"},
		{attr: "department", wantErr: `no attribute "department"`},
	} {
		t.Run(tc.attr, func(t *testing.T) {
			sp, err := New(Config{EntityID: testEntityA, ACSURL: testACS, IdP: f.md, EmailAttribute: tc.attr,
				Replay: StoreReplayCache{Store: f.store}})
			if err != nil {
				t.Fatal(err)
			}
			resp, id := f.signIn(t, sp)
			a, err := sp.ParseResponse(context.Background(), resp, []string{id}, time.Now())
			if tc.wantErr != "" {
				if p := problemOf(t, err); p.Code != "saml_response_invalid" || !strings.Contains(p.Message, tc.wantErr) {
					t.Fatalf("got %+v, want %q", p, tc.wantErr)
				}
				return
			}
			if err != nil || a.Email != tc.want || a.Groups != nil {
				t.Fatalf("got %+v, %v", a, err)
			}
		})
	}
}

// TestReplayRefusedAcrossReplicas posts one response twice: to the
// replica that accepted it, and to another one sharing the store.
func TestReplayRefusedAcrossReplicas(t *testing.T) {
	f := newFlow(t)
	resp, id := f.signIn(t, f.sp)
	ctx := context.Background()
	if _, err := f.sp.ParseResponse(ctx, resp, []string{id}, time.Now()); err != nil {
		t.Fatal(err)
	}
	other, err := New(Config{EntityID: testEntityA, ACSURL: testACS, IdP: f.md, Replay: StoreReplayCache{Store: f.store}})
	if err != nil {
		t.Fatal(err)
	}
	for name, sp := range map[string]*SP{"same replica": f.sp, "other replica": other} {
		_, err := sp.ParseResponse(ctx, resp, []string{id}, time.Now())
		if p := problemOf(t, err); p.Code != "saml_assertion_replayed" || p.Status != 401 {
			t.Errorf("%s: got %+v", name, p)
		}
	}
}

// failingStore cannot be reached.
type failingStore struct{ store.Store }

func (failingStore) Create(context.Context, *store.Record) error {
	return errors.New("connection refused")
}

// TestStoreDownIsNotBlamedOnTheClient: an unreachable replay store fails
// closed, with a plain error the HTTP layer answers 503.
func TestStoreDownIsNotBlamedOnTheClient(t *testing.T) {
	f := newFlow(t)
	sp, err := New(Config{EntityID: testEntityA, ACSURL: testACS, IdP: f.md, Replay: StoreReplayCache{Store: failingStore{f.store}}})
	if err != nil {
		t.Fatal(err)
	}
	resp, id := f.signIn(t, sp)
	_, err = sp.ParseResponse(context.Background(), resp, []string{id}, time.Now())
	var p *problem.Error
	if err == nil || errors.As(err, &p) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("got %v, want the store's error", err)
	}
}

// TestBadResponses is every way a response must be refused, each with the
// answer the ACS gives and the reason it names. Each starts from a real
// response of the real IdP.
func TestBadResponses(t *testing.T) {
	f := newFlow(t)
	otherKey, otherCert := newKeyPair(t, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	spB := f.newSP(t, testEntityB, testACS)
	spElsewhere := f.newSP(t, "https://elsewhere.example.test/saml/metadata", "https://elsewhere.example.test/sso/saml/acs")
	idpKey, idpCert := f.idp.Key, f.idp.Cert
	setText := func(el *etree.Element, path, text string) {
		t.Helper()
		target := el.FindElement(path)
		if target == nil {
			t.Fatalf("no %s", path)
		}
		target.SetText(text)
	}
	// evil is an unsigned assertion for mallory, made from the real one.
	evil := func(assertion *etree.Element) *etree.Element {
		e := assertion.Copy()
		if sig := e.FindElement("./Signature"); sig != nil {
			e.RemoveChild(sig)
		}
		e.CreateAttr("ID", "id-evil")
		setText(e, "./Subject/NameID", "mallory@acme.example")
		return e
	}
	xxe := `<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>`
	laughs := `<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>`

	cases := []struct {
		name string
		// make turns a real response, for the request id, into the one
		// posted to sp (default: the flow's SP, which the real response
		// is for) with ids (default: {id}).
		make   func(t *testing.T, resp string) string
		sp     *SP
		ids    func(id string) []string
		at     time.Duration // after now
		status int
		code   string
		reason string
	}{
		{name: "unsigned response and assertion", make: func(t *testing.T, r string) string {
			return forge(t, r, nil, nil, nil, false, false)
		}, status: 401, code: "saml_response_invalid", reason: "not signed"},
		{name: "wrapping: an unsigned assertion injected beside the signed one", make: func(t *testing.T, r string) string {
			return forge(t, r, func(resp, a *etree.Element) { resp.InsertChildAt(a.Index(), evil(a)) }, idpKey, idpCert, true, false)
		}, status: 401, code: "saml_response_invalid", reason: "exactly one assertion, not 2"},
		{name: "wrapping: the signed assertion hidden in the injected one", make: func(t *testing.T, r string) string {
			return forge(t, r, func(resp, a *etree.Element) {
				e := evil(a)
				resp.RemoveChild(a)
				ext := e.CreateElement("saml:Advice")
				ext.AddChild(sign(t, a, idpKey, idpCert))
				resp.AddChild(e)
			}, nil, nil, false, false)
		}, status: 401, code: "saml_response_invalid", reason: "exactly one assertion, not 2"},
		{name: "wrapping: a second assertion after a genuine signed response", make: func(t *testing.T, r string) string {
			x := decoded(t, r)
			doc := etree.NewDocument()
			_ = doc.ReadFromString(x)
			e := evil(doc.Root().FindElement("./Assertion"))
			tail, _ := etree.NewDocumentWithRoot(e).WriteToString()
			i := strings.LastIndex(x, "</")
			return encoded(x[:i] + tail + x[i:])
		}, status: 401, code: "saml_response_invalid", reason: "exactly one assertion, not 2"},
		{name: "tampered: the NameID changed under the signatures", make: func(t *testing.T, r string) string {
			x := decoded(t, r)
			return encoded(strings.Replace(x, ">alice@acme.example<", ">mallory@acme.example<", 1))
		}, status: 401, code: "saml_response_invalid", reason: "signature does not verify"},
		{name: "signed by another certificate", make: func(t *testing.T, r string) string {
			return forge(t, r, nil, otherKey, otherCert, true, true)
		}, status: 401, code: "saml_response_invalid", reason: "certificate the identity provider's metadata does not list"},
		{name: "expired: NotOnOrAfter passed", make: func(t *testing.T, r string) string { return r },
			at: time.Hour, status: 401, code: "saml_response_invalid", reason: "expired"},
		{name: "not yet valid", make: func(t *testing.T, r string) string { return r },
			at: -time.Hour, status: 401, code: "saml_response_invalid", reason: "not valid yet"},
		{name: "for another SP (audience)", make: func(t *testing.T, r string) string { return r },
			sp: spB, status: 401, code: "saml_response_invalid", reason: "another service provider (audience)"},
		{name: "wrong recipient, re-signed by the IdP", make: func(t *testing.T, r string) string {
			return forge(t, r, func(_, a *etree.Element) {
				a.FindElement("./Subject/SubjectConfirmation/SubjectConfirmationData").CreateAttr("Recipient", "https://evil.example/acs")
			}, idpKey, idpCert, true, true)
		}, status: 401, code: "saml_response_invalid", reason: "another recipient"},
		{name: "posted to another ACS (Destination)", make: func(t *testing.T, r string) string { return r },
			sp: spElsewhere, status: 401, code: "saml_response_invalid", reason: "another recipient"},
		{name: "unknown InResponseTo", make: func(t *testing.T, r string) string { return r },
			ids: func(string) []string { return []string{"id-someone-elses"} }, status: 401, code: "saml_response_invalid", reason: "InResponseTo"},
		{name: "no sign-in started (unsolicited)", make: func(t *testing.T, r string) string { return r },
			ids: func(string) []string { return nil }, status: 401, code: "saml_response_invalid", reason: "no SAML sign-in was started"},
		{name: "another issuer, re-signed by the IdP", make: func(t *testing.T, r string) string {
			return forge(t, r, func(resp, a *etree.Element) {
				setText(resp, "./Issuer", "https://evil.example/idp")
				setText(a, "./Issuer", "https://evil.example/idp")
			}, idpKey, idpCert, true, true)
		}, status: 401, code: "saml_response_invalid", reason: "another identity provider"},
		{name: "XXE: an external entity", make: func(t *testing.T, r string) string {
			return withDoctype(t, r, xxe)
		}, status: 400, code: "saml_response_malformed", reason: "DTD"},
		{name: "XXE: the external entity used in the NameID", make: func(t *testing.T, r string) string {
			return encoded(strings.Replace(decoded(t, withDoctype(t, r, xxe)), ">alice@acme.example<", ">&xxe;<", 1))
		}, status: 400, code: "saml_response_malformed", reason: "DTD"},
		{name: "entity expansion (billion laughs)", make: func(t *testing.T, r string) string {
			return withDoctype(t, r, laughs)
		}, status: 400, code: "saml_response_malformed", reason: "DTD"},
		{name: "an undeclared entity", make: func(t *testing.T, r string) string {
			return encoded(strings.Replace(decoded(t, r), ">alice@acme.example<", ">&xxe;<", 1))
		}, status: 400, code: "saml_response_malformed", reason: "not well-formed"},
		{name: "encrypted assertion", make: func(t *testing.T, r string) string {
			return forge(t, r, func(_, a *etree.Element) { a.Tag = "EncryptedAssertion" }, nil, nil, false, false)
		}, status: 401, code: "saml_response_invalid", reason: "encrypted assertion"},
		{name: "not base64", make: func(t *testing.T, r string) string { return "%%%" + r },
			status: 400, code: "saml_response_malformed", reason: "not base64"},
		{name: "not XML", make: func(t *testing.T, r string) string { return encoded("<samlp:Response") },
			status: 400, code: "saml_response_malformed", reason: "not well-formed"},
		{name: "empty", make: func(t *testing.T, r string) string { return "" },
			status: 400, code: "saml_response_malformed", reason: "missing"},
		{name: "too large", make: func(t *testing.T, r string) string { return strings.Repeat("A", MaxResponseBytes+1) },
			status: 400, code: "saml_response_malformed", reason: "larger than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sp := tc.sp
			if sp == nil {
				sp = f.sp
			}
			resp, id := f.signIn(t, f.sp)
			ids := []string{id}
			if tc.ids != nil {
				ids = tc.ids(id)
			}
			a, err := sp.ParseResponse(context.Background(), tc.make(t, resp), ids, time.Now().Add(tc.at))
			if err == nil {
				t.Fatalf("accepted: %+v", a)
			}
			p := problemOf(t, err)
			if p.Status != tc.status || p.Code != tc.code || !strings.Contains(p.Message, tc.reason) {
				t.Fatalf("got %d %s %q (%v), want %d %s with %q", p.Status, p.Code, p.Message, err, tc.status, tc.code, tc.reason)
			}
			// The refused response left no replay record: a refusal
			// must not burn the genuine response for its owner.
			if tc.ids == nil && tc.sp == nil && tc.at == 0 {
				if _, err := sp.ParseResponse(context.Background(), resp, ids, time.Now()); err != nil {
					t.Fatalf("the genuine response is refused after the bad one: %v", err)
				}
			}
		})
	}
}

// TestForgeHarness: a response re-signed unchanged with the IdP's key is
// accepted, so the refusals of re-signed responses above are the
// mutation's, not the harness's.
func TestForgeHarness(t *testing.T) {
	f := newFlow(t)
	for _, sig := range []struct{ assertion, response bool }{{true, false}, {false, true}, {true, true}} {
		resp, id := f.signIn(t, f.sp)
		if _, err := f.sp.ParseResponse(context.Background(), forge(t, resp, nil, f.idp.Key, f.idp.Cert, sig.assertion, sig.response),
			[]string{id}, time.Now()); err != nil {
			t.Errorf("signed %+v: %v", sig, err)
		}
	}
}
