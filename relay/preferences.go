package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/bellhophq/bellhop/bellhoptype"
	"github.com/bellhophq/bellhop/inbox"
)

// preferences serves GET /notifications/preferences.
func (r *Relay) preferences(w http.ResponseWriter, req *http.Request, to bellhoptype.Recipient) {
	p, err := r.inbox.Preferences(req.Context(), to)
	if err != nil {
		r.inboxError(w, req, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, p)
}

// setPreferences serves PUT /notifications/preferences: the body, a JSON
// object {"types": {"<type or *>": {"<channel>": bool}}}, replaces the
// recipient's preferences; the answer is what is stored. The body is
// bounded (see noBody); a JSON content type is required, so that a
// cross-site form cannot send one without a preflight.
func (r *Relay) setPreferences(w http.ResponseWriter, req *http.Request, to bellhoptype.Recipient) {
	if mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send the preferences as Content-Type: application/json")
		return
	}
	body, err := io.ReadAll(req.Body)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", "preferences are limited to "+strconv.Itoa(maxPreferencesBytes)+" bytes of JSON")
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, "bad_body", "the request body could not be read")
		return
	}
	var p inbox.Preferences
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		writeError(w, http.StatusBadRequest, "bad_json", `the body must be a JSON object {"types": {"<type or *>": {"database"|"sse"|"webhook": true|false}}}: `+err.Error())
		return
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "bad_json", "the body must hold one JSON object")
		return
	}
	if err := r.inbox.SetPreferences(req.Context(), to, p); err != nil {
		r.inboxError(w, req, err)
		return
	}
	r.preferences(w, req, to)
}
