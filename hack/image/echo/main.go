// Command echo is the e2e cluster's smoke-test server: it answers every
// request on :8080 with the pod's host name, so Services, port-forward and
// probes can be checked before the operator image exists.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
)

func main() {
	host, _ := os.Hostname()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "echo from %s: %s %s\n", host, r.Method, r.URL.Path)
	})
	log.Fatal(http.ListenAndServe(":8080", nil))
}
