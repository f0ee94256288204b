package storage

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/elastidial/elastidial/internal/jsonhttp"
)

// Handler serves the campaign managers' audio API (mount under
// /api/v1/audio, behind the REST API's authentication):
//
//	GET    /api/v1/audio              the library: version and files
//	POST   /api/v1/audio/{set}        multipart upload, one or more "file" parts
//	DELETE /api/v1/audio/{set}/{name} remove a file
func (l *Library) Handler() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /api/v1/audio", func(w http.ResponseWriter, r *http.Request) {
		objs, v, err := l.List(r.Context())
		if err != nil {
			jsonError(w, http.StatusInternalServerError, err.Error())
			return
		}
		jsonhttp.Write(w, http.StatusOK, map[string]any{"version": v, "files": objs})
	})
	m.HandleFunc("POST /api/v1/audio/{set}", func(w http.ResponseWriter, r *http.Request) {
		set := r.PathValue("set")
		if !setRE.MatchString(set) {
			jsonError(w, http.StatusBadRequest, fmt.Sprintf("audio set %q: use 1 to 64 lower-case letters, digits, _ or -", set))
			return
		}
		mr, err := r.MultipartReader()
		if err != nil {
			jsonError(w, http.StatusBadRequest, "send the audio as multipart/form-data with a \"file\" part")
			return
		}
		var stored []Object
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				jsonError(w, http.StatusBadRequest, "bad multipart form: "+err.Error())
				return
			}
			if p.FormName() != "file" {
				continue
			}
			data, err := io.ReadAll(io.LimitReader(p, MaxAudioBytes+1))
			if err != nil {
				jsonError(w, http.StatusBadRequest, "reading the upload: "+err.Error())
				return
			}
			o, err := l.Put(r.Context(), set, p.FileName(), data)
			switch {
			case errors.Is(err, ErrFormat), errors.Is(err, ErrBadName):
				jsonError(w, http.StatusUnprocessableEntity, err.Error())
				return
			case err != nil:
				jsonError(w, http.StatusInternalServerError, err.Error())
				return
			}
			stored = append(stored, o)
		}
		if len(stored) == 0 {
			jsonError(w, http.StatusBadRequest, "the form has no part named \"file\"")
			return
		}
		v, _ := l.Version(r.Context())
		jsonhttp.Write(w, http.StatusCreated, map[string]any{"version": v, "stored": stored})
	})
	m.HandleFunc("DELETE /api/v1/audio/{set}/{name}", func(w http.ResponseWriter, r *http.Request) {
		err := l.Delete(r.Context(), r.PathValue("set")+"/"+r.PathValue("name"))
		switch {
		case errors.Is(err, ErrNotFound):
			jsonError(w, http.StatusNotFound, err.Error())
		case errors.Is(err, ErrBadName):
			jsonError(w, http.StatusBadRequest, err.Error())
		case err != nil:
			jsonError(w, http.StatusInternalServerError, err.Error())
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	return m
}

func jsonError(w http.ResponseWriter, status int, msg string) {
	jsonhttp.Write(w, status, map[string]string{"error": msg})
}
