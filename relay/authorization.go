package relay

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/bellhophq/bellhop/bellhoptype"
)

// MinSecretBytes is the shortest HS256 secret accepted (RFC 7518 §3.2).
const MinSecretBytes = 32

// maxTokenBytes bounds a token before it is parsed.
const maxTokenBytes = 8 << 10

// DefaultJWTMaxLifetime is the longest a token may be valid unless
// Config.JWTMaxLifetime says otherwise.
const DefaultJWTMaxLifetime = 24 * time.Hour

// leeway absorbs clock skew between the token's issuer and the relay.
const leeway = 30 * time.Second

// authenticator verifies tokens with one key, or a JWKS, and an algorithm
// allowlist.
type authenticator struct {
	keyfunc     jwt.Keyfunc
	methods     []string
	cookieName  string
	parser      *jwt.Parser
	issuer      string
	audience    string
	maxLifetime time.Duration
}

// asymmetric are the algorithms a public key or a JWKS may verify; never
// HS*, so a public key can never be used as an HMAC secret.
var asymmetric = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// newAuthenticator builds the token check; ctx bounds a JWKS's background
// refresh.
func newAuthenticator(ctx context.Context, cfg Config) (*authenticator, error) {
	a := &authenticator{cookieName: cfg.CookieName, issuer: cfg.JWTIssuer, audience: cfg.JWTAudience, maxLifetime: cfg.JWTMaxLifetime}
	if a.maxLifetime <= 0 {
		a.maxLifetime = DefaultJWTMaxLifetime
	}
	set := 0
	for _, v := range []string{cfg.JWTSecret, cfg.JWTPublicKeyFile, cfg.JWKSURL} {
		if v != "" {
			set++
		}
	}
	switch {
	case set > 1:
		return nil, errors.New("set only one of Config.JWTSecret, Config.JWTPublicKeyFile and Config.JWKSURL")
	case cfg.JWKSURL != "":
		if err := checkJWKS(cfg); err != nil {
			return nil, err
		}
		strict := false // fail at start if the JWKS cannot be fetched
		k, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{cfg.JWKSURL}, keyfunc.Override{
			Client:                    cfg.JWKSClient,
			NoErrorReturnFirstHTTPReq: &strict,
			HTTPTimeout:               10 * time.Second,
		})
		if err != nil {
			return nil, fmt.Errorf("Config.JWKSURL: cannot use %s: %w", cfg.JWKSURL, err)
		}
		a.keyfunc, a.methods = k.Keyfunc, asymmetric
	case cfg.JWTSecret != "":
		if len(cfg.JWTSecret) < MinSecretBytes {
			return nil, fmt.Errorf("Config.JWTSecret is %d bytes; use at least %d random bytes (e.g. openssl rand -base64 32)", len(cfg.JWTSecret), MinSecretBytes)
		}
		secret := []byte(cfg.JWTSecret)
		a.keyfunc = func(*jwt.Token) (any, error) { return secret, nil }
		a.methods = []string{"HS256", "HS384", "HS512"}
	case cfg.JWTPublicKeyFile != "":
		key, methods, err := loadPublicKey(cfg.JWTPublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("Config.JWTPublicKeyFile: %w", err)
		}
		a.keyfunc = func(*jwt.Token) (any, error) { return key, nil }
		a.methods = methods
	default:
		return nil, errors.New("no token key: set Config.JWTSecret (HS256, at least 32 bytes), Config.JWTPublicKeyFile (a PEM public key for RS*, PS*, ES* or EdDSA) or Config.JWKSURL")
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(a.methods), // never "none", never another family
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(leeway),
	}
	if cfg.JWTIssuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.JWTIssuer))
	}
	if cfg.JWTAudience != "" {
		opts = append(opts, jwt.WithAudience(cfg.JWTAudience))
	}
	a.parser = jwt.NewParser(opts...)
	return a, nil
}

// checkJWKS refuses a JWKS that would let in tokens meant for someone else:
// an identity provider signs every application's tokens with the same keys,
// so only aud tells this application's apart; and keys fetched over plain
// HTTP can be swapped on the way.
func checkJWKS(cfg Config) error {
	u, err := url.Parse(cfg.JWKSURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("Config.JWKSURL=%q is not an https:// URL", cfg.JWKSURL)
	}
	if u.Scheme == "http" && !loopback(u.Hostname()) {
		return fmt.Errorf("Config.JWKSURL=%q must use https:// (plain http:// is allowed only for localhost, 127.0.0.0/8 and ::1): keys fetched over plain HTTP can be replaced by anyone on the path", cfg.JWKSURL)
	}
	if cfg.JWTAudience == "" {
		return errors.New("Config.JWTAudience is required with Config.JWKSURL: set it to the audience (aud) your identity provider puts in this application's tokens (often its client id or API identifier); without it, a token the provider issued for any other application would be accepted")
	}
	return nil
}

// loopback reports whether host names this machine only.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loadPublicKey reads a PEM public key and the algorithms it may verify.
func loadPublicKey(path string) (any, []string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, nil, errors.New("no PEM block found")
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parse public key: %w", err)
	}
	switch key.(type) {
	case *rsa.PublicKey:
		return key, []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, nil
	case *ecdsa.PublicKey:
		return key, []string{"ES256", "ES384", "ES512"}, nil
	case ed25519.PublicKey:
		return key, []string{"EdDSA"}, nil
	}
	return nil, nil, fmt.Errorf("unsupported key type %T", key)
}

// authError is a refusal with RFC 6750's vocabulary.
type authError struct {
	status      int
	code        string // "" when no token was sent (RFC 6750 §3.1)
	description string
}

func (e *authError) Error() string { return e.description }

// refuse is a 401 whose description can be quoted as is in a
// WWW-Authenticate error_description: RFC 6750 §3 allows only printable
// ASCII there, without '"' and '\', and the handler quotes it with %q, which
// would otherwise escape them into \" sequences a client cannot read.
func refuse(code, description string) *authError {
	b := make([]byte, 0, len(description))
	for i := 0; i < len(description); i++ {
		switch c := description[i]; {
		case c == '"':
			b = append(b, '\'')
		case c == '\\', c < 0x20, c > 0x7e:
			b = append(b, '?')
		default:
			b = append(b, c)
		}
	}
	return &authError{http.StatusUnauthorized, code, string(b)}
}

// recipient authenticates r and returns who it is for.
func (a *authenticator) recipient(r *http.Request) (bellhoptype.Recipient, *authError) {
	token := ""
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, value, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || value == "" {
			return bellhoptype.Recipient{}, refuse("invalid_request", "the Authorization header must be: Bearer <token>")
		}
		token = strings.TrimSpace(value)
	} else if c, err := r.Cookie(a.cookieName); err == nil {
		token = c.Value
	}
	if token == "" {
		return bellhoptype.Recipient{}, refuse("", "a token is required: send Authorization: Bearer <token>, or the "+a.cookieName+" cookie")
	}
	if len(token) > maxTokenBytes {
		return bellhoptype.Recipient{}, refuse("invalid_token", "the token is too large")
	}
	var claims Claims
	parsed, err := a.parser.ParseWithClaims(token, &claims, a.keyfunc)
	if err != nil {
		desc := a.describe(err, &claims)
		if parsed != nil && parsed.Method != nil && !slices.Contains(a.methods, parsed.Method.Alg()) {
			desc = fmt.Sprintf("the token's algorithm %s is not accepted (accepted: %s)", parsed.Method.Alg(), strings.Join(a.methods, ", "))
		}
		return bellhoptype.Recipient{}, refuse("invalid_token", desc)
	}
	// RFC 7515 4.1.11: a token whose header lists extensions that must be
	// understood is refused by a verifier that knows none.
	if _, ok := parsed.Header["crit"]; ok {
		return bellhoptype.Recipient{}, refuse("invalid_token", "the token's header lists critical extensions (crit); this relay understands none")
	}
	if claims.Subject == "" {
		return bellhoptype.Recipient{}, refuse("invalid_token", "the token has no sub claim")
	}
	// A token valid for years is a credential nobody can revoke.
	if life := claims.lifetime(time.Now()); life > a.maxLifetime+leeway {
		return bellhoptype.Recipient{}, refuse("invalid_token", fmt.Sprintf("the token is valid for %s (from its iat, or from now); this relay accepts at most %s", life.Round(time.Second), a.maxLifetime))
	}
	to := bellhoptype.Recipient{Tenant: claims.Tenant, Type: claims.NotifiableType, ID: claims.Subject}
	if to.Type == "" {
		to.Type = "User"
	}
	return to, nil
}

// describe says what is wrong with a token without echoing any of it.
// claims holds what was decoded, to name the claim that is missing.
func (a *authenticator) describe(err error, claims *Claims) string {
	var ce claimError
	switch {
	case errors.As(err, &ce):
		return ce.Error()
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "the token is malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "the token's signature is invalid"
	case errors.Is(err, keyfunc.ErrKeyfunc):
		return "the token's key (kid) is not in the JWKS"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "the token cannot be verified with the configured keys"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		switch {
		case claims.ExpiresAt == nil:
			return "the token has no exp claim"
		case a.audience != "" && len(claims.Audience) == 0:
			return "the token has no aud claim; this relay requires aud " + a.audience
		case a.issuer != "" && claims.Issuer == "":
			return "the token has no iss claim; this relay requires iss " + a.issuer
		}
		return "the token lacks a required claim"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "the token is expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "the token is not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "the token's issuer is not accepted"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "the token's audience is not accepted"
	}
	return "the token is invalid"
}

// Mint signs an HS256 token for to, valid for ttl. It is for local testing
// and demos (relay token); production tokens come from the application.
func Mint(secret string, to bellhoptype.Recipient, ttl time.Duration) (string, error) {
	now := time.Now()
	claims := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   to.ID,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Tenant:         to.Tenant,
		NotifiableType: to.Type,
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
}
