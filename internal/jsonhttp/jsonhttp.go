// Package jsonhttp writes the JSON responses of the REST handlers.
package jsonhttp

import (
	"encoding/json"
	"net/http"
)

// Write sends v as indented JSON with the status code.
func Write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) // the status is sent: a failed write has no one to tell
}
