package macpool

import (
	"crypto/hmac"
	"crypto/sha256"
	"testing"
)

func TestAppendIsTheHMAC(t *testing.T) {
	secret := []byte("0123456789abcdef")
	p := New(secret)
	for _, msg := range []string{"", "UDP|127.0.0.1:5060", "a longer message, signed twice from the pool"} {
		want := hmac.New(sha256.New, secret)
		want.Write([]byte(msg))
		sum := want.Sum(nil)
		for range 2 { // the second from a reused state
			got := p.Append([]byte("prefix"), []byte(msg), 9)
			if string(got) != "prefix"+string(sum[:9]) {
				t.Fatalf("%q: got %x, want the HMAC's first 9 bytes %x", msg, got[6:], sum[:9])
			}
		}
	}
	if other := New([]byte("another secret!!")).Append(nil, []byte("x"), 9); string(other) == string(p.Append(nil, []byte("x"), 9)) {
		t.Fatal("two secrets gave the same HMAC")
	}
}
