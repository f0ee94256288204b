package xmlrpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/elastidial/elastidial/nodeapi"
)

// Handler serves one method. It returns the single result value, or an
// error: a *Fault reaches the caller as is, anything else as an internal
// fault (and in the log).
type Handler func(ctx context.Context, params []any) (any, error)

type method struct {
	help string
	sig  []string // return type then param types, XML-RPC names
	h    Handler
}

// Server dispatches XML-RPC calls. Register every method before serving.
type Server struct {
	Limits  Limits
	MaxBody int64 // bytes; default 1 MiB
	Log     *slog.Logger
	// Authorize, when set, runs before every call except system.* ones; the
	// context it returns is handed to the method.
	Authorize func(r *http.Request, method string) (context.Context, error)
	// Observe, when set, sees every call: its method ("" when the request
	// could not be read), fault code (0 for success) and duration.
	Observe func(method string, fault int, d time.Duration)

	methods map[string]method
}

// NewServer returns a server with the system.* methods.
func NewServer() *Server {
	s := &Server{methods: map[string]method{}}
	s.Register("system.listMethods", "Lists the methods this server offers.", []string{"array"}, s.listMethods)
	s.Register("system.methodHelp", "Describes a method.", []string{"string", "string"}, s.methodHelp)
	s.Register("system.methodSignature", "Gives a method's signature: return type, then parameter types.", []string{"array", "string"}, s.methodSignature)
	s.Register("system.multicall", "Runs several calls in one request: an array of {methodName, params}.", []string{"array", "array"}, nil)
	return s
}

// Register adds a method.
func (s *Server) Register(name, help string, sig []string, h Handler) {
	s.methods[name] = method{help: help, sig: sig, h: h}
}

// Has reports whether name is a registered method. Anything a client sends
// that is not one must stay out of metric labels and logs' keys.
func (s *Server) Has(name string) bool {
	_, ok := s.methods[name]
	return ok
}

func (s *Server) listMethods(context.Context, []any) (any, error) {
	names := make([]string, 0, len(s.methods))
	for n := range s.methods {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

func (s *Server) lookup(params []any) (method, error) {
	var name string
	if len(params) != 1 {
		return method{}, faultf(nodeapi.FaultInvalidParams, "want one param, the method name")
	}
	if err := Unmarshal(params[0], &name); err != nil {
		return method{}, err
	}
	m, ok := s.methods[name]
	if !ok {
		return method{}, faultf(nodeapi.FaultUnknownMethod, "no method %q", clip(name))
	}
	return m, nil
}

func (s *Server) methodHelp(_ context.Context, params []any) (any, error) {
	m, err := s.lookup(params)
	return m.help, err
}

func (s *Server) methodSignature(_ context.Context, params []any) (any, error) {
	m, err := s.lookup(params)
	return [][]string{m.sig}, err
}

// ServeHTTP answers POST requests carrying one methodCall.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "XML-RPC takes POST", http.StatusMethodNotAllowed)
		return
	}
	max := s.MaxBody
	if max <= 0 {
		max = 1 << 20
	}
	body := http.MaxBytesReader(w, r.Body, max)
	start := time.Now()
	fault := 0
	name, params, err := DecodeCall(body, s.Limits)
	if s.Observe != nil {
		defer func() { s.Observe(name, fault, time.Since(start)) }()
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) || strings.Contains(err.Error(), "request body too large") {
			fault = nodeapi.FaultTooLarge
			s.writeFault(w, faultf(nodeapi.FaultTooLarge, "request body over %d bytes", max))
			return
		}
		var f *Fault
		if !errors.As(err, &f) {
			f = faultf(nodeapi.FaultParse, "%v", err)
		}
		fault = f.Code
		s.writeFault(w, f)
		return
	}
	ctx := r.Context()
	if name == "system.multicall" { // each inner call is authorised on its own
		res, err := s.multicall(r, params)
		if err != nil { // not an array of calls: the whole request is a fault
			f := s.toFault(name, err)
			fault = f.Code
			s.writeFault(w, f)
			return
		}
		if err := EncodeResponse(w, res); err != nil {
			s.logError("encode", name, err)
		}
		return
	}
	res, err := s.call(ctx, r, name, params)
	if err != nil {
		f := s.toFault(name, err)
		fault = f.Code
		s.writeFault(w, f)
		return
	}
	if err := EncodeResponse(w, res); err != nil {
		s.logError("encode", name, err)
		s.writeFault(w, faultf(nodeapi.FaultInternal, "could not encode the result"))
	}
}

func (s *Server) call(ctx context.Context, r *http.Request, name string, params []any) (res any, err error) {
	m, ok := s.methods[name]
	if !ok || m.h == nil {
		return nil, faultf(nodeapi.FaultUnknownMethod, "no method %q", clip(name))
	}
	if s.Authorize != nil && !strings.HasPrefix(name, "system.") {
		if ctx, err = s.Authorize(r.WithContext(ctx), name); err != nil {
			return nil, err
		}
	}
	defer func() {
		if p := recover(); p != nil {
			s.logError("panic", name, fmt.Errorf("%v", p))
			res, err = nil, faultf(nodeapi.FaultInternal, "internal error")
		}
	}()
	return m.h(ctx, params)
}

// multicall runs each call of system.multicall; each result is a
// one-element array, each failure a fault struct, as the convention says.
// A param that is not one array of calls is an error: the request as a
// whole is a fault, not a success holding one.
func (s *Server) multicall(r *http.Request, params []any) (any, error) {
	var calls []struct {
		Name   string `xmlrpc:"methodName"`
		Params []any  `xmlrpc:"params"`
	}
	if len(params) != 1 {
		return nil, faultf(nodeapi.FaultInvalidParams, "system.multicall takes one array of {methodName, params}, got %d params", len(params))
	}
	if _, ok := params[0].([]any); !ok {
		return nil, faultf(nodeapi.FaultInvalidParams, "system.multicall takes an array of {methodName, params}, got %s", typeName(params[0]))
	}
	if err := Unmarshal(params[0], &calls); err != nil {
		return nil, err // a fault naming the member at fault
	}
	out := make([]any, len(calls))
	for i, c := range calls {
		if c.Name == "system.multicall" {
			out[i] = faultStruct(faultf(nodeapi.FaultInvalidRequest, "system.multicall cannot be nested"))
			continue
		}
		res, err := s.call(r.Context(), r, c.Name, c.Params)
		if err != nil {
			out[i] = faultStruct(s.toFault(c.Name, err))
			continue
		}
		out[i] = []any{res}
	}
	return out, nil
}

func faultStruct(f *Fault) map[string]any {
	return map[string]any{"faultCode": f.Code, "faultString": f.String}
}

func (s *Server) toFault(name string, err error) *Fault {
	var f *Fault
	if errors.As(err, &f) {
		return f
	}
	s.logError("method", name, err)
	return faultf(nodeapi.FaultInternal, "internal error")
}

func (s *Server) writeFault(w io.Writer, f *Fault) {
	if err := EncodeFault(w, f); err != nil {
		s.logError("encode fault", "", err)
	}
}

func (s *Server) logError(what, method string, err error) {
	if s.Log != nil {
		s.Log.Error("xmlrpc "+what, "method", method, "err", err)
	}
}

// Params decodes a method's single struct param into dst.
func Params(params []any, dst any) error {
	if len(params) != 1 {
		return faultf(nodeapi.FaultInvalidParams, "want exactly one param (a struct), got %d", len(params))
	}
	return Unmarshal(params[0], dst)
}
