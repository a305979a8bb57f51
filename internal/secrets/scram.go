package secrets

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

const (
	// SCRAMIterations is the PBKDF2 iteration count of generated verifiers,
	// PostgreSQL's default scram_iterations.
	SCRAMIterations = 4096

	// SCRAMSaltLength is the salt size in bytes, as PostgreSQL uses.
	SCRAMSaltLength = 16
)

// ErrPasswordNeedsSASLprep is returned by SCRAMSHA256Verifier for passwords
// with non-ASCII characters. PostgreSQL and libpq normalise such passwords
// with SASLprep (RFC 4013, including Unicode NFKC) before hashing, which the
// standard library cannot reproduce; a verifier computed without it would
// silently refuse the right password.
var ErrPasswordNeedsSASLprep = errors.New("secrets: password contains non-ASCII characters that need SASLprep normalisation")

// SCRAMSHA256Verifier returns the verifier PostgreSQL stores in
// pg_authid.rolpassword for password, in its format
//
//	SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
//
// (RFC 5802 and RFC 7677, standard base64), with a fresh random salt read
// from rnd. Passing the verifier to CREATE or ALTER ROLE ... PASSWORD sets
// the password without the plaintext ever reaching the server, its logs or
// pg_stat_statements.
//
// ASCII passwords are hashed as they are, which matches PostgreSQL and
// libpq: their SASLprep returns pure ASCII unchanged, and uses the raw bytes
// of input that is not valid UTF-8, so such passwords are hashed as is too.
// Other passwords yield ErrPasswordNeedsSASLprep.
func SCRAMSHA256Verifier(password string, rnd io.Reader) (string, error) {
	if password == "" {
		return "", errors.New("secrets: password is empty")
	}
	if needsSASLprep(password) {
		return "", ErrPasswordNeedsSASLprep
	}
	if rnd == nil {
		return "", errors.New("secrets: no source of randomness")
	}
	salt := make([]byte, SCRAMSaltLength)
	if _, err := io.ReadFull(rnd, salt); err != nil {
		return "", fmt.Errorf("secrets: read salt: %w", err)
	}
	storedKey, serverKey, err := scramKeys(password, salt, SCRAMIterations)
	if err != nil {
		return "", err
	}
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s",
		SCRAMIterations, b64(salt), b64(storedKey), b64(serverKey)), nil
}

// scramKeys derives StoredKey and ServerKey as RFC 5802 section 3 defines:
// SaltedPassword = Hi(password, salt, i) (which is PBKDF2 with HMAC),
// ClientKey = HMAC(SaltedPassword, "Client Key"), StoredKey = H(ClientKey),
// ServerKey = HMAC(SaltedPassword, "Server Key").
func scramKeys(password string, salt []byte, iterations int) (storedKey, serverKey []byte, err error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		// Not wrapped: the error of a key derivation has no business in a
		// message that might one day quote its input.
		return nil, nil, errors.New("secrets: derive SCRAM salted password failed")
	}
	clientKey := hmacSHA256(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	return stored[:], hmacSHA256(salted, "Server Key"), nil
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// needsSASLprep reports whether SASLprep could change password: only valid
// UTF-8 with characters beyond ASCII.
func needsSASLprep(password string) bool {
	if !utf8.ValidString(password) {
		return false
	}
	for i := 0; i < len(password); i++ {
		if password[i] >= utf8.RuneSelf {
			return true
		}
	}
	return false
}

// VerifierMatches reports whether verifier (pg_authid's
// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>) was computed
// from password: whether the role would accept it. Anything else (NULL, an
// MD5 hash, a malformed verifier) does not match.
func VerifierMatches(verifier, password string) bool {
	rest, ok := strings.CutPrefix(verifier, "SCRAM-SHA-256$")
	if !ok || needsSASLprep(password) {
		return false
	}
	params, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return false
	}
	iter, salt64, ok1 := strings.Cut(params, ":")
	stored64, server64, ok2 := strings.Cut(keys, ":")
	iterations, err := strconv.Atoi(iter)
	if !ok1 || !ok2 || err != nil || iterations < 1 || iterations > 10_000_000 {
		return false
	}
	salt, err1 := base64.StdEncoding.DecodeString(salt64)
	stored, err2 := base64.StdEncoding.DecodeString(stored64)
	server, err3 := base64.StdEncoding.DecodeString(server64)
	if err1 != nil || err2 != nil || err3 != nil {
		return false
	}
	s, sv, err := scramKeys(password, salt, iterations)
	return err == nil && hmac.Equal(s, stored) && hmac.Equal(sv, server)
}
