package secrets

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var verifierRE = regexp.MustCompile(`^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$`)

type parsedVerifier struct {
	iterations                 int
	salt, storedKey, serverKey []byte
}

func parseVerifier(t *testing.T, v string) parsedVerifier {
	t.Helper()
	m := verifierRE.FindStringSubmatch(v)
	if m == nil {
		t.Fatalf("verifier %q does not have PostgreSQL's format", v)
	}
	iter, err := strconv.Atoi(m[1])
	if err != nil {
		t.Fatal(err)
	}
	dec := func(s string) []byte {
		b, err := base64.StdEncoding.Strict().DecodeString(s)
		if err != nil {
			t.Fatalf("bad base64 %q: %v", s, err)
		}
		return b
	}
	return parsedVerifier{iterations: iter, salt: dec(m[2]), storedKey: dec(m[3]), serverKey: dec(m[4])}
}

func mac(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func xor(a, b []byte) []byte {
	out := make([]byte, len(a))
	for i := range a {
		out[i] = a[i] ^ b[i]
	}
	return out
}

// serverAccepts is what PostgreSQL does with a client's proof: recover
// ClientKey from the proof and the ClientSignature only StoredKey can
// produce, and compare its hash with StoredKey (RFC 5802, section 3).
func serverAccepts(v parsedVerifier, authMessage string, proof []byte) bool {
	clientKey := xor(proof, mac(v.storedKey, authMessage))
	sum := sha256.Sum256(clientKey)
	return hmac.Equal(sum[:], v.storedKey)
}

// clientProof is what a client computes from the password alone.
func clientProof(t *testing.T, password string, salt []byte, iterations int, authMessage string) []byte {
	t.Helper()
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		t.Fatal(err)
	}
	clientKey := mac(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	return xor(clientKey, mac(stored[:], authMessage))
}

// TestSCRAMVerifierRFC7677 checks the verifier against the exchange
// published in RFC 7677, section 3: user "user", password "pencil".
func TestSCRAMVerifierRFC7677(t *testing.T) {
	const (
		clientFirstBare = "n=user,r=rOprNGfwEbeRWgbNEkqO"
		serverFirst     = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
		clientFinalBare = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
		proofB64        = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
		serverSigB64    = "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
		saltB64         = "W22ZaJ0SNY7soEsUEjb6gQ=="
	)
	authMessage := clientFirstBare + "," + serverFirst + "," + clientFinalBare
	salt, _ := base64.StdEncoding.DecodeString(saltB64)
	proof, _ := base64.StdEncoding.DecodeString(proofB64)

	verifier, err := SCRAMSHA256Verifier("pencil", &byteReader{data: salt})
	if err != nil {
		t.Fatal(err)
	}
	v := parseVerifier(t, verifier)
	if v.iterations != 4096 || !bytes.Equal(v.salt, salt) {
		t.Fatalf("iterations %d, salt %x: not the ones supplied", v.iterations, v.salt)
	}
	if !serverAccepts(v, authMessage, proof) {
		t.Error("the RFC's client proof does not validate against StoredKey")
	}
	if got := base64.StdEncoding.EncodeToString(mac(v.serverKey, authMessage)); got != serverSigB64 {
		t.Errorf("ServerSignature = %s, want the RFC's %s", got, serverSigB64)
	}
}

func TestSCRAMVerifierRoundTrip(t *testing.T) {
	const authMessage = "n=app,r=abc,r=abcdef,s=c2FsdA==,i=4096,c=biws,r=abcdef"
	for _, password := range []string{
		"generated0123456789abcdefghijABCDEFGHIJ",
		`p@ss:w/rd?#%&+= '"\`,
		"x",
		"\xff\xfe not UTF-8", // PostgreSQL hashes invalid UTF-8 as raw bytes
	} {
		verifier, err := SCRAMSHA256Verifier(password, rand.Reader)
		if err != nil {
			t.Fatalf("SCRAMSHA256Verifier: %v", err)
		}
		v := parseVerifier(t, verifier)
		if v.iterations != SCRAMIterations || len(v.salt) != SCRAMSaltLength ||
			len(v.storedKey) != sha256.Size || len(v.serverKey) != sha256.Size {
			t.Fatalf("verifier %q has wrong sizes", verifier)
		}
		if !serverAccepts(v, authMessage, clientProof(t, password, v.salt, v.iterations, authMessage)) {
			t.Errorf("proof from the right password rejected")
		}
		if serverAccepts(v, authMessage, clientProof(t, password+"x", v.salt, v.iterations, authMessage)) {
			t.Errorf("proof from a wrong password accepted")
		}
		if len(password) > 4 && bytes.Contains([]byte(verifier), []byte(password)) {
			t.Error("verifier contains the password")
		}
		again, err := SCRAMSHA256Verifier(password, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if again == verifier {
			t.Error("two verifiers of one password share a salt")
		}
	}
}

func TestSCRAMVerifierErrors(t *testing.T) {
	if _, err := SCRAMSHA256Verifier("pässword", rand.Reader); !errors.Is(err, ErrPasswordNeedsSASLprep) {
		t.Errorf("non-ASCII password: err = %v, want ErrPasswordNeedsSASLprep", err)
	}
	if _, err := SCRAMSHA256Verifier("", rand.Reader); err == nil {
		t.Error("empty password accepted")
	}
	if _, err := SCRAMSHA256Verifier("secret-value", failingReader{}); err == nil {
		t.Error("succeeded without randomness")
	}
	if _, err := SCRAMSHA256Verifier("secret-value", nil); err == nil {
		t.Error("succeeded with a nil reader")
	}
}

func TestVerifierMatches(t *testing.T) {
	v, err := SCRAMSHA256Verifier("s3cret'pw", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if !VerifierMatches(v, "s3cret'pw") {
		t.Error("the password does not match its own verifier")
	}
	for _, c := range []struct{ verifier, password string }{
		{v, "s3cret'pX"}, {v, ""}, {"", "s3cret'pw"}, {"md5abc", "s3cret'pw"},
		{strings.Replace(v, "4096:", "0:", 1), "s3cret'pw"}, {v[:len(v)-4], "s3cret'pw"},
	} {
		if VerifierMatches(c.verifier, c.password) {
			t.Errorf("%q matches %q", c.password, c.verifier)
		}
	}
}
