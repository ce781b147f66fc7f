package integration

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/relay"
)

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.Claims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
	require.NoError(t, err)
	return tok
}

func claims(sub, tenant string, exp time.Time) relay.Claims {
	return relay.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: sub, ExpiresAt: jwt.NewNumericDate(exp)},
		Tenant:           tenant,
	}
}

func TestBadTokensAreRefused(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	r := b.startRelay(t)
	s := openStream(t, r.URL, alice, -1) // a legitimate stream, to prove nothing leaks into it either
	b.send(t, alice, "secret")
	s.next(t, 5*time.Second)

	hour := time.Now().Add(time.Hour)
	good := []byte(secret)
	noneTok := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims("alice", "", hour))
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	critical := jwt.NewWithClaims(jwt.SigningMethodHS256, claims("alice", "", hour))
	critical.Header["crit"] = []string{"exp.unknown"}
	critTok, err := critical.SignedString(good)
	require.NoError(t, err)
	cases := []struct {
		name   string
		header string
		desc   string
	}{
		{"no token", "", "a token is required"},
		{"not bearer", "Basic YWxpY2U6cHc=", "Bearer <token>"},
		{"malformed", "Bearer not.a.jwt", "malformed"},
		{"bad signature", "Bearer " + sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-0123"), claims("alice", "", hour)), "signature is invalid"},
		{"expired", "Bearer " + sign(t, jwt.SigningMethodHS256, good, claims("alice", "", time.Now().Add(-time.Hour))), "expired"},
		{"no exp", "Bearer " + sign(t, jwt.SigningMethodHS256, good, jwt.RegisteredClaims{Subject: "alice"}), "no exp"},
		{"not yet valid", "Bearer " + sign(t, jwt.SigningMethodHS256, good, relay.Claims{RegisteredClaims: jwt.RegisteredClaims{
			Subject: "alice", ExpiresAt: jwt.NewNumericDate(hour), NotBefore: jwt.NewNumericDate(time.Now().Add(10 * time.Minute))}}), "not valid yet"},
		{"alg none", "Bearer " + noneTok, `algorithm none is not accepted`},
		{"wrong family", "Bearer " + sign(t, jwt.SigningMethodEdDSA, edKey, claims("alice", "", hour)), `algorithm EdDSA is not accepted`},
		{"no sub", "Bearer " + sign(t, jwt.SigningMethodHS256, good, claims("", "", hour)), "no sub"},
		{"huge", "Bearer " + strings.Repeat("a", 9000), "too large"},
		{"critical extension", "Bearer " + critTok, "critical extensions (crit)"},
	}
	routes := []struct{ method, path string }{
		{http.MethodGet, "/notifications/stream"},
		{http.MethodGet, "/notifications/unread/count"},
		{http.MethodGet, "/notifications"},
		{http.MethodPost, "/notifications/read-all"},
	}
	for _, c := range cases {
		for _, route := range routes {
			req, err := http.NewRequest(route.method, r.URL+route.path, nil)
			require.NoError(t, err)
			if c.header != "" {
				req.Header.Set("Authorization", c.header)
			}
			res, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			var body struct{ Error, Message string }
			require.NoError(t, json.NewDecoder(res.Body).Decode(&body), "%s %s", c.name, route.path)
			res.Body.Close()
			require.Equal(t, http.StatusUnauthorized, res.StatusCode, "%s %s", c.name, route.path)
			require.Contains(t, body.Message, c.desc, c.name)
			challenge := res.Header.Get("WWW-Authenticate")
			require.True(t, strings.HasPrefix(challenge, `Bearer realm="bellhop"`), challenge)
			if c.name != "no token" {
				require.Contains(t, challenge, `error="invalid`, c.name)
				requireRFC6750Description(t, challenge, body.Message)
			}
			require.NotContains(t, challenge+body.Message, secret, "the secret leaked")
		}
	}
	require.EqualValues(t, 1, b.unread(t, r.URL, alice), "nothing was changed")
}

func TestAnotherTenantsTokenSeesNothing(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	r := b.startRelay(t)
	intruder := openStream(t, r.URL, aliceOther, -1)
	id := b.send(t, alice, "private")

	for _, path := range []string{"/notifications/" + id + "/read", "/notifications/" + id + "/unread"} {
		res := api(t, http.MethodPost, r.URL+path, &aliceOther, nil)
		require.Equal(t, http.StatusNotFound, res.StatusCode, path)
	}
	res := api(t, http.MethodDelete, r.URL+"/notifications/"+id, &aliceOther, nil)
	require.Equal(t, http.StatusNotFound, res.StatusCode)
	var page struct{ Notifications []any }
	api(t, http.MethodGet, r.URL+"/notifications", &aliceOther, &page)
	require.Empty(t, page.Notifications)
	require.EqualValues(t, 0, b.unread(t, r.URL, aliceOther))
	// Replaying from the beginning as the other tenant: nothing of alice's.
	replay := openStream(t, r.URL, aliceOther, 0)
	intruder.quiet(t, 500*time.Millisecond)
	replay.quiet(t, 10*time.Millisecond)
	require.EqualValues(t, 1, b.unread(t, r.URL, alice))
}

func TestBadInputsGetDocumented4xx(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	r := b.startRelay(t)
	id := b.send(t, alice, "mine")
	to := alice
	cases := []struct {
		method, path string
		body         string
		status       int
		code         string
	}{
		{http.MethodGet, "/notifications?limit=0", "", 400, "bad_limit"},
		{http.MethodGet, "/notifications?limit=-5", "", 400, "bad_limit"},
		{http.MethodGet, "/notifications?limit=1000000", "", 400, "bad_limit"},
		{http.MethodGet, "/notifications?limit=ten", "", 400, "bad_limit"},
		{http.MethodGet, "/notifications?cursor=%27%3B--", "", 400, "bad_cursor"},
		{http.MethodGet, "/notifications?unread=maybe", "", 400, "bad_unread"},
		{http.MethodGet, "/notifications?sort=asc", "", 400, "bad_parameter"},
		{http.MethodGet, "/notifications?type=", "", 400, "bad_type"},
		{http.MethodPost, "/notifications/not-a-uuid/read", "", 400, "bad_id"},
		{http.MethodPost, "/notifications/00000000-0000-0000-0000-000000000000/read", "", 404, "not_found"},
		{http.MethodDelete, "/notifications/00000000-0000-0000-0000-000000000000", "", 404, "not_found"},
		{http.MethodPost, "/notifications/" + id + "/read", strings.Repeat("x", 2000), 413, "body_too_large"},
		{http.MethodGet, "/notifications/stream?last_event_id=abc", "", 400, "bad_last_event_id"},
		{http.MethodGet, "/notifications/stream?last_event_id=-1", "", 400, "bad_last_event_id"},
		{http.MethodGet, "/notifications/nope/extra", "", 404, "not_found"},
		{http.MethodGet, "/notifications/" + id, "", 405, "method_not_allowed"},
	}
	for _, c := range cases {
		req, err := http.NewRequest(c.method, r.URL+c.path, strings.NewReader(c.body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token(t, to))
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		var body struct{ Error, Message string }
		require.NoError(t, json.NewDecoder(res.Body).Decode(&body), "%s %s", c.method, c.path)
		res.Body.Close()
		require.Equal(t, c.status, res.StatusCode, "%s %s: %s", c.method, c.path, body.Message)
		require.Equal(t, c.code, body.Error, "%s %s", c.method, c.path)
		require.NotEmpty(t, body.Message)
	}
	// Wrong methods are refused by the router.
	for _, m := range []string{http.MethodPut, http.MethodPatch} {
		req, _ := http.NewRequest(m, r.URL+"/notifications/"+id+"/read", nil)
		req.Header.Set("Authorization", "Bearer "+token(t, to))
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusMethodNotAllowed, res.StatusCode)
	}
	require.EqualValues(t, 1, b.unread(t, r.URL, alice), "no bad request changed anything")
}

func TestPublicKeyTokens(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "key.pem")
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600))
	r := b.startRelay(t, func(c *relay.Config) { c.JWTSecret, c.JWTPublicKeyFile = "", path })

	good := sign(t, jwt.SigningMethodEdDSA, priv, claims("alice", "", time.Now().Add(time.Hour)))
	req, _ := http.NewRequest(http.MethodGet, r.URL+"/notifications/unread/count", nil)
	req.Header.Set("Authorization", "Bearer "+good)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)

	// HS/EdDSA confusion: an HS256 token "signed" with the public key bytes.
	forged := sign(t, jwt.SigningMethodHS256, []byte(pub), claims("alice", "", time.Now().Add(time.Hour)))
	req.Header.Set("Authorization", "Bearer "+forged)
	res, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
}

func TestCookieAndCORS(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	r := b.startRelay(t, func(c *relay.Config) { c.AllowedOrigins = []string{"https://app.example"} })

	req, _ := http.NewRequest(http.MethodGet, r.URL+"/notifications/unread/count", nil)
	req.AddCookie(&http.Cookie{Name: "bellhop_token", Value: token(t, alice)})
	req.Header.Set("Origin", "https://app.example")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "https://app.example", res.Header.Get("Access-Control-Allow-Origin"))
	require.Equal(t, "true", res.Header.Get("Access-Control-Allow-Credentials"))

	req.Header.Set("Origin", "https://evil.example")
	res, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Empty(t, res.Header.Get("Access-Control-Allow-Origin"))

	pre, _ := http.NewRequest(http.MethodOptions, r.URL+"/notifications/stream", nil)
	pre.Header.Set("Origin", "https://app.example")
	pre.Header.Set("Access-Control-Request-Headers", "authorization,last-event-id")
	res, err = http.DefaultClient.Do(pre)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusNoContent, res.StatusCode)
	require.Contains(t, res.Header.Get("Access-Control-Allow-Headers"), "Last-Event-ID")
	pre.Header.Set("Origin", "https://evil.example")
	res, err = http.DefaultClient.Do(pre)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusForbidden, res.StatusCode)
}

func TestJWKSTokens(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	jwks := fmt.Sprintf(`{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","use":"sig","kid":"k1","x":%q}]}`,
		base64.RawURLEncoding.EncodeToString(pub))
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(jwks))
	}))
	t.Cleanup(keys.Close)
	r := b.startRelay(t, func(c *relay.Config) { c.JWTSecret, c.JWKSURL, c.JWTAudience = "", keys.URL, "bellhop-test" })

	signed := func(kid string, method jwt.SigningMethod, key any) string {
		cl := claims("alice", "", time.Now().Add(time.Hour))
		cl.Audience = jwt.ClaimStrings{"bellhop-test"}
		tok := jwt.NewWithClaims(method, cl)
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		require.NoError(t, err)
		return s
	}
	status := func(tok string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, r.URL+"/notifications/unread/count", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		var body struct{ Message string }
		_ = json.NewDecoder(res.Body).Decode(&body)
		return res.StatusCode, body.Message
	}

	code, _ := status(signed("k1", jwt.SigningMethodEdDSA, priv))
	require.Equal(t, http.StatusOK, code)

	_, other, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	code, msg := status(signed("k1", jwt.SigningMethodEdDSA, other))
	require.Equal(t, http.StatusUnauthorized, code)
	require.Contains(t, msg, "signature is invalid")

	code, msg = status(signed("nope", jwt.SigningMethodEdDSA, priv))
	require.Equal(t, http.StatusUnauthorized, code)
	require.Contains(t, msg, "not in the JWKS")

	// HS256 "signed" with the public key's bytes: HMAC is never accepted
	// with a JWKS, whatever the kid.
	code, msg = status(signed("k1", jwt.SigningMethodHS256, []byte(pub)))
	require.Equal(t, http.StatusUnauthorized, code)
	require.Contains(t, msg, `algorithm HS256 is not accepted`)
}

func TestJWKSUnreachableIsRefusedAtStart(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	cfg := b.relayConfig()
	cfg.JWTSecret, cfg.JWKSURL, cfg.JWTAudience = "", "http://127.0.0.1:1/jwks.json", "bellhop-test"
	_, err := relay.New(context.Background(), cfg, nil)
	require.ErrorContains(t, err, "Config.JWKSURL")
	require.ErrorContains(t, err, "cannot use")
}

// requireRFC6750Description checks a challenge's error_description is the
// body's message, quoted as RFC 6750 §3 allows: printable ASCII without '"'
// or '\', so that no client has to unescape it.
func requireRFC6750Description(t *testing.T, challenge, message string) {
	t.Helper()
	_, desc, ok := strings.Cut(challenge, `error_description="`)
	require.True(t, ok, "no error_description in %s", challenge)
	require.True(t, strings.HasSuffix(desc, `"`), challenge)
	desc = strings.TrimSuffix(desc, `"`)
	require.Equal(t, message, desc, "the description is the message, unescaped")
	for _, c := range []byte(desc) {
		require.True(t, c == 0x20 || c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e),
			"byte %q is not allowed in an RFC 6750 error_description: %s", c, challenge)
	}
}

// signRaw signs payload, verbatim, with HS256: the claims sets below are
// JSON no encoder would write (a name twice, a number in a string).
func signRaw(t *testing.T, key, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	s := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(s, []byte(key))
	require.NoError(t, err)
	return s + "." + enc.EncodeToString(sig)
}

// authCheck asks for the unread count with tok and returns the status and
// the message; a refusal's challenge is checked against RFC 6750 too.
func authCheck(t *testing.T, base, tok string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/notifications/unread/count", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	var body struct{ Message string }
	require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
	if res.StatusCode == http.StatusUnauthorized {
		requireRFC6750Description(t, res.Header.Get("WWW-Authenticate"), body.Message)
	}
	return res.StatusCode, body.Message
}

func TestClaimsAreReadAsWritten(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	r := b.startRelay(t)
	// alice in tenant "acme" has one notification; whoever a token names
	// wrongly would see another count.
	acme := alice
	acme.Tenant = "acme"
	b.send(t, acme, "acme's")

	now := time.Now()
	exp := now.Add(time.Hour).Unix()
	cases := []struct {
		name    string
		payload string
		desc    string // "" : accepted
	}{
		{"exact names", fmt.Sprintf(`{"sub":"alice","tenant":"acme","exp":%d}`, exp), ""},
		{"a tenant and a TENANT", fmt.Sprintf(`{"sub":"alice","tenant":"acme","TENANT":"other","exp":%d}`, exp), "differs from tenant only in case"},
		{"only a TENANT", fmt.Sprintf(`{"sub":"alice","TENANT":"acme","exp":%d}`, exp), "differs from tenant only in case"},
		{"a Sub", fmt.Sprintf(`{"Sub":"bob","sub":"alice","exp":%d}`, exp), "differs from sub only in case"},
		{"tenant twice", fmt.Sprintf(`{"sub":"alice","tenant":"other","tenant":"acme","exp":%d}`, exp), "tenant claim twice"},
		{"sub twice", fmt.Sprintf(`{"sub":"bob","sub":"alice","exp":%d}`, exp), "sub claim twice"},
		{"another claim twice", fmt.Sprintf(`{"sub":"alice","tenant":"acme","x":1,"x":2,"exp":%d}`, exp), "a claim twice"},
		// Claims Bellhop does not read may use any case.
		{"Name and name", fmt.Sprintf(`{"sub":"alice","tenant":"acme","Name":"A","name":"a","exp":%d}`, exp), ""},
		{"exp a string", fmt.Sprintf(`{"sub":"alice","tenant":"acme","exp":"%d"}`, exp), "exp claim must be a JSON number"},
		{"nbf a string", fmt.Sprintf(`{"sub":"alice","tenant":"acme","exp":%d,"nbf":"%d"}`, exp, now.Unix()), "nbf claim must be a JSON number"},
		{"tenant a number", fmt.Sprintf(`{"sub":"alice","tenant":7,"exp":%d}`, exp), "tenant claim must be a string"},
		{"sub null", fmt.Sprintf(`{"sub":null,"exp":%d}`, exp), "sub claim must be a string"},
		{"exp beyond 9999", `{"sub":"alice","tenant":"acme","exp":1e300}`, "not a date between 1970 and 9999"},
		{"claims an array", `[1,2]`, "not a JSON object"},
	}
	for _, c := range cases {
		code, msg := authCheck(t, r.URL, signRaw(t, secret, c.payload))
		if c.desc == "" {
			require.Equal(t, http.StatusOK, code, "%s: %s", c.name, msg)
			require.EqualValues(t, 1, b.unread(t, r.URL, acme))
			continue
		}
		require.Equal(t, http.StatusUnauthorized, code, "%s was accepted", c.name)
		require.Contains(t, msg, c.desc, c.name)
	}
}

func TestTokenLifetimeIsBounded(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	def := b.startRelay(t)                                                                  // 24h
	short := b.startRelay(t, func(c *relay.Config) { c.JWTMaxLifetime = 10 * time.Minute }) // 10m

	now := time.Now()
	tok := func(iat, exp time.Time) string {
		cl := claims("alice", "", exp)
		if !iat.IsZero() {
			cl.IssuedAt = jwt.NewNumericDate(iat)
		}
		return sign(t, jwt.SigningMethodHS256, []byte(secret), cl)
	}
	cases := []struct {
		name     string
		base     string
		iat, exp time.Time
		ok       bool
	}{
		{"a day, no iat", def.URL, time.Time{}, now.Add(23 * time.Hour), true},
		{"centuries ahead", def.URL, time.Time{}, now.AddDate(300, 0, 0), false},
		{"a year ahead, with iat", def.URL, now, now.AddDate(1, 0, 0), false},
		{"2 days from an old iat, 1h left", def.URL, now.Add(-47 * time.Hour), now.Add(time.Hour), false},
		{"an iat in the future does not extend it", def.URL, now.Add(23 * time.Hour), now.Add(25 * time.Hour), false},
		{"5m under a 10m bound", short.URL, now, now.Add(5 * time.Minute), true},
		{"1h under a 10m bound", short.URL, now, now.Add(time.Hour), false},
	}
	for _, c := range cases {
		code, msg := authCheck(t, c.base, tok(c.iat, c.exp))
		if c.ok {
			require.Equal(t, http.StatusOK, code, "%s: %s", c.name, msg)
			continue
		}
		require.Equal(t, http.StatusUnauthorized, code, "%s was accepted", c.name)
		require.Contains(t, msg, "accepts at most", c.name)
	}
}

func TestMissingClaimsAreNamed(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	r := b.startRelay(t, func(c *relay.Config) { c.JWTAudience, c.JWTIssuer = "bellhop-app", "https://id.example" })
	exp := time.Now().Add(time.Hour).Unix()
	cases := []struct{ payload, desc string }{
		{fmt.Sprintf(`{"sub":"alice","iss":"https://id.example","exp":%d}`, exp), "no aud claim; this relay requires aud bellhop-app"},
		{fmt.Sprintf(`{"sub":"alice","aud":"bellhop-app","exp":%d}`, exp), "no iss claim; this relay requires iss https://id.example"},
		{`{"sub":"alice","aud":"bellhop-app","iss":"https://id.example"}`, "no exp claim"},
		{fmt.Sprintf(`{"sub":"alice","aud":"other-app","iss":"https://id.example","exp":%d}`, exp), "audience is not accepted"},
		{fmt.Sprintf(`{"aud":"bellhop-app","iss":"https://id.example","exp":%d}`, exp), "no sub claim"},
	}
	for _, c := range cases {
		code, msg := authCheck(t, r.URL, signRaw(t, secret, c.payload))
		require.Equal(t, http.StatusUnauthorized, code, c.payload)
		require.Contains(t, msg, c.desc, c.payload)
	}
	code, msg := authCheck(t, r.URL, signRaw(t, secret, fmt.Sprintf(`{"sub":"alice","aud":["x","bellhop-app"],"iss":"https://id.example","exp":%d}`, exp)))
	require.Equal(t, http.StatusOK, code, msg)
}

func TestJWKSNeedsAnAudienceAndHTTPS(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	jwks := fmt.Sprintf(`{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","use":"sig","kid":"k1","x":%q}]}`,
		base64.RawURLEncoding.EncodeToString(pub))
	serveKeys := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(jwks))
	}
	plain := httptest.NewServer(http.HandlerFunc(serveKeys))
	t.Cleanup(plain.Close)
	tlsKeys := httptest.NewTLSServer(http.HandlerFunc(serveKeys))
	t.Cleanup(tlsKeys.Close)

	refused := []struct {
		name string
		set  func(*relay.Config)
		want []string
	}{
		{"no audience", func(c *relay.Config) { c.JWKSURL = plain.URL }, []string{"Config.JWTAudience is required with Config.JWKSURL"}},
		{"no audience, https", func(c *relay.Config) { c.JWKSURL, c.JWKSClient = tlsKeys.URL, tlsKeys.Client() }, []string{"Config.JWTAudience is required"}},
		{"http to another host", func(c *relay.Config) { c.JWKSURL, c.JWTAudience = "http://id.example/.well-known/jwks.json", "app" },
			[]string{"Config.JWKSURL", "must use https://"}},
		{"not a URL", func(c *relay.Config) { c.JWKSURL, c.JWTAudience = "id.example/jwks.json", "app" }, []string{"Config.JWKSURL", "not an https:// URL"}},
	}
	for _, c := range refused {
		cfg := b.relayConfig()
		cfg.JWTSecret = ""
		c.set(&cfg)
		_, err := relay.New(context.Background(), cfg, nil)
		require.Error(t, err, c.name)
		for _, w := range c.want {
			require.ErrorContains(t, err, w, c.name)
		}
	}

	// https with an audience: only the audience's tokens are accepted; the
	// same provider's token for another application is not.
	r := b.startRelay(t, func(c *relay.Config) {
		c.JWTSecret, c.JWKSURL, c.JWKSClient, c.JWTAudience = "", tlsKeys.URL, tlsKeys.Client(), "bellhop-app"
	})
	signed := func(aud ...string) string {
		cl := claims("alice", "", time.Now().Add(time.Hour))
		cl.Audience = aud
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, cl)
		tok.Header["kid"] = "k1"
		s, err := tok.SignedString(priv)
		require.NoError(t, err)
		return s
	}
	code, msg := authCheck(t, r.URL, signed("bellhop-app"))
	require.Equal(t, http.StatusOK, code, msg)
	code, msg = authCheck(t, r.URL, signed("other-app"))
	require.Equal(t, http.StatusUnauthorized, code)
	require.Contains(t, msg, "audience is not accepted")
	code, msg = authCheck(t, r.URL, signed())
	require.Equal(t, http.StatusUnauthorized, code)
	require.Contains(t, msg, "no aud claim")
}
