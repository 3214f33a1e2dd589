package account

import (
	_ "embed"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tenantauth/tenantauth/authserver/problem"
)

// maxPasswordRunes is the longest password accepted; NIST SP 800-63B asks
// for at least 64.
const maxPasswordRunes = 256

//go:embed passwords/common-passwords.txt
var commonPasswordList string

// CommonPasswords holds the 10,000 most common passwords, lower-cased (see
// passwords/README.md for where the list comes from).
var CommonPasswords = func() map[string]struct{} {
	m := make(map[string]struct{}, 10_000)
	for _, line := range strings.Split(commonPasswordList, "\n") {
		if line = strings.TrimRight(line, "\r"); line != "" {
			m[strings.ToLower(line)] = struct{}{}
		}
	}
	return m
}()

// checkPassword applies the rules of NIST SP 800-63B 5.1.1.2 to a new
// password: at least MinPasswordLength and at most 256 characters, any
// characters, and not one of the 10,000 most common passwords nor the
// user's own email or its local part, nor blank (see blankPassword). It
// is checked in its NFKC form, the form that is hashed. No composition
// rules. The answer
// says which rule failed and nothing about the account.
func (s *Service) CheckPassword(password, email string) error {
	if err := checkPasswordEncoding(password); err != nil {
		return err
	}
	if blankPassword(password) {
		return weakPassword("the password must hold visible characters, not only spaces or invisible ones")
	}
	password = normalizePassword(password)
	n := utf8.RuneCountInString(password)
	minLen := s.cfg.MinPasswordLength
	switch {
	case n < minLen:
		return weakPassword("the password must be at least " + strconv.Itoa(minLen) + " characters long")
	case n > maxPasswordRunes:
		return weakPassword("the password must be at most " + strconv.Itoa(maxPasswordRunes) + " characters long")
	}
	lower := strings.ToLower(password)
	if _, common := CommonPasswords[lower]; common {
		return weakPassword("the password is one of the most commonly used passwords; choose another")
	}
	if email != "" {
		local, _, _ := strings.Cut(email, "@")
		if lower == email || lower == local {
			return weakPassword("the password must not be your email address")
		}
	}
	return nil
}

func weakPassword(msg string) *problem.Error {
	return problem.WeakPassword.Because(msg)
}
