package netguard

import "testing"

// TestPublicOnly holds the guard to the addresses a tenant-aimed fetch
// must never reach.
func TestPublicOnly(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:443": false, "[::1]:443": false, "10.1.2.3:443": false, "172.16.0.1:443": false,
		"192.168.1.1:443": false, "169.254.169.254:80": false, "100.64.0.1:443": false, "0.0.0.0:443": false,
		"[fd00::1]:443": false, "[fe80::1]:443": false, "[::ffff:127.0.0.1]:443": false, "224.0.0.1:443": false,
		"8.8.8.8:443": true, "[2001:4860:4860::8888]:443": true,
	} {
		if err := PublicOnly("tcp", addr, nil); (err == nil) != ok {
			t.Errorf("%s: %v, want allowed %v", addr, err, ok)
		}
	}
}
