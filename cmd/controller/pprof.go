package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
)

// servePprof serves Go's profiles on addr, a loopback address apart from
// the controller's own (the fleet benchmark profiles its controllers
// under load with it); "" serves nothing. It is set from the environment
// only (ELASTIDIAL_DEBUG_PPROF), never a flag: it is for measuring, not
// for a deployment, and it refuses any address but loopback. (Importing
// net/http/pprof also registers its handlers on http.DefaultServeMux,
// which the controller never serves.)
func servePprof(addr string) {
	if addr == "" {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err == nil && !ln.Addr().(*net.TCPAddr).IP.IsLoopback() {
		ln.Close()
		err = fmt.Errorf("%s is not a loopback address", addr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "controller: pprof:", err)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	go http.Serve(ln, mux)
}
