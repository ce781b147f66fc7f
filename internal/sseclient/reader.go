// Package sseclient reads Server-Sent Events as a browser's EventSource
// does, for the integration tests, the benchmark and the soak run: Reader
// parses a stream's frames (id:, event:, data:, retry: and comments),
// Connect opens one stream with headers and a Last-Event-ID, and
// EventSource keeps one open, reconnecting after the server's retry: hint
// with the last id it saw, recording what arrived.
package sseclient

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Frame is one block of field lines up to a blank line. A block of
// comments only is no frame.
type Frame struct {
	// ID is the id: field's value; HasID says the block had one (an empty
	// id: resets the resume point).
	ID    string
	HasID bool
	// Event is the event: field's value ("" means "message").
	Event string
	// Data is the data: lines joined with "\n"; HasData says there was one.
	Data    string
	HasData bool
	// Retry is the retry: field's value, 0 without one.
	Retry time.Duration
	// Malformed is the first line that is no field of the protocol, or a
	// retry: that is not a number; the rest of the frame still counts.
	Malformed string
}

// Seq is the frame's id as an integer (Bellhop's ids are log seqs).
func (f Frame) Seq() (int64, error) { return strconv.ParseInt(f.ID, 10, 64) }

// MaxLine bounds a line; a longer one ends Next with an error.
const MaxLine = 1 << 20

// Reader parses frames from an SSE body.
type Reader struct {
	br *bufio.Reader
}

// NewReader reads r through a buffer of size bytes (4 KiB when 0; small
// ones keep thousands of streams cheap, lines may be longer).
func NewReader(r io.Reader, size int) *Reader {
	if size <= 0 {
		size = 4096
	}
	return &Reader{br: bufio.NewReaderSize(r, size)}
}

// ErrPartialFrame is Next's error when the stream ended inside a frame.
var ErrPartialFrame = errors.New("sse: stream ended inside a frame")

// Next returns the next frame. At the end of the stream it returns io.EOF
// when the stream ended between frames, ErrPartialFrame inside one, or the
// read's error.
func (r *Reader) Next() (Frame, error) {
	var f Frame
	var data []byte
	started := false
	for {
		line, err := r.line()
		if err != nil {
			if err == io.EOF && started {
				err = ErrPartialFrame
			}
			return Frame{}, err
		}
		if len(line) == 0 {
			if started {
				if f.HasData {
					f.Data = string(data)
				}
				return f, nil
			}
			continue
		}
		if line[0] == ':' {
			continue // a comment: heartbeats
		}
		started = true
		name, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			name, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(name) {
		case "id":
			f.ID, f.HasID = string(value), true
		case "event":
			f.Event = string(value)
		case "data":
			if f.HasData {
				data = append(data, '\n')
			}
			data = append(data, value...)
			f.HasData = true
		case "retry":
			ms, err := strconv.Atoi(string(value))
			if err != nil && f.Malformed == "" {
				f.Malformed = string(line)
			} else if err == nil {
				f.Retry = time.Duration(ms) * time.Millisecond
			}
		default:
			if f.Malformed == "" {
				f.Malformed = string(line)
			}
		}
	}
}

// line returns the next line without its end (\n or \r\n). The slice is
// valid until the next call.
func (r *Reader) line() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		long := append([]byte(nil), line...)
		for err == bufio.ErrBufferFull {
			if len(long) > MaxLine {
				return nil, fmt.Errorf("sse: a line longer than %d bytes", MaxLine)
			}
			line, err = r.br.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			return nil, ErrPartialFrame
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}
