package relay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims is what a Bellhop token carries. sub is the notifiable's id;
// tenant and notifiable_type default to "" and "User"; exp is required.
//
// Claims decode as RFC 7519 reads them, not as encoding/json does: names
// match exactly ("TENANT" is not "tenant"), a claim named twice is refused
// (encoding/json keeps the last), a name Bellhop reads spelled in another
// case is refused, and exp, nbf and iat must be JSON numbers.
type Claims struct {
	jwt.RegisteredClaims
	Tenant         string `json:"tenant,omitempty"`
	NotifiableType string `json:"notifiable_type,omitempty"`
}

// claimError is a claims set Bellhop refuses; its text is the 401's
// description.
type claimError string

func (e claimError) Error() string { return string(e) }

// readClaims are the claims Bellhop reads, by exact name.
var readClaims = map[string]bool{
	"sub": true, "tenant": true, "notifiable_type": true, "exp": true,
	"nbf": true, "iat": true, "iss": true, "aud": true, "jti": true,
}

// maxNumericDate is 9999-12-31T23:59:59Z; later dates, or negative ones, are
// not a token's.
const maxNumericDate = 253402300799

// UnmarshalJSON decodes a claims set strictly; see Claims.
func (c *Claims) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return claimError("the token's claims are not a JSON object")
	}
	*c = Claims{}
	seen := make(map[string]bool)
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return claimError("the token's claims are not valid JSON")
		}
		name := t.(string) // an object's keys are strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return claimError("the token's claims are not valid JSON")
		}
		if seen[name] {
			if readClaims[name] {
				return claimError(fmt.Sprintf("the token has the %s claim twice", name))
			}
			return claimError("the token has a claim twice")
		}
		seen[name] = true
		if !readClaims[name] {
			if lower := strings.ToLower(name); readClaims[lower] {
				return claimError(fmt.Sprintf("the token has a claim that differs from %s only in case; claim names are case-sensitive", lower))
			}
			continue
		}
		if err := c.set(name, raw); err != nil {
			return err
		}
	}
	return nil
}

// set decodes one claim Bellhop reads.
func (c *Claims) set(name string, raw json.RawMessage) error {
	switch name {
	case "exp", "nbf", "iat":
		d, err := numericDate(name, raw)
		if err != nil {
			return err
		}
		switch name {
		case "exp":
			c.ExpiresAt = d
		case "nbf":
			c.NotBefore = d
		case "iat":
			c.IssuedAt = d
		}
	case "aud":
		if err := c.Audience.UnmarshalJSON(raw); err != nil {
			return claimError("the token's aud claim must be a string or an array of strings")
		}
	default:
		var s string
		if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
			return claimError(fmt.Sprintf("the token's %s claim must be a string", name))
		}
		switch name {
		case "sub":
			c.Subject = s
		case "iss":
			c.Issuer = s
		case "jti":
			c.ID = s
		case "tenant":
			c.Tenant = s
		case "notifiable_type":
			c.NotifiableType = s
		}
	}
	return nil
}

// numericDate reads a NumericDate (RFC 7519 §2): a JSON number of seconds,
// never a string holding one.
func numericDate(name string, raw json.RawMessage) (*jwt.NumericDate, error) {
	bad := claimError(fmt.Sprintf("the token's %s claim must be a JSON number of seconds since 1970 (a NumericDate), not a string or another type", name))
	if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return nil, bad
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, bad
	}
	f, err := n.Float64()
	if err != nil || f < 0 || f > maxNumericDate {
		return nil, claimError(fmt.Sprintf("the token's %s claim is not a date between 1970 and 9999", name))
	}
	var d jwt.NumericDate
	if err := d.UnmarshalJSON(raw); err != nil {
		return nil, bad
	}
	return &d, nil
}

// lifetime is how long a token is valid: from its iat, or from now when it
// has none or its iat is later (an iat in the future cannot extend it).
func (c *Claims) lifetime(now time.Time) time.Duration {
	from := now
	if c.IssuedAt != nil && c.IssuedAt.Before(now) {
		from = c.IssuedAt.Time
	}
	return c.ExpiresAt.Sub(from)
}
