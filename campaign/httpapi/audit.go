package httpapi

import (
	"bytes"
	"context"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/sqlstore"
	"github.com/elastidial/elastidial/internal/jsonhttp"
)

// secretRE finds the values of "secret" keys (a webhook's), which the
// audit log must not keep, even in a body cut short.
var secretRE = regexp.MustCompile(`("secret"\s*:\s*)"(?:[^"\\]|\\.)*"?`)

// maxAuditDetail bounds the request body kept with an audit entry.
const maxAuditDetail = 4096

// audited records every request that may change something (anything but
// GET and HEAD) in the audit log once it is answered: the token's name,
// method, path and query, status, and a JSON body up to 4 KiB (an uploaded
// file is noted by its size only).
func (a *API) audited(next http.Handler, actor string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		var kept bytes.Buffer
		body := &countingReader{r: r.Body}
		json := false
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/json" || mt == "" {
			json = true
			r.Body = struct {
				io.Reader
				io.Closer
			}{io.TeeReader(body, &limitedWriter{w: &kept, n: maxAuditDetail}), r.Body}
		} else {
			r.Body = struct {
				io.Reader
				io.Closer
			}{body, r.Body}
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		detail := secretRE.ReplaceAllString(kept.String(), `$1"(redacted)"`)
		if !json && body.n > 0 {
			detail = "(" + r.Header.Get("Content-Type") + ", " + strconv.FormatInt(body.n, 10) + " bytes)"
		}
		e := sqlstore.AuditEntry{At: a.now().UTC(), Actor: actor, Method: r.Method, Path: r.URL.RequestURI(), Status: sw.status, Detail: detail}
		// The request's context may be gone; the record must not be.
		if err := a.Store.RecordAudit(context.WithoutCancel(r.Context()), e); err != nil && a.Log != nil {
			a.Log.Error("audit log", "actor", actor, "method", r.Method, "path", e.Path, "err", err)
		}
	})
}

// audit lists the audit log, oldest first: ?after=<id>&limit= (default
// and at most 1000).
func (a *API) audit(w http.ResponseWriter, r *http.Request) {
	var after int64
	limit := 1000
	if v := r.URL.Query().Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			a.fail(w, r, &campaign.FieldError{Field: "after", Reason: v + ": want an entry id"})
			return
		}
		after = n
	}
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			a.fail(w, r, &campaign.FieldError{Field: "limit", Reason: v + ": want 1 to 1000"})
			return
		}
		limit = n
	}
	got, err := a.Store.Audit(r.Context(), after, limit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	jsonhttp.Write(w, http.StatusOK, got)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the writer underneath.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// limitedWriter keeps the first n bytes written and drops the rest.
type limitedWriter struct {
	w *bytes.Buffer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if room := l.n - l.w.Len(); room > 0 {
		l.w.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
