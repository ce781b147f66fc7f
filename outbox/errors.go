package outbox

import (
	"errors"
	"strconv"
)

// ErrInvalid is matched (with errors.Is) by every validation error.
var ErrInvalid = errors.New("invalid notification")

// ValidationError says which part of a send was rejected and why. Nothing is
// written when a send returns one.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string {
	return "outbox: invalid notification: " + e.Field + " " + e.Reason
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, reason string) error { return &ValidationError{Field: field, Reason: reason} }

func itoa(n int) string { return strconv.Itoa(n) }
