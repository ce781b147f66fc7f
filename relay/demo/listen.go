package demo

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// Listen listens on addr for the demo, before it starts or touches a
// database, so that a taken or mistyped address fails at once. The error
// says how to pick another address; setting names what gave addr ("--addr",
// say) for that message.
func Listen(addr, setting string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("cannot listen on %s: it is taken (%w); stop what listens there, or set %s to another address, such as %s",
			addr, err, setting, nextAddr(addr))
	}
	return nil, fmt.Errorf("cannot listen on %q (%w); set %s to a host:port, such as 127.0.0.1:8090", addr, err, setting)
}

// nextAddr is addr's host on the next port, for a suggestion.
func nextAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	p, perr := strconv.Atoi(port)
	if err != nil || perr != nil || p <= 0 || p >= 65535 {
		return "127.0.0.1:8090"
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, strconv.Itoa(p+1))
}
