// Command tenantauth is the tenantauth operator, auth server and local
// development environment in one binary.
package main

import (
	"fmt"
	"os"

	"github.com/tenantauth/tenantauth/internal/app"
)

func main() {
	if err := app.Main(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "tenantauth:", err)
		os.Exit(1)
	}
}
