// Command echo is the e2e cluster's helper server on :8080. By default it
// answers every request with the pod's host name, so Services, port-forward
// and probes can be checked before the operator image exists. With
// -upstream it is a reverse proxy to that URL instead: the e2e test reaches
// a Service through it, as an ingress controller would, while its own
// traffic only ever goes to 127.0.0.1 (kubectl port-forward).
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"time"
)

func main() {
	upstream := flag.String("upstream", "", "reverse-proxy every request to this URL")
	flag.Parse()
	var h http.Handler
	if *upstream != "" {
		u, err := url.Parse(*upstream)
		if err != nil {
			log.Fatalf("upstream: %v", err)
		}
		h = httputil.NewSingleHostReverseProxy(u)
	} else {
		host, _ := os.Hostname()
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "echo from %s: %s %s\n", host, r.Method, r.URL.Path)
		})
	}
	srv := &http.Server{Addr: ":8080", Handler: h, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
