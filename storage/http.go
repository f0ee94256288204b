package storage

import (
	"cmp"
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
		maxReq := cmp.Or(l.MaxRequestBytes, MaxRequestBytes)
		r.Body = http.MaxBytesReader(w, r.Body, maxReq)
		mr, err := r.MultipartReader()
		if err != nil {
			jsonError(w, http.StatusBadRequest, "send the audio as multipart/form-data with a \"file\" part")
			return
		}
		// Every file is read and checked before any is stored: a request
		// refused part-way changes nothing.
		type upload struct {
			name string
			data []byte
		}
		var ups []upload
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				uploadError(w, err, maxReq)
				return
			}
			if p.FormName() != "file" {
				continue
			}
			data, err := io.ReadAll(io.LimitReader(p, MaxAudioBytes+1))
			if err != nil {
				uploadError(w, err, maxReq)
				return
			}
			name, data, err := Prepare(p.FileName(), data)
			if err == nil {
				err = CheckKey(set + "/" + name)
			}
			if err != nil {
				uploadError(w, err, maxReq)
				return
			}
			ups = append(ups, upload{name, data})
		}
		if len(ups) == 0 {
			jsonError(w, http.StatusBadRequest, "the form has no part named \"file\"")
			return
		}
		var stored []Object
		for _, u := range ups {
			o, err := l.put(r.Context(), set+"/"+u.name, u.data)
			if err != nil {
				jsonError(w, http.StatusInternalServerError, err.Error())
				return
			}
			stored = append(stored, o)
		}
		v, _ := l.Version(r.Context())
		jsonhttp.Write(w, http.StatusCreated, map[string]any{"version": v, "stored": stored})
	})
	m.HandleFunc("DELETE /api/v1/audio/{set}/{name}", func(w http.ResponseWriter, r *http.Request) {
		err := l.Delete(r.Context(), r.PathValue("set")+"/"+r.PathValue("name"))
		switch {
		case errors.Is(err, ErrNotFound):
			jsonError(w, http.StatusNotFound, err.Error())
		case errors.Is(err, ErrInUse):
			jsonError(w, http.StatusConflict, err.Error())
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

// uploadError answers a refused upload: too large, unplayable, or a bad form.
func uploadError(w http.ResponseWriter, err error, maxReq int64) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		jsonError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the upload request is over %d bytes; send fewer files at once", maxReq))
	case errors.Is(err, ErrFormat), errors.Is(err, ErrBadName):
		jsonError(w, http.StatusUnprocessableEntity, err.Error())
	default:
		jsonError(w, http.StatusBadRequest, "bad multipart form: "+err.Error())
	}
}

func jsonError(w http.ResponseWriter, status int, msg string) {
	jsonhttp.Write(w, status, map[string]string{"error": msg})
}
