package account

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"image/png"
	"net/url"
	"strings"
	"time"

	"github.com/tenantauth/tenantauth/authserver/problem"

	"github.com/tenantauth/tenantauth/internal/b32"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters: RFC 6238 defaults, which every authenticator app reads.
const (
	TotpPeriod = 30
	// totpSkew accepts the codes of one step before and after now, for
	// clock drift and slow typing.
	totpSkew          = 1
	RecoveryCodeCount = 10
	// recoveryCodeBytes is each recovery code's randomness: 120 bits, over
	// the 112 the trust model asks of a recovery code, as 24 base32
	// characters.
	recoveryCodeBytes = 15
)

// The answers to a second factor that does not check out.
var (
	ErrCodeRequired = problem.InvalidCode.New()
	errTOTPNotOn    = problem.TOTPNotEnabled.New()
	ErrTOTPOn       = problem.TOTPAlreadyEnabled.New()
)

// SecondFactorError is a wrong, replayed or unknown code. It is answered
// with status, and counts as a failure.
type SecondFactorError struct{ replay bool }

func (e *SecondFactorError) Error() string { return "wrong second factor" }

func (e *SecondFactorError) Answer(c problem.Code, detail string) *problem.Error {
	msg := "the code is wrong or expired"
	if e.replay {
		msg = "the code was already used; wait for the next one"
	}
	if detail != "" {
		msg += "; " + detail
	}
	return c.Because(msg)
}

// newTOTPKey makes a fresh TOTP key for an account.
func (s *Service) NewTOTPKey(email string) (*otp.Key, error) {
	issuer := "tenantauth"
	if u, err := url.Parse(s.cfg.PublicURL); err == nil && u.Hostname() != "" {
		issuer = u.Hostname()
	}
	return totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: email, Period: TotpPeriod,
		SecretSize: 20, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
}

// QRDataURL renders the key's otpauth URL as a PNG data URL.
func QRDataURL(key *otp.Key) (string, error) {
	img, err := key.Image(256, 256)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return "", err
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// totpStep finds the time step whose code is code, within the skew, in
// constant time per step. ok is false when none matches.
func totpStep(secret, code string, now time.Time) (step int64, ok bool) {
	code = strings.Join(strings.Fields(code), "")
	if len(code) != 6 {
		return 0, false
	}
	cur := now.Unix() / TotpPeriod
	for st := cur - totpSkew; st <= cur+totpSkew; st++ {
		want, err := hotp.GenerateCodeCustom(secret, uint64(st), hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			step, ok = st, true
		}
	}
	return step, ok
}

// CheckSecondFactor checks a TOTP code or a recovery code against c and
// records its use in c: the code's step becomes TOTPLastStep, so neither
// it nor an earlier one works again, and a recovery code is removed. Run it
// inside UpdateCredentials, whose compare-and-swap makes two concurrent
// uses of one code fail for one of them. key is the recovery-code key.
func CheckSecondFactor(c *Credentials, code, recovery string, now time.Time, key []byte) error {
	if !c.TOTPEnabled || c.TOTPSecret == "" {
		return errTOTPNotOn
	}
	if recovery != "" {
		h := []byte(recoveryHash(key, NormalizeRecoveryCode(recovery)))
		match := -1
		// Every stored hash is compared, in constant time, so the time
		// says nothing about which one matched.
		for i, stored := range c.RecoveryHashes {
			if subtle.ConstantTimeCompare(h, []byte(stored)) == 1 {
				match = i
			}
		}
		if match < 0 {
			return &SecondFactorError{}
		}
		c.RecoveryHashes = append(c.RecoveryHashes[:match:match], c.RecoveryHashes[match+1:]...)
		return nil
	}
	step, ok := totpStep(c.TOTPSecret, code, now)
	if !ok {
		return &SecondFactorError{}
	}
	if step <= c.TOTPLastStep {
		return &SecondFactorError{replay: true}
	}
	c.TOTPLastStep = step
	return nil
}

// NewRecoveryCodes makes single-use recovery codes (six dash-separated
// groups of four base32 characters, 120 random bits each) and their keyed
// hashes, which are all that is stored.
func NewRecoveryCodes(key []byte) (codes, hashes []string) {
	for range RecoveryCodeCount {
		b := make([]byte, recoveryCodeBytes)
		if _, err := rand.Read(b); err != nil {
			panic(err)
		}
		raw := b32.Lower.EncodeToString(b)
		groups := make([]string, 0, len(raw)/4)
		for i := 0; i < len(raw); i += 4 {
			groups = append(groups, raw[i:i+4])
		}
		codes = append(codes, strings.Join(groups, "-"))
		hashes = append(hashes, recoveryHash(key, raw))
	}
	return codes, hashes
}

// recoveryHash is the stored form of a normalised recovery code:
// HMAC-SHA256 under the server's recovery-code key, so a copy of the store
// alone cannot check guesses.
func recoveryHash(key []byte, normalized string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(normalized))
	return hex.EncodeToString(m.Sum(nil))
}

// NormalizeRecoveryCode drops case, spaces and dashes, as users type them.
func NormalizeRecoveryCode(c string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == ' ':
			return -1
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return r
	}, c)
}

// WithAMR adds a method to an amr list once.
func WithAMR(amr []string, method string) []string {
	out := append([]string(nil), amr...)
	for _, a := range out {
		if a == method {
			return out
		}
	}
	return append(out, method)
}
