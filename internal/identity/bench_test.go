package identity

import (
	"path/filepath"
	"testing"
)

// BenchmarkSign measures one JWT as the plugin makes it at each Conjur
// login of an identity: the key files' stat (Refresh) and an RS256
// signature with a 2048-bit key.
func BenchmarkSign(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "state"))
	if err != nil {
		b.Fatal(err)
	}
	sg, err := NewSigner(s, Options{Issuer: "https://swarm.example.com", Audience: "conjur"})
	if err != nil {
		b.Fatal(err)
	}
	c := Claims{Subject: "shop", Service: "shop_web", Stack: "shop", ServiceID: "s1", TaskID: "t1", NodeID: "n1", Image: "shop:1"}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := sg.Sign(c); err != nil {
			b.Fatal(err)
		}
	}
}
