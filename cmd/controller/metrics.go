package main

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/elastidial/elastidial/xmlrpc"
)

// metrics registers the XML-RPC tier's Prometheus metrics on reg and
// returns the /metrics handler.
func metrics(reg *prometheus.Registry, rpc *xmlrpc.Server, flows *xmlrpc.Flows) http.Handler {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	calls := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "elastidial_xmlrpc_call_seconds",
		Help:    "XML-RPC calls from nodes by method and fault code (0: success).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	}, []string{"method", "fault"})
	reg.MustRegister(calls)
	rpc.Observe = func(method string, fault int, d time.Duration) {
		if method == "" {
			method = "(unreadable)"
		}
		calls.WithLabelValues(method, strconv.Itoa(fault)).Observe(d.Seconds())
	}

	// Flow reads by the layer that answered: memcached trouble shows here
	// as errors and store reads, never as faults to nodes.
	for layer, c := range map[string]interface{ Load() int64 }{
		"local":          &flows.LocalHits,
		"memcached_hit":  &flows.MemcacheHits,
		"memcached_miss": &flows.MemcacheMisses,
		"memcached_err":  &flows.MemcacheErrors,
		"store":          &flows.StoreReads,
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "elastidial_flow_reads_total",
			Help:        "Flow reads by the cache layer that answered.",
			ConstLabels: prometheus.Labels{"layer": layer},
		}, func() float64 { return float64(c.Load()) }))
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
