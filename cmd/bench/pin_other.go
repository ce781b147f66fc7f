//go:build !linux

package main

import (
	"context"
	"errors"
)

// pinning needs Linux's sched_setaffinity (see pin_linux.go).
type pinning struct{}

func (b *bench) newPinning(context.Context, string, int) (*pinning, error) {
	return nil, errors.New("pinning processes to CPUs needs Linux")
}

func (p *pinning) pin(context.Context) error   { return nil }
func (p *pinning) unpin(context.Context) error { return nil }
