package store_test

import (
	"testing"

	"github.com/tenantauth/tenantauth/authserver/store"
	"github.com/tenantauth/tenantauth/authserver/store/storetest"
)

func TestMemoryStoreConformance(t *testing.T) {
	storetest.Run(t, store.NewMemoryStore())
}
