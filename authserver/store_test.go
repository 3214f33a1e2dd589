package authserver_test

import (
	"testing"

	"github.com/tenantauth/tenantauth/authserver"
	"github.com/tenantauth/tenantauth/authserver/storetest"
)

func TestMemoryStoreConformance(t *testing.T) {
	storetest.Run(t, authserver.NewMemoryStore())
}
