package outbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
)

// storedSize is the length of b, valid JSON, as PostgreSQL writes it out
// from jsonb (jsonb::text): what the table's size constraints measure and
// what the relay reads and pushes. It differs from the compact encoding:
// a space follows every ':' and ',', strings are escaped the PostgreSQL way
// ("<" stays one byte), duplicate keys keep the last, and numbers are
// written in full (1e1000 is a thousand digits). It fails on what jsonb
// cannot store: a NUL character in a string.
func storedSize(b []byte) (int, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	n, err := valueSize(d)
	if err != nil {
		return 0, err
	}
	if _, err := d.Token(); err != io.EOF {
		return 0, errors.New("trailing data after the JSON value")
	}
	return n, nil
}

func valueSize(d *json.Decoder) (int, error) {
	tok, err := d.Token()
	if err != nil {
		return 0, err
	}
	switch v := tok.(type) {
	case json.Delim:
		if v == '[' {
			n, items := 2, 0
			for d.More() {
				m, err := valueSize(d)
				if err != nil {
					return 0, err
				}
				n, items = n+m, items+1
			}
			if items > 1 {
				n += 2 * (items - 1) // ", "
			}
			_, err := d.Token() // ']'
			return n, err
		}
		// An object: jsonb keeps the last of duplicate keys.
		entries := map[string]int{}
		for d.More() {
			k, err := d.Token()
			if err != nil {
				return 0, err
			}
			key := k.(string)
			m, err := valueSize(d)
			if err != nil {
				return 0, err
			}
			ks, err := stringSize(key)
			if err != nil {
				return 0, err
			}
			entries[key] = ks + 2 + m // `"key": value`
		}
		n := 2
		for _, m := range entries {
			n += m
		}
		if len(entries) > 1 {
			n += 2 * (len(entries) - 1)
		}
		_, err := d.Token() // '}'
		return n, err
	case string:
		return stringSize(v)
	case json.Number:
		return numberSize(string(v)), nil
	case bool:
		if v {
			return 4, nil
		}
		return 5, nil
	case nil:
		return 4, nil
	}
	return 0, errors.New("unexpected JSON token")
}

// stringSize is PostgreSQL's escape_json: quotes, two-byte escapes for
// " \ and \b \f \n \r \t, \u00XX for other control characters, everything
// else as UTF-8.
func stringSize(s string) (int, error) {
	n := 2
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == 0:
			return 0, errors.New("contains a NUL character (\\u0000), which PostgreSQL's jsonb cannot store")
		case c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t':
			n += 2
		case c < 0x20:
			n += 6
		default:
			n++
		}
	}
	return n, nil
}

// numberSize is the length of PostgreSQL's numeric output for a JSON
// number: plain digits, no exponent, as many decimals as the input showed
// after its exponent is applied ("1.50" stays "1.50", "1.5e1" is "15",
// "1e-2" is "0.01"), and no sign on zero.
func numberSize(s string) int {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		e, err := strconv.Atoi(s[i+1:])
		if err != nil || e > 1<<20 || e < -(1<<20) {
			// PostgreSQL refuses it ("value overflows numeric format");
			// any size over every limit says no as well.
			return 1 << 30
		}
		exp = e
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := intPart + frac
	point := len(intPart) + exp // the decimal point's place in digits
	scale := max(0, len(frac)-exp)

	lead := len(digits) - len(strings.TrimLeft(digits, "0"))
	intLen := 1 // "0" when the integer part is empty or all zeros
	if lead < len(digits) && point > lead {
		intLen = point - lead
	}
	n := intLen
	if scale > 0 {
		n += 1 + scale
	}
	if neg && strings.Trim(digits, "0") != "" {
		n++
	}
	return n
}
