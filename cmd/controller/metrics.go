package main

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/elastidial/elastidial/campaign/sqlstore"
	"github.com/elastidial/elastidial/xmlrpc"
)

// metrics registers the XML-RPC tier's Prometheus metrics on reg and
// returns the /metrics handler.
func metrics(reg *prometheus.Registry, rpc *xmlrpc.Server, flows *xmlrpc.Flows, configs *sqlstore.ConfigStats) http.Handler {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	calls := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "elastidial_xmlrpc_call_seconds",
		Help:    "XML-RPC calls from nodes by method and fault code (0: success).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	}, []string{"method", "fault"})
	reg.MustRegister(calls)
	rpc.Observe = func(method string, fault int, d time.Duration) {
		switch {
		case method == "":
			method = "(unreadable)"
		case !rpc.Has(method): // client-chosen: one label for all of them
			method = "unknown"
		}
		calls.WithLabelValues(method, strconv.Itoa(fault)).Observe(d.Seconds())
	}

	// Reads by the cache layer that answered: memcached trouble shows here
	// as errors and store reads, never as faults to nodes.
	layers(reg, "elastidial_flow_reads_total", "Flow reads by the cache layer that answered.", map[string]*atomic.Int64{
		"local":          &flows.LocalHits,
		"memcached_hit":  &flows.MemcacheHits,
		"memcached_miss": &flows.MemcacheMisses,
		"memcached_err":  &flows.MemcacheErrors,
		"store":          &flows.StoreReads,
	})
	layers(reg, "elastidial_campaign_config_reads_total", "Reads of running campaigns' dialing configuration by the cache layer that answered.", map[string]*atomic.Int64{
		"local":          &configs.LocalHits,
		"memcached_hit":  &configs.CacheHits,
		"memcached_miss": &configs.CacheMisses,
		"memcached_err":  &configs.CacheErrors,
		"store":          &configs.StoreReads,
	})
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// layers registers one counter per cache layer under name.
func layers(reg *prometheus.Registry, name, help string, counters map[string]*atomic.Int64) {
	for layer, c := range counters {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: name, Help: help, ConstLabels: prometheus.Labels{"layer": layer},
		}, func() float64 { return float64(c.Load()) }))
	}
}
